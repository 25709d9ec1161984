"""db-api: the only service that talks to PostgreSQL; users, chats and messages over HTTP."""

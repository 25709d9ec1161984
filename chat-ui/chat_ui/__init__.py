"""chat-ui: the chat app's web pages (sign-up, sign-in, chats), over db-api and lm-api."""

"""A revision counter per user, bumped by triggers on every change to their chats and messages.

Pages use it as their ETag: chat-ui asks db-api whether anything changed since the
page it rendered, and db-api answers that from one indexed row. Triggers rather than
application code, so no write path (a cascade, a bulk delete, a future route) can
forget it. A row lock on the user serialises the bumps, so every committed state has
its own number.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "users", sa.Column("revision", sa.BigInteger(), server_default="0", nullable=False)
    )
    # OLD is null for an INSERT and NEW for a DELETE, so COALESCE names the row either way.
    op.execute(
        """
        CREATE FUNCTION bump_revision_of_chat_owner() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE users SET revision = revision + 1
             WHERE id = COALESCE(NEW.owner_id, OLD.owner_id);
            RETURN NULL;
        END $$
        """
    )
    # A message's owner is its chat's; when the chat itself is being deleted the lookup
    # finds nothing, and the chat's own trigger has bumped the revision already.
    op.execute(
        """
        CREATE FUNCTION bump_revision_of_message_owner() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE users SET revision = revision + 1
             WHERE id = (SELECT owner_id FROM chats WHERE id = COALESCE(NEW.chat_id, OLD.chat_id));
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER chats_bump_owner_revision AFTER INSERT OR UPDATE OR DELETE ON chats "
        "FOR EACH ROW EXECUTE FUNCTION bump_revision_of_chat_owner()"
    )
    op.execute(
        "CREATE TRIGGER messages_bump_owner_revision AFTER INSERT OR UPDATE OR DELETE ON messages "
        "FOR EACH ROW EXECUTE FUNCTION bump_revision_of_message_owner()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER messages_bump_owner_revision ON messages")
    op.execute("DROP TRIGGER chats_bump_owner_revision ON chats")
    op.execute("DROP FUNCTION bump_revision_of_message_owner()")
    op.execute("DROP FUNCTION bump_revision_of_chat_owner()")
    op.drop_column("users", "revision")

"""The greeting of a new chat is no longer a stored message: remove the stored ones.

Chats used to start with an assistant message, the configured greeting ("Hello, how
can I assist you today?"), which then showed above the first question, went into
every export and into the model's context. Now the empty page shows it instead. The
greeting was the only way a chat could begin with an assistant message, so each
chat's first message is removed when it is an assistant's; the configured text may
have been changed, so it is not matched.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        DELETE FROM messages
        USING (
            SELECT DISTINCT ON (chat_id) id, role
            FROM messages
            ORDER BY chat_id, id
        ) AS first
        WHERE messages.id = first.id AND first.role = 'assistant'
        """
    )


def downgrade() -> None:
    # What was removed was a fixed greeting; nothing to restore.
    pass

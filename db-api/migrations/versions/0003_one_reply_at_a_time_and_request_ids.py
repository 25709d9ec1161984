"""At most one reply being written per chat; request ids that make sends idempotent.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Replicas each check "no reply in progress" before starting one; this index makes
    # the database the judge when two of them check at the same instant. Older
    # duplicates (from before the index) are closed as failed, newest one kept.
    op.execute(
        """
        UPDATE messages SET status = 'error'
        WHERE status = 'generating'
          AND id NOT IN (
            SELECT max(id) FROM messages WHERE status = 'generating' GROUP BY chat_id
          )
        """
    )
    op.create_index(
        "uq_messages_chat_id_generating",
        "messages",
        ["chat_id"],
        unique=True,
        postgresql_where=sa.text("status = 'generating'"),
    )
    # A form carries a request id; sending the same form twice finds the first result.
    op.add_column("chats", sa.Column("request_id", sa.Uuid(), nullable=True))
    op.create_index(
        "uq_chats_owner_id_request_id", "chats", ["owner_id", "request_id"], unique=True
    )
    op.add_column("messages", sa.Column("request_id", sa.Uuid(), nullable=True))
    op.create_index(
        "uq_messages_chat_id_request_id", "messages", ["chat_id", "request_id"], unique=True
    )


def downgrade() -> None:
    op.drop_index("uq_messages_chat_id_request_id", table_name="messages")
    op.drop_column("messages", "request_id")
    op.drop_index("uq_chats_owner_id_request_id", table_name="chats")
    op.drop_column("chats", "request_id")
    op.drop_index("uq_messages_chat_id_generating", table_name="messages")

"""Add full-text search vectors on chat titles and message contents, and context_start_id.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _search_vector(source_column: str) -> sa.Column[str]:
    # STORED, so PostgreSQL fills existing rows now and keeps every later write in step.
    return sa.Column(
        "search_vector",
        postgresql.TSVECTOR(),
        sa.Computed(f"to_tsvector('simple'::regconfig, {source_column})", persisted=True),
        nullable=True,
    )


def upgrade() -> None:
    op.add_column("chats", _search_vector("title"))
    op.create_index("ix_chats_search_vector", "chats", ["search_vector"], postgresql_using="gin")
    op.add_column("messages", _search_vector("content"))
    op.create_index(
        "ix_messages_search_vector", "messages", ["search_vector"], postgresql_using="gin"
    )
    op.add_column("messages", sa.Column("context_start_id", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    op.drop_column("messages", "context_start_id")
    op.drop_index("ix_messages_search_vector", table_name="messages")
    op.drop_column("messages", "search_vector")
    op.drop_index("ix_chats_search_vector", table_name="chats")
    op.drop_column("chats", "search_vector")

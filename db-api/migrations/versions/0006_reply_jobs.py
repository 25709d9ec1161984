"""Reply jobs: who writes each reply, the model slot it holds, and the queue for slots.

A reply being written has one `reply_jobs` row, from the moment it starts until it
leaves "generating". The writing process renews `lease_expires_at` every few seconds;
a lapsed lease means the writer is gone. A job without a slot waits in the queue, in
`queued_at` order; one per user (a unique index), so the queue takes turns between
users. `model_slots` remembers which chat each of the model server's slots served
last, so a chat goes back to the slot that still holds its prompt.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reply_jobs",
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("chat_id", sa.Uuid(), nullable=False),
        sa.Column(
            "queued_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("slot", sa.SmallInteger(), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name="fk_reply_jobs_message_id_messages",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name="fk_reply_jobs_owner_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("message_id", name="pk_reply_jobs"),
    )
    op.create_index("uq_reply_jobs_owner_id", "reply_jobs", ["owner_id"], unique=True)
    op.create_index(
        "uq_reply_jobs_slot",
        "reply_jobs",
        ["slot"],
        unique=True,
        postgresql_where=sa.text("slot IS NOT NULL"),
    )
    op.create_table(
        "model_slots",
        sa.Column("slot", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("chat_id", sa.Uuid(), nullable=True),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("slot", name="pk_model_slots"),
    )


def downgrade() -> None:
    op.drop_table("model_slots")
    op.drop_index("uq_reply_jobs_slot", table_name="reply_jobs")
    op.drop_index("uq_reply_jobs_owner_id", table_name="reply_jobs")
    op.drop_table("reply_jobs")

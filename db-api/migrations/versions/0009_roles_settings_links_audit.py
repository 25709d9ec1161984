"""Roles and account statuses, the admin's settings, one-time links and the audit log.

An install that already has accounts gets its oldest account as the admin, as a new
install gets its first: somebody must be able to approve the next sign-up.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("users", sa.Column("role", sa.String(16), nullable=False, server_default="user"))
    op.add_column(
        "users", sa.Column("status", sa.String(16), nullable=False, server_default="active")
    )
    op.add_column("users", sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True))
    op.create_check_constraint("role", "users", "role IN ('user', 'admin')")
    op.create_check_constraint("status", "users", "status IN ('active', 'pending', 'disabled')")
    op.execute(
        "UPDATE users SET role = 'admin' WHERE id = "
        "(SELECT id FROM users ORDER BY created_at, id LIMIT 1)"
    )
    op.execute(
        "UPDATE users SET last_seen_at = seen.at FROM "
        "(SELECT user_id, max(last_seen_at) AS at FROM sessions GROUP BY user_id) AS seen "
        "WHERE users.id = seen.user_id"
    )

    op.create_table(
        "app_settings",
        sa.Column("id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("signup_mode", sa.String(16), nullable=True),
        sa.Column("replies_per_minute", sa.Double(), nullable=True),
        sa.Column("reply_burst", sa.Integer(), nullable=True),
        sa.Column("chats_per_minute", sa.Double(), nullable=True),
        sa.Column("chat_burst", sa.Integer(), nullable=True),
        sa.Column("max_message_chars", sa.Integer(), nullable=True),
        sa.Column("system_prompt", sa.Text(), nullable=True),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint("id = 1", name="single_row"),
        sa.CheckConstraint(
            "signup_mode IS NULL OR signup_mode IN ('open', 'approval', 'closed')",
            name="signup_mode",
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "account_links",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('invite', 'password_reset')", name="kind"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index("ix_account_links_user_id", "account_links", ["user_id"])
    op.create_table(
        "audit_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("actor_name", sa.String(32), nullable=True),
        sa.Column("target_name", sa.String(32), nullable=True),
        sa.Column("detail", sa.String(500), nullable=True),
        sa.Column("client_ip", sa.String(45), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("audit_events")
    op.drop_index("ix_account_links_user_id", table_name="account_links")
    op.drop_table("account_links")
    op.drop_table("app_settings")
    op.drop_constraint("status", "users", type_="check")
    op.drop_constraint("role", "users", type_="check")
    op.drop_column("users", "last_seen_at")
    op.drop_column("users", "status")
    op.drop_column("users", "role")

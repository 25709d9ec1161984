"""Sign-ins remember the browser and the address they were started from.

The account page lists a user's sign-ins so they can recognise (and end) one that is
not theirs; the browser's name, its address and when it was last seen are what a
person recognises. Both are optional: rows from before stay without them.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("sessions", sa.Column("user_agent", sa.String(length=200), nullable=True))
    op.add_column("sessions", sa.Column("client_ip", sa.String(length=45), nullable=True))


def downgrade() -> None:
    op.drop_column("sessions", "client_ip")
    op.drop_column("sessions", "user_agent")

"""The audit log: what admins did, and the security events worth an admin's look.

Events are added in the transaction of what they record (or right after a count that
commits on its own), so a change that rolled back leaves no event claiming it happened.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from db_api.models import AuditEvent

AuditAction = Literal[
    "signed_up",
    "sign_in_failed",
    "sign_in_locked",
    "sign_in_refused_disabled",
    "approved",
    "disabled",
    "enabled",
    "made_admin",
    "admin_revoked",
    "deleted_user",
    "deleted_own_account",
    "password_reset_link_created",
    "password_reset",
    "invite_created",
    "invite_revoked",
    "settings_changed",
    "admin_created_from_cli",
    "password_reset_from_cli",
]


def record(
    db: AsyncSession,
    *,
    action: AuditAction,
    actor: str | None = None,
    target: str | None = None,
    detail: str | None = None,
    client_ip: str | None = None,
) -> None:
    """Add an event to the caller's transaction (written when it commits)."""
    db.add(
        AuditEvent(
            action=action,
            actor_name=actor,
            target_name=target,
            detail=None if detail is None else detail[:500],
            client_ip=client_ip,
        )
    )


async def page(db: AsyncSession, *, before_id: int | None, limit: int) -> Sequence[AuditEvent]:
    """The newest `limit` events older than `before_id` (keyset pagination)."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    return (await db.scalars(query)).all()

"""One-time links an admin hands over: invites to sign up and password resets.

A link is a random token shown once; only its SHA-256 is stored, and using it deletes
the row in the transaction of what it was for, so it works exactly once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from db_api.models import AccountLink, User


async def create_link(
    db: AsyncSession,
    *,
    kind: str,
    token_hash: str,
    created_by: uuid.UUID,
    valid_for: timedelta,
    user_id: uuid.UUID | None = None,
) -> AccountLink:
    """A new link; a new password reset replaces the user's earlier ones."""
    if kind == "password_reset":
        await db.execute(
            delete(AccountLink).where(
                AccountLink.kind == "password_reset", AccountLink.user_id == user_id
            )
        )
    link = AccountLink(
        kind=kind,
        token_hash=token_hash,
        created_by=created_by,
        user_id=user_id,
        expires_at=datetime.now(UTC) + valid_for,
    )
    db.add(link)
    await db.flush()
    return link


async def find_link(db: AsyncSession, *, kind: str, token_hash: str) -> AccountLink | None:
    """The live link with this token (unknown, used and expired all answer None)."""
    query = select(AccountLink).where(
        AccountLink.kind == kind,
        AccountLink.token_hash == token_hash,
        AccountLink.expires_at > func.now(),
    )
    return (await db.scalars(query)).one_or_none()


async def use_link(db: AsyncSession, *, kind: str, token_hash: str) -> AccountLink | None:
    """Delete the live link with this token and answer it; None if there is none.

    The delete is the check: of two requests with one token, only one gets the row.
    """
    used = (
        delete(AccountLink)
        .where(
            AccountLink.kind == kind,
            AccountLink.token_hash == token_hash,
            AccountLink.expires_at > func.now(),
        )
        .returning(AccountLink)
    )
    return (await db.scalars(used)).one_or_none()


async def use_invite(db: AsyncSession, *, token_hash: str) -> bool:
    return await use_link(db, kind="invite", token_hash=token_hash) is not None


async def live_invites(db: AsyncSession) -> Sequence[tuple[AccountLink, str | None]]:
    """Invites not used and not expired, newest first, with the name of who made each."""
    await db.execute(delete(AccountLink).where(AccountLink.expires_at <= func.now()))
    query = (
        select(AccountLink, User.username)
        .outerjoin(User, User.id == AccountLink.created_by)
        .where(AccountLink.kind == "invite")
        .order_by(AccountLink.created_at.desc())
    )
    return [(link, name) for link, name in (await db.execute(query)).all()]


async def revoke_invite(db: AsyncSession, *, link_id: uuid.UUID) -> bool:
    revoked = delete(AccountLink).where(AccountLink.id == link_id, AccountLink.kind == "invite")
    return (await db.execute(revoked.returning(AccountLink.id))).first() is not None

"""Sign-ins (the `sessions` table): started after a password check, resolved on every page.

Only a hash of each token is stored, so the table alone signs nobody in.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from sqlalchemy import bindparam, delete, literal_column, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db_api.database import DriverConnection, HotRead
from db_api.errors import SessionNotFoundError, UserNotFoundError
from db_api.models import SignIn, User
from db_api.queries.users import get_user
from db_api.schemas import UserPublic

# last_seen_at is for people reviewing their sign-ins; minute precision spares a write
# on almost every request.
LAST_SEEN_PRECISION = timedelta(minutes=1)


async def create_sign_in(
    db: AsyncSession,
    *,
    user_id: uuid.UUID,
    token_hash: str,
    now: datetime,
    max_age_seconds: int,
    user_agent: str | None = None,
    client_ip: str | None = None,
) -> tuple[SignIn, User]:
    """Store a new sign-in for the user, and forget the user's sign-ins that have expired."""
    user = await get_user(db, user_id=user_id)
    await db.execute(delete(SignIn).where(SignIn.user_id == user.id, SignIn.expires_at <= now))
    user.last_seen_at = now
    sign_in = SignIn(
        user_id=user.id,
        token_hash=token_hash,
        created_at=now,
        last_seen_at=now,
        expires_at=now + timedelta(seconds=max_age_seconds),
        user_agent=user_agent,
        client_ip=client_ip,
    )
    db.add(sign_in)
    try:
        await db.commit()
    except IntegrityError:
        # The account was deleted since it was read.
        await db.rollback()
        raise UserNotFoundError() from None
    return sign_in, user


async def revoke_sign_in(db: AsyncSession, *, token_hash: str) -> None:
    await db.execute(delete(SignIn).where(SignIn.token_hash == token_hash))
    await db.commit()


async def revoke_user_sign_ins(db: AsyncSession, *, user_id: uuid.UUID) -> None:
    """Sign the user out everywhere."""
    await db.execute(delete(SignIn).where(SignIn.user_id == user_id))
    await db.commit()


async def user_sign_ins(db: AsyncSession, *, user_id: uuid.UUID, now: datetime) -> Sequence[SignIn]:
    """The user's sign-ins that have not expired, most recently seen first."""
    query = (
        select(SignIn)
        .where(SignIn.user_id == user_id, SignIn.expires_at > now)
        .order_by(SignIn.last_seen_at.desc(), SignIn.created_at.desc(), SignIn.id)
    )
    return (await db.scalars(query)).all()


async def revoke_user_sign_in(
    db: AsyncSession, *, user_id: uuid.UUID, sign_in_id: uuid.UUID
) -> None:
    """End one of the user's sign-ins; someone else's is as missing as none at all."""
    mine = delete(SignIn).where(SignIn.id == sign_in_id, SignIn.user_id == user_id)
    if (await db.execute(mine.returning(SignIn.id))).first() is None:
        raise SessionNotFoundError()
    await db.commit()


class LiveSignIn(NamedTuple):
    """A sign-in that is neither expired nor revoked, with its account's public fields."""

    id: uuid.UUID
    created_at: datetime
    expires_at: datetime
    last_seen_at: datetime
    user_id: uuid.UUID
    username: str
    user_created_at: datetime
    # The account's data revision (see migration 0005): the pages' ETag.
    revision: int
    role: str
    status: str

    def user(self) -> UserPublic:
        return UserPublic(
            id=self.user_id,
            username=self.username,
            created_at=self.user_created_at,
            role=self.role,  # type: ignore[arg-type]
            status=self.status,  # type: ignore[arg-type]
        )

    def etag(self) -> str:
        """Names one state of everything the user's pages show (the role: its Admin link)."""
        return f'"{self.user_id}.{self.revision}.{self.role}"'


_LIVE_SIGN_IN = HotRead(
    select(
        SignIn.id,
        SignIn.created_at,
        SignIn.expires_at,
        SignIn.last_seen_at,
        User.id,
        User.username,
        User.created_at,
        User.revision,
        User.role,
        User.status,
    )
    .join(User, User.id == SignIn.user_id)
    .where(
        SignIn.token_hash == bindparam("token_hash"),
        SignIn.expires_at > bindparam("now"),
        # Disabling ends the account's sign-ins; this holds even for one started meanwhile.
        User.status != literal_column("'disabled'"),
    )
)

_TOUCHED_SIGN_IN = (
    update(SignIn)
    .where(SignIn.id == bindparam("id"))
    .values(last_seen_at=bindparam("now"))
    .returning(SignIn.user_id)
    .cte("touched")
)
# The sign-in and its account (the admin's "last seen") in one autocommitted statement.
_TOUCH = HotRead(
    update(User).where(User.id == _TOUCHED_SIGN_IN.c.user_id).values(last_seen_at=bindparam("now"))
)


async def live_sign_in(connection: DriverConnection, *, token_hash: str) -> LiveSignIn:
    """The live sign-in with this token hash; expired or revoked is not found.

    A hot read (every page view); the last-seen touch, once a minute, is one
    autocommitted statement.
    """
    now = datetime.now(UTC)
    row = await _LIVE_SIGN_IN.fetchrow(connection, token_hash=token_hash, now=now)
    if row is None:
        raise SessionNotFoundError()
    live = LiveSignIn(*row.values())
    if now - live.last_seen_at >= LAST_SEEN_PRECISION:
        await _TOUCH.execute(connection, id=live.id, now=now)
    return live

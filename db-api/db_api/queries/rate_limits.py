"""Per-user rate limits: token buckets in PostgreSQL, so that every replica counts alike.

A bucket holds up to `burst` tokens and gets `per_minute` back every minute; an action
takes one. The token is taken in the caller's transaction: it is spent only if what
the action writes commits, so a refused or failed write (a rollback) costs nothing.
The bucket's row stays locked until then, so concurrent actions of one user, on any
replica, take their tokens one after the other and never more than the bucket holds.
Writers take it last, after the chat's and the user's rows: one lock order everywhere.
"""

from __future__ import annotations

import uuid
from typing import Literal

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db_api.config import RateLimit
from db_api.errors import AccountDisabledError, AccountPendingError, RateLimitedError
from db_api.models import AppSettings, RateLimitBucket, User
from db_api.queries.app_settings import SETTINGS_ROW, limit_of

# What is counted, and whose: a user's replies and chats, an address's sign-ups.
Action = Literal["reply", "chat", "signup"]
REFUSALS: dict[Action, str] = {
    "reply": "Too many replies started in a short time",
    "chat": "Too many chats created in a short time",
    "signup": "Too many accounts created from this address in a short time",
}


def bucket_key(action: Action, subject: uuid.UUID | str) -> str:
    return f"{action}:{subject}"


async def forget_buckets(db: AsyncSession, *, user_id: uuid.UUID) -> None:
    """Delete the user's buckets (with the account: nothing else refers to them)."""
    # Sign-ups are counted per address, not per user.
    keys = [bucket_key(action, user_id) for action in REFUSALS if action != "signup"]
    await db.execute(delete(RateLimitBucket).where(RateLimitBucket.key.in_(keys)))


async def take_token(
    db: AsyncSession, *, action: Action, subject: uuid.UUID | str, limit: RateLimit
) -> None:
    """Take one token from the bucket of `subject` (a user id, an address) for `action`.

    When it is empty, rolls back and raises RateLimitedError (429) saying when the next
    token arrives. Call it after the action's own checks, so a request refused for
    another reason takes no token.
    """
    per_second = limit.per_minute / 60
    # The clock when the row is ours, not the transaction's start (`now()`): a take that
    # waited for another's lock would set `refilled_at` back and count that time twice.
    # GREATEST: a clock stepped back drains nothing.
    now = func.clock_timestamp()
    elapsed = func.greatest(0, func.extract("epoch", now - RateLimitBucket.refilled_at))
    refilled = func.least(limit.burst, RateLimitBucket.tokens + elapsed * per_second)
    # One statement: a new bucket starts full; an existing one is refilled for the time
    # since, capped at the burst, and one token taken. Below zero means it was empty;
    # the rollback then undoes the take.
    take = (
        insert(RateLimitBucket)
        .values(key=bucket_key(action, subject), tokens=limit.burst - 1, refilled_at=now)
        .on_conflict_do_update(
            index_elements=[RateLimitBucket.key],
            set_={"tokens": refilled - 1, "refilled_at": now},
        )
        .returning(RateLimitBucket.tokens)
    )
    tokens = (await db.execute(take)).scalar_one()
    if tokens < 0:
        await db.rollback()
        # The next whole token is -tokens away, at `per_second`.
        raise RateLimitedError(REFUSALS[action], retry_after_seconds=-tokens / per_second)


async def take_user_token(
    db: AsyncSession, *, action: Action, user_id: uuid.UUID, default: RateLimit
) -> None:
    """A user's action on the model or their chats: allowed only to an active account, at
    the admin's limit where one is set (`app_settings`), else `default`.

    Reads the account's status and the settings in the caller's transaction, so an
    approval, a disabling or a new limit holds on every replica from the next request.
    """
    row = (
        await db.execute(
            select(User.status, AppSettings)
            .select_from(User)
            .outerjoin(AppSettings, AppSettings.id == SETTINGS_ROW)
            .where(User.id == user_id)
        )
    ).one_or_none()
    status, stored = (None, None) if row is None else row
    if status == "pending":
        await db.rollback()
        raise AccountPendingError()
    if status == "disabled":
        await db.rollback()
        raise AccountDisabledError()
    limit = default if stored is None else limit_of(stored, action=action, default=default)
    await take_token(db, action=action, subject=user_id, limit=limit)

"""Failed sign-ins counted per key, in PostgreSQL so that every replica counts them all."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db_api.config import Settings
from db_api.models import LoginThrottle

# Every wrong password, for any name from any address, leaves rows (unknown names are
# counted like real ones); a row whose count started this long ago (or longer than
# the longest counting window) and holds no lock is dropped, so guessing cannot grow
# the table without end. It forgets only counts that would start over anyway, or a
# slow trickle of failures that never reached a lock.
STALE_AFTER = timedelta(days=1)


async def locked_seconds(db: AsyncSession, *, keys: Sequence[str], now: datetime) -> float | None:
    """Seconds until the latest lock among `keys` ends, or None when none is locked."""
    until = await db.scalar(
        select(func.max(LoginThrottle.locked_until)).where(
            LoginThrottle.key.in_(keys), LoginThrottle.locked_until > now
        )
    )
    return None if until is None else (until - now).total_seconds()


async def recent_failures(
    db: AsyncSession, *, key: str, now: datetime, window_seconds: int
) -> tuple[int, float]:
    """Failures counted for `key` in its current window, and seconds until it ends."""
    row = (
        await db.execute(
            select(LoginThrottle.failures, LoginThrottle.window_started_at).where(
                LoginThrottle.key == key
            )
        )
    ).one_or_none()
    if row is None:
        return 0, 0.0
    failures, started = row
    left = (started + timedelta(seconds=window_seconds) - now).total_seconds()
    return (failures, left) if left > 0 else (0, 0.0)


async def failed_since(db: AsyncSession, *, key: str, since: datetime) -> bool:
    """Whether `key` failed (or was locked) after `since` and no success cleared it."""
    started = await db.scalar(
        select(LoginThrottle.window_started_at).where(LoginThrottle.key == key)
    )
    return started is not None and started > since


async def record_failure(
    db: AsyncSession,
    *,
    key: str,
    now: datetime,
    max_failures: int,
    lock_seconds: int | None,
    window_seconds: int | None = None,
    progressive_up_to: int | None = None,
) -> float | None:
    """Count a failure for `key`; the last allowed one locks it and starts the count over.

    Answers the seconds of the lock this failure started, if it started one.

    With `window_seconds`, failures older than the window no longer count. Without
    `lock_seconds` nothing locks (the caller reads the count). With `progressive_up_to`,
    reaching `max_failures` does not start over: each failure from then on locks for
    twice as long as the one before, from 1 s up to that many seconds. The upsert is
    atomic, so concurrent failures from several replicas are all counted.
    """
    insert_row = insert(LoginThrottle).values(key=key, failures=1, window_started_at=now)
    changes: dict[str, ColumnElement[Any]] = {"failures": LoginThrottle.failures + 1}
    if window_seconds is not None:
        stale = LoginThrottle.window_started_at < now - timedelta(seconds=window_seconds)
        changes = {
            "failures": case((stale, 1), else_=LoginThrottle.failures + 1),
            "window_started_at": case((stale, now), else_=LoginThrottle.window_started_at),
        }
    failures = (
        await db.execute(
            insert_row.on_conflict_do_update(
                index_elements=[LoginThrottle.key], set_=changes
            ).returning(LoginThrottle.failures)
        )
    ).scalar_one()
    locked_for: float | None = None
    if progressive_up_to is not None and failures >= max_failures:
        delay = min(2.0 ** (failures - max_failures), progressive_up_to)
        locked_for = delay
        await db.execute(
            update(LoginThrottle)
            .where(LoginThrottle.key == key)
            .values(locked_until=now + timedelta(seconds=delay))
        )
    elif lock_seconds is not None and failures >= max_failures:
        await db.execute(
            update(LoginThrottle)
            .where(LoginThrottle.key == key)
            .values(
                failures=0,
                window_started_at=now,
                locked_until=now + timedelta(seconds=lock_seconds),
            )
        )
        locked_for = lock_seconds
    await db.commit()
    return locked_for


async def forget_stale(db: AsyncSession, *, settings: Settings, now: datetime) -> None:
    """Drop the rows that count nothing any more (see STALE_AFTER)."""
    windows = (settings.login_ip_window_seconds, settings.login_account_window_seconds)
    stale_after = max(STALE_AFTER, timedelta(seconds=max(windows)))
    await db.execute(
        delete(LoginThrottle).where(
            LoginThrottle.window_started_at < now - stale_after,
            (LoginThrottle.locked_until.is_(None)) | (LoginThrottle.locked_until < now),
        )
    )


async def clear_failures(db: AsyncSession, *, key: str) -> None:
    await db.execute(delete(LoginThrottle).where(LoginThrottle.key == key))


async def record_account_failure(
    db: AsyncSession, *, settings: Settings, pair_key: str, account_key: str, now: datetime
) -> float | None:
    """A wrong password for an account: counted from this address and from every address.

    Answers the seconds of the longest lock this failure started, if any.

    From this address, `LOGIN_MAX_FAILURES` lock the pair for `LOGIN_LOCK_SECONDS`; from
    every address, each failure past `LOGIN_ACCOUNT_MAX_FAILURES` makes the next attempt
    wait twice as long, up to `LOGIN_MAX_DELAY_SECONDS`.
    """
    pair_lock = await record_failure(
        db,
        key=pair_key,
        now=now,
        max_failures=settings.login_max_failures,
        lock_seconds=settings.login_lock_seconds,
    )
    account_lock = await record_failure(
        db,
        key=account_key,
        now=now,
        max_failures=settings.login_account_max_failures,
        lock_seconds=None,
        window_seconds=settings.login_account_window_seconds,
        progressive_up_to=settings.login_max_delay_seconds,
    )
    locks = [seconds for seconds in (pair_lock, account_lock) if seconds is not None]
    return max(locks, default=None)

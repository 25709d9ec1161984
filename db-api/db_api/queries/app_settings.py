"""The settings admins change at run time: one row in PostgreSQL, read where they apply.

Every replica reads the same row in the transaction that uses it, so a change holds
everywhere from the next request on, with no restart and no cache to go stale.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db_api.config import RateLimit, Settings
from db_api.models import AppSettings

SETTINGS_ROW = 1
# What an admin may set; None in a column means "the server's configuration".
EDITABLE = (
    "signup_mode",
    "replies_per_minute",
    "reply_burst",
    "chats_per_minute",
    "chat_burst",
    "max_message_chars",
    "system_prompt",
)


async def stored(db: AsyncSession) -> AppSettings:
    """The row, or an empty one (every setting from the configuration) before any change."""
    row = await db.get(AppSettings, SETTINGS_ROW)
    return row if row is not None else AppSettings(id=SETTINGS_ROW)


async def signup_mode(db: AsyncSession, settings: Settings) -> str:
    mode = await db.scalar(select(AppSettings.signup_mode).where(AppSettings.id == SETTINGS_ROW))
    return mode or settings.signup_mode


def limit_of(row: AppSettings, *, action: str, default: RateLimit) -> RateLimit:
    """A user action's limit: the admin's values where set, the configuration's otherwise."""
    if action == "reply":
        per_minute, burst = row.replies_per_minute, row.reply_burst
    elif action == "chat":
        per_minute, burst = row.chats_per_minute, row.chat_burst
    else:
        return default
    return RateLimit(
        per_minute=default.per_minute if per_minute is None else per_minute,
        burst=default.burst if burst is None else burst,
    )


async def update(db: AsyncSession, *, values: dict[str, Any]) -> tuple[AppSettings, list[str]]:
    """Store the admin's values (None: back to the configuration); answers what changed."""
    before = await stored(db)
    changed = [name for name in EDITABLE if getattr(before, name) != values[name]]
    row = {name: values[name] for name in EDITABLE}
    upsert = (
        insert(AppSettings)
        .values(id=SETTINGS_ROW, updated_at=datetime.now(UTC), **row)
        .on_conflict_do_update(
            index_elements=[AppSettings.id], set_={**row, "updated_at": datetime.now(UTC)}
        )
        .returning(AppSettings)
        .execution_options(populate_existing=True)
    )
    updated = (await db.scalars(upsert)).one()
    return updated, changed

"""The admin's run-time settings (stored in PostgreSQL), applied to this process.

`app.state.configured_settings` is what the environment says; `app.state.settings`
is that with the admin's message length and system prompt laid over it, and what
every route reads. It is refreshed every few seconds, and at once in the process that
saved a change, so a change reaches every replica without a restart. The admin's
message length can only lower the configured one: the request-size limits are set
from the configuration at start-up.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import FastAPI

from chat_ui.config import Settings
from chat_ui.errors import ChatUiError
from chat_ui.schemas import PublicSettings

logger = logging.getLogger(__name__)

REFRESH_SECONDS = 5.0


def with_admin_settings(configured: Settings, stored: PublicSettings) -> Settings:
    changes: dict[str, object] = {}
    if stored.max_message_chars is not None:
        changes["max_message_chars"] = min(stored.max_message_chars, configured.max_message_chars)
    if stored.system_prompt is not None:
        changes["system_prompt"] = stored.system_prompt
    return configured.model_copy(update=changes) if changes else configured


async def refresh_settings(app: FastAPI) -> None:
    """Read the admin's settings now; raises ChatUiError (db-api down) and keeps the old."""
    stored = await app.state.db_client.public_settings()
    app.state.public_settings = stored
    settings = with_admin_settings(app.state.configured_settings, stored)
    if settings != app.state.settings:
        # Kept pages show the old limits (the message box's maxlength).
        app.state.page_cache.clear()
    app.state.settings = settings


async def keep_settings_fresh(app: FastAPI) -> None:
    """For the life of the process: the admin's settings, every REFRESH_SECONDS."""
    while True:
        try:
            await refresh_settings(app)
        except ChatUiError as failure:
            logger.info("Could not read the admin's settings, keeping the last: %s", failure)
        await asyncio.sleep(REFRESH_SECONDS)

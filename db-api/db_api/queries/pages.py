"""The reads every page view makes, on a `PageConnection`, rows answered straight as JSON.

The answers keep the shapes of `schemas` (the columns are the response models' fields)
and the contract tests check them against the OpenAPI document.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from fastapi import Response

from db_api.database import DriverConnection
from db_api.queries import reply_jobs
from db_api.queries.chats import chat_row, chat_rows
from db_api.queries.messages import message_rows
from db_api.queries.sign_ins import LiveSignIn


def json_response(
    body: Any, *, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """`body` as JSON, UTC times ending in "Z" like pydantic writes them."""
    return Response(
        # default=str covers UUID subclasses that orjson leaves to `default`.
        orjson.dumps(body, option=orjson.OPT_UTC_Z, default=str),
        status_code=status_code,
        headers=headers,
        media_type="application/json",
    )


async def chat_detail(
    connection: DriverConnection, *, owner_id: uuid.UUID, chat_id: uuid.UUID
) -> dict[str, Any] | None:
    """The owner's chat with its messages (schemas.ChatDetail), or None if it is not theirs."""
    chat = await chat_row(connection, owner_id=owner_id, chat_id=chat_id)
    if chat is None:
        return None
    messages = await message_rows(connection, chat_id=chat_id)
    # A reply whose writer is gone is shown (and stored) as failed, text kept.
    generating = any(message["status"] == "generating" for message in messages)
    if generating and await reply_jobs.interrupt_lapsed_replies_now(connection, chat_id=chat_id):
        messages = await message_rows(connection, chat_id=chat_id)
    return {**chat, "messages": messages}


async def page_view(
    connection: DriverConnection, *, live: LiveSignIn, chat_id: uuid.UUID | None, limit: int
) -> dict[str, Any]:
    """What a chat page shows (schemas.PageView): the user, their chats and one chat."""
    owner = live.user_id
    chat = (
        None if chat_id is None else await chat_detail(connection, owner_id=owner, chat_id=chat_id)
    )
    return {
        "user": live.user().model_dump(),
        "revision": live.revision,
        "chats": await chat_rows(connection, owner_id=owner, limit=limit),
        "chat": chat,
    }


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an If-None-Match header names `etag` (weak or strong, or `*`)."""
    if not if_none_match:
        return False
    candidates = (tag.strip().removeprefix("W/") for tag in if_none_match.split(","))
    return any(tag in ("*", etag) for tag in candidates)

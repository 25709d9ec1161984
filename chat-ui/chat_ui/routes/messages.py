"""A chat's reply: its live stream (SSE), stop, retry, regenerate and edit-and-resend.

The stream's events are made in `chat_ui.reply_events`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from chat_ui.conversation import Conversation, StartedReply, validate_message
from chat_ui.deps import (
    ConversationDep,
    DbDep,
    RegistryDep,
    SettingsDep,
    SignedInUser,
)
from chat_ui.forms import FormRouter, FormText
from chat_ui.reply_events import live_events, polled_events
from chat_ui.schemas import ChatDetail
from chat_ui.views import (
    chat_url,
    failure_page,
    json_or_page,
    notice_on_chat,
    redirect_to,
    reply_started,
)

router = FormRouter(tags=["messages"])

STREAM_HEADERS = {
    "Cache-Control": "no-cache",
    # nginx would otherwise buffer the stream and deliver tokens in bursts.
    "X-Accel-Buffering": "no",
}


@router.get(
    "/chats/{chat_id}/messages/{message_id}/stream",
    summary="The reply as server-sent events: its state now, updates, then done",
)
async def stream_reply(
    chat_id: uuid.UUID,
    message_id: int,
    user: SignedInUser,
    db: DbDep,
    registry: RegistryDep,
) -> Response:
    generation = registry.get(message_id)
    events: AsyncIterator[str]
    if generation is not None and generation.user_id == user.id and generation.chat_id == chat_id:
        events = live_events(generation)
    else:
        # Also answers 404 for someone else's reply, exactly like a missing one.
        message = await db.get_message(user.id, chat_id, message_id)
        events = polled_events(db, registry, user, message)
    return StreamingResponse(events, media_type="text/event-stream", headers=STREAM_HEADERS)


@router.post(
    "/chats/{chat_id}/stop",
    summary="Stop the reply being written; keep its text",
    dependencies=[failure_page(notice_on_chat)],
)
async def stop_reply(
    request: Request, chat_id: uuid.UUID, conversation: ConversationDep
) -> Response:
    await conversation.stop(chat_id)
    done = redirect_to(chat_url(chat_id, latest=True))
    return await json_or_page(request, json=Response(status_code=204), page=done)


async def reply_again(
    request: Request,
    chat_id: uuid.UUID,
    conversation: Conversation,
    start: Callable[[Conversation, ChatDetail], Awaitable[StartedReply]],
) -> Response:
    """Retry or regenerate (`start`): the chat read, the reply started."""
    chat = await conversation.get_chat(chat_id)
    return await reply_started(request, await start(conversation, chat))


@router.post(
    "/chats/{chat_id}/retry",
    summary="Answer the last message whose reply failed",
    dependencies=[failure_page(notice_on_chat)],
)
async def retry_reply(
    request: Request, chat_id: uuid.UUID, conversation: ConversationDep
) -> Response:
    return await reply_again(request, chat_id, conversation, Conversation.retry_reply)


@router.post(
    "/chats/{chat_id}/regenerate",
    summary="Write the last reply again",
    dependencies=[failure_page(notice_on_chat)],
)
async def regenerate_reply(
    request: Request, chat_id: uuid.UUID, conversation: ConversationDep
) -> Response:
    return await reply_again(request, chat_id, conversation, Conversation.regenerate_reply)


@router.post(
    "/chats/{chat_id}/edit",
    summary="Change the last message and reply again",
    dependencies=[failure_page(notice_on_chat)],
)
async def edit_message(
    request: Request,
    chat_id: uuid.UUID,
    settings: SettingsDep,
    conversation: ConversationDep,
    content: FormText = "",
) -> Response:
    content = validate_message(content, max_chars=settings.max_message_chars)
    chat = await conversation.get_chat(chat_id)
    started = await conversation.edit_last_message(chat, content)
    return await reply_started(request, started)

"""A chat's reply: its live stream (SSE), stop, retry, regenerate and edit-and-resend.

The stream follows the reply from memory when this process writes it, and from
db-api (polling) when it does not: after a restart, or when another replica writes
it. Either way the first event is the state at connect time.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from chat_ui.conversation import INTERRUPTED_MESSAGE, is_interrupted, validate_message
from chat_ui.deps import (
    ConversationDep,
    CurrentUser,
    DbDep,
    RegistryDep,
    SettingsDep,
    SignedInUser,
)
from chat_ui.errors import (
    ChatNotFound,
    ChatUiError,
    MalformedForm,
    MessageStatusChanged,
    SignInRequired,
)
from chat_ui.forms import FormText, check_form
from chat_ui.generation import Generation, GenerationState
from chat_ui.markdown import render_markdown
from chat_ui.pages import json_error, see_other, wants_json
from chat_ui.routes.chats import REPLY_FAILED, chat_url, reply_started
from chat_ui.schemas import MessagePublic
from chat_ui.sessions import SessionUser, set_notice

router = APIRouter(tags=["messages"])

# Comment lines keep idle connections (and proxies between) from timing out.
PING_SECONDS = 15.0
# At most this often an update per subscriber: faster than reading, slower than tokens,
# so rendering and sending do not take CPU from the model on every token.
UPDATE_INTERVAL = 0.1
# How often a reply written elsewhere is re-read from db-api.
POLL_SECONDS = 0.3
REPLY_GONE = "This reply no longer exists."
STREAM_HEADERS = {
    "Cache-Control": "no-cache",
    # nginx would otherwise buffer the stream and deliver tokens in bursts.
    "X-Accel-Buffering": "no",
}


def sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def state_event(state: GenerationState) -> str:
    html = str(render_markdown(state.content))
    if not state.finished:
        return sse("update", {"status": state.status, "html": html, "tokens": state.tokens})
    return sse("done", {"status": state.status, "html": html, "error": state.error})


async def live_events(generation: Generation) -> AsyncIterator[str]:
    """The newest state now, then on changes (slow readers skip versions), then done.

    Updates go out at most every UPDATE_INTERVAL (the first and the last at once):
    each one re-renders the whole markdown, CPU the model server shares.
    """
    state = generation.state
    yield state_event(state)
    while not state.finished:
        sent_at = time.monotonic()
        try:
            async with asyncio.timeout(PING_SECONDS):
                state = await generation.wait_newer(state.version)
        except TimeoutError:
            yield ": ping\n\n"
            continue
        pause = sent_at + UPDATE_INTERVAL - time.monotonic()
        if pause > 0 and not state.finished and state.tokens > 1:
            await asyncio.sleep(pause)
            state = generation.state
        yield state_event(state)


async def polled_events(
    request: Request, user: SessionUser, message: MessagePublic
) -> AsyncIterator[str]:
    """Follow a reply this process does not write, by re-reading it from db-api."""
    db = request.app.state.db_client
    registry = request.app.state.generations
    sent_content: str | None = None
    last_sent = time.monotonic()
    while True:
        generation = registry.get(message.id)
        if generation is not None and generation.user_id == user.id:
            # It started here meanwhile (e.g. a retry): follow it from memory.
            async for event in live_events(generation):
                yield event
            return
        html = str(render_markdown(message.content))
        if message.status != "generating":
            error = REPLY_FAILED if message.status == "error" else None
            yield sse("done", {"status": message.status, "html": html, "error": error})
            return
        if is_interrupted(message, live=False):
            try:
                await db.update_message(
                    user.id, message.chat_id, message.id, status="error", if_status="generating"
                )
            except MessageStatusChanged:
                pass  # it moved on after all: the next read shows how
            else:
                yield sse("done", {"status": "error", "html": html, "error": INTERRUPTED_MESSAGE})
                return
        elif message.content != sent_content:
            # The token count lives only in the writing process; 0 means unknown here.
            yield sse("update", {"status": "generating", "html": html, "tokens": 0})
            sent_content, last_sent = message.content, time.monotonic()
        elif time.monotonic() - last_sent >= PING_SECONDS:
            yield ": ping\n\n"
            last_sent = time.monotonic()
        await asyncio.sleep(POLL_SECONDS)
        try:
            message = await db.get_message(user.id, message.chat_id, message.id)
        except ChatNotFound:
            yield sse("done", {"status": "error", "html": "", "error": REPLY_GONE})
            return
        except ChatUiError:
            continue  # db-api hiccup: keep the last state and read again


@router.get(
    "/chats/{chat_id}/messages/{message_id}/stream",
    summary="The reply as server-sent events: its state now, updates, then done",
)
async def stream_reply(
    request: Request,
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
        events = polled_events(request, user, message)
    return StreamingResponse(events, media_type="text/event-stream", headers=STREAM_HEADERS)


async def action_failed(request: Request, chat_id: uuid.UUID, error: ChatUiError) -> Response:
    """JSON for the script; a plain form gets the message on the chat page."""
    if wants_json(request):
        return json_error(error)
    # A form no page of ours sends gets its 400 where it was sent, not a notice.
    if isinstance(error, ChatNotFound | SignInRequired | MalformedForm):
        raise error
    set_notice(request, chat_id=chat_id, message=error.message)
    return see_other(chat_url(chat_id, latest=True))


@router.post("/chats/{chat_id}/stop", summary="Stop the reply being written; keep its text")
async def stop_reply(
    request: Request,
    chat_id: uuid.UUID,
    conversation: ConversationDep,
    csrf_token: FormText = "",
) -> Response:
    try:
        await check_form(request, csrf_token)
        await conversation.stop(chat_id)
    except ChatUiError as error:
        return await action_failed(request, chat_id, error)
    if wants_json(request):
        return Response(status_code=204)
    return see_other(chat_url(chat_id, latest=True))


@router.post("/chats/{chat_id}/retry", summary="Answer the last message whose reply failed")
async def retry_reply(
    request: Request,
    chat_id: uuid.UUID,
    user: CurrentUser,
    db: DbDep,
    conversation: ConversationDep,
    csrf_token: FormText = "",
) -> Response:
    try:
        await check_form(request, csrf_token)
        chat = await db.get_chat(user.id, chat_id)
        started = await conversation.retry_reply(chat)
    except ChatUiError as error:
        return await action_failed(request, chat_id, error)
    return await reply_started(request, started)


@router.post("/chats/{chat_id}/regenerate", summary="Write the last reply again")
async def regenerate_reply(
    request: Request,
    chat_id: uuid.UUID,
    user: CurrentUser,
    db: DbDep,
    conversation: ConversationDep,
    csrf_token: FormText = "",
) -> Response:
    try:
        await check_form(request, csrf_token)
        chat = await db.get_chat(user.id, chat_id)
        started = await conversation.regenerate_reply(chat)
    except ChatUiError as error:
        return await action_failed(request, chat_id, error)
    return await reply_started(request, started)


@router.post("/chats/{chat_id}/edit", summary="Change the last message and reply again")
async def edit_message(
    request: Request,
    chat_id: uuid.UUID,
    user: CurrentUser,
    db: DbDep,
    settings: SettingsDep,
    conversation: ConversationDep,
    content: FormText = "",
    csrf_token: FormText = "",
) -> Response:
    try:
        await check_form(request, csrf_token)
        content = validate_message(content, max_chars=settings.max_message_chars)
        chat = await db.get_chat(user.id, chat_id)
        started = await conversation.edit_last_message(chat, content)
    except ChatUiError as error:
        return await action_failed(request, chat_id, error)
    return await reply_started(request, started)

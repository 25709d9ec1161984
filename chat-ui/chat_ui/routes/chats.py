"""The chat pages: list, new chat, one conversation, and sending a message.

Sending works two ways (see docs/ARCHITECTURE.md, "chat-ui routes (v2)"): a plain
form waits for the reply and redirects back to the chat; the page's script asks
for JSON (`Accept: application/json`) and gets 202 with the reply's stream URL as
soon as the reply is being written. The reply routes (stream, stop, retry,
regenerate, edit) are in `routes.messages`.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from chat_ui.conversation import (
    DEFAULT_CHAT_TITLE,
    INTERRUPTED_MESSAGE,
    StartedChat,
    StartedReply,
    as_shown,
    can_retry,
    is_interrupted,
    validate_message,
)
from chat_ui.db_client import DbClient
from chat_ui.deps import (
    ConversationDep,
    CurrentUser,
    DbDep,
    SettingsDep,
    SignedInUser,
    claimed_session,
    session_ended,
)
from chat_ui.errors import ChatNotFound, ChatUiError, DatabaseUnavailable, SignInRequired
from chat_ui.forms import FormText, check_form
from chat_ui.generation import GenerationRegistry
from chat_ui.page_cache import CSRF_MARKER, REQUEST_ID_MARKER, PageCache, fill
from chat_ui.pages import json_error, render, render_html, see_other, wants_json
from chat_ui.schemas import ChatDetail, ChatPublic, MessagePublic
from chat_ui.sessions import (
    SessionUser,
    csrf_token,
    has_one_shot_values,
    pop_notice,
    session_user,
)

logger = logging.getLogger(__name__)

router = APIRouter(tags=["chats"])

REPLY_FAILED = "No reply: generating it failed. Try again."


def chat_url(chat_id: uuid.UUID, *, latest: bool = False) -> str:
    return f"/chats/{chat_id}" + ("#latest" if latest else "")


def stream_url(chat_id: uuid.UUID, message_id: int) -> str:
    return f"/chats/{chat_id}/messages/{message_id}/stream"


def started_json(started: StartedReply, **extra: str) -> JSONResponse:
    body: dict[str, Any] = {
        "reply_id": started.reply_id,
        "stream_url": stream_url(started.chat_id, started.reply_id),
        "user_message_id": started.user_message_id,
        **extra,
    }
    return JSONResponse(body, status_code=202)


async def reply_started(request: Request, started: StartedReply) -> Response:
    """202 JSON for the script; for a plain form, wait for the reply, then back to the chat."""
    if wants_json(request):
        return started_json(started)
    # Waiting never cancels the generation: if the browser gives up, the reply goes on.
    # A failure shows on the reply itself (see conversation_context), not as a notice.
    # A reply written by another process is followed by the chat page refreshing itself.
    if started.generation is not None:
        await started.generation.wait_finished()
    return see_other(chat_url(started.chat_id, latest=True))


def form_request_id(value: str) -> uuid.UUID | None:
    """The send form's request id; a form without one (or a mangled one) is not deduplicated."""
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def reply_error_text(
    message: MessagePublic, registry: GenerationRegistry, stored: MessagePublic
) -> str:
    """Why a reply failed, as precisely as this process knows."""
    generation = registry.get(message.id)
    if generation is not None and generation.state.error:
        return generation.state.error
    if is_interrupted(stored, live=registry.is_live(stored.id)):
        return INTERRUPTED_MESSAGE
    return REPLY_FAILED


def conversation_context(chat: ChatDetail, registry: GenerationRegistry) -> dict[str, Any]:
    """What the message list needs: states as shown, the live reply and the action targets."""
    stored = [m for m in chat.messages if m.role != "system"]
    messages = as_shown(stored, registry)
    last = messages[-1] if messages else None
    generating = last is not None and last.status == "generating"
    has_user = any(m.role == "user" for m in messages)
    last_user = next((m for m in reversed(messages) if m.role == "user"), None)
    replying_to_user = last is not None and last.role == "assistant" and has_user
    latest_reply = last if replying_to_user else None
    return {
        "messages": messages,
        "generating": generating,
        "live_stream_url": stream_url(chat.id, last.id) if generating and last else None,
        "errors": {
            shown.id: reply_error_text(shown, registry, original)
            for shown, original in zip(messages, stored, strict=True)
            if shown.status == "error"
        },
        # The marker goes before the oldest message the model saw for the latest reply.
        "context_start_id": latest_reply.context_start_id if latest_reply else None,
        "show_retry": can_retry(messages),
        "regenerate_id": latest_reply.id
        if latest_reply and latest_reply.status in ("complete", "stopped")
        else None,
        "edit_id": last_user.id if last_user and not generating else None,
    }


def chat_page_context(
    request: Request,
    chats: list[ChatPublic],
    chat: ChatDetail | None,
    *,
    draft: str = "",
    request_id: uuid.UUID | str | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """What chat.html needs: the sidebar, the conversation (if any) and the message box."""
    context: dict[str, Any] = {
        "chats": chats,
        "chat": chat,
        "messages": [],
        "form_action": f"/chats/{chat.id}/messages" if chat else "/chats",
        "draft": draft,
        "request_id": request_id or uuid.uuid4(),
        "error": error,
        "notice": pop_notice(request, chat_id=chat.id) if chat else None,
        "show_retry": False,
    }
    if chat is not None:
        context.update(conversation_context(chat, request.app.state.generations))
    return context


def offline_chat_page(
    request: Request,
    outage: DatabaseUnavailable,
    *,
    chat_id: uuid.UUID | None,
    draft: str = "",
    request_id: uuid.UUID | None = None,
) -> Response:
    """No chats to show while db-api is down, but the form and the user's text still are."""
    offline: dict[str, Any] = {
        "chats": [],
        "chat": None,
        "form_action": f"/chats/{chat_id}/messages" if chat_id else "/chats",
        "draft": draft,
        "request_id": request_id or uuid.uuid4(),
        "error": outage.message,
    }
    return render(request, "chat.html", offline, status_code=outage.status_code)


async def render_chat_page(
    request: Request,
    db: DbDep,
    user: SessionUser,
    *,
    chat: ChatDetail | None = None,
    chat_id: uuid.UUID | None = None,
    draft: str = "",
    request_id: uuid.UUID | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    """The chat page (sidebar, conversation, message box); the sidebar-less form if db-api is down.

    Whatever went wrong, the typed `draft` goes back into the message box, with the
    form's `request_id`: sending it again after a failure that did store it changes
    nothing. A fresh page gets a fresh id.
    """
    try:
        chats = await db.list_chats(user.id)
        if chat is None and chat_id is not None:
            chat = await db.get_chat(user.id, chat_id)
    except DatabaseUnavailable as outage:
        return offline_chat_page(
            request, outage, chat_id=chat_id, draft=draft, request_id=request_id
        )
    context = chat_page_context(
        request, chats, chat, draft=draft, request_id=request_id, error=error
    )
    return render(request, "chat.html", context, status_code=status_code)


def looks_the_same_later(chat: ChatDetail | None) -> bool:
    """Whether the page depends on the data alone, not on this process's live replies."""
    return chat is None or all(m.status in ("complete", "stopped") for m in chat.messages)


async def serve_chat_page(request: Request, db: DbClient, chat_id: uuid.UUID | None) -> Response:
    """A chat page (the chat list alone without `chat_id`): one db-api request per view.

    That request also checks the session. When the page rendered last time for this
    user and chat is still current, db-api answers 304 and that page is sent again,
    with this response's CSRF token and request id filled in (see page_cache).
    """
    token, claimed = claimed_session(request)
    pages: PageCache = request.app.state.page_cache
    key = (claimed.id, chat_id)
    one_shot = has_one_shot_values(request)
    cached = None if one_shot else pages.get(key)
    try:
        view, etag = await db.page_view(
            token, chat_id=chat_id, etag=cached.etag if cached else None
        )
    except SignInRequired:
        raise session_ended(request) from None
    except DatabaseUnavailable as outage:
        logger.info("db-api down while showing a chat page; the page reports it")
        return offline_chat_page(request, outage, chat_id=chat_id)
    if view is not None:
        if chat_id is not None and view.chat is None:
            raise ChatNotFound()
        context = chat_page_context(request, view.chats, view.chat)
        if one_shot or not looks_the_same_later(view.chat):
            return render(request, "chat.html", context)
        markers = {"csrf_token": CSRF_MARKER, "request_id": REQUEST_ID_MARKER}
        pages.put(key, etag=etag, html=render_html(request, "chat.html", {**context, **markers}))
        cached = pages.get(key)
        if cached is None:  # too large to keep, or no cache: render it for this response
            return render(request, "chat.html", context)
        html = cached.html
    elif cached is not None:
        html = cached.html
    else:  # a 304 for a page never asked about: db-api would be broken
        raise ChatUiError()
    return HTMLResponse(fill(html, csrf_token=csrf_token(request), request_id=uuid.uuid4()))


async def send_failed(
    request: Request,
    db: DbDep,
    user: SessionUser,
    error: ChatUiError,
    *,
    chat_id: uuid.UUID | None,
    draft: str,
    request_id: uuid.UUID | None,
) -> Response:
    """The error as JSON for the script, else the chat page with the typed text kept."""
    if wants_json(request):
        return json_error(error)
    if isinstance(error, ChatNotFound | SignInRequired):
        raise error
    return await render_chat_page(
        request,
        db,
        user,
        chat_id=chat_id,
        draft=draft,
        request_id=request_id,
        error=error.message,
        status_code=error.status_code,
    )


@router.get("/", summary="Home: the chats when signed in, else sign-in")
async def home(request: Request) -> Response:
    return see_other("/chats" if session_user(request) is not None else "/login")


@router.get("/chats", response_class=HTMLResponse, summary="Chat list and a new message box")
async def chats_page(request: Request, db: DbDep) -> Response:
    return await serve_chat_page(request, db, None)


@router.post("/chats", summary="Start a chat, optionally with its first message")
async def create_chat(
    request: Request,
    user: CurrentUser,
    db: DbDep,
    settings: SettingsDep,
    conversation: ConversationDep,
    content: FormText = "",
    csrf_token: FormText = "",
    request_id: FormText = "",
) -> Response:
    form_id = form_request_id(request_id)
    try:
        await check_form(request, csrf_token)
        if content.strip():
            content = validate_message(content, max_chars=settings.max_message_chars)
            started = await conversation.start_chat(content, request_id=form_id)
        else:
            chat, created = await db.create_chat(
                user.id, title=DEFAULT_CHAT_TITLE, request_id=form_id
            )
            if created:
                await db.add_message(
                    user.id, chat.id, role="assistant", content=settings.opening_message
                )
            started = StartedChat(chat.id, None)
    except ChatUiError as error:
        # The same request id goes back with the form: sending it again finds the chat
        # if it was made after all.
        return await send_failed(
            request, db, user, error, chat_id=None, draft=content, request_id=form_id
        )
    url = chat_url(started.chat_id)
    if started.reply is None:
        # No message, or another replica still setting the same form's chat up.
        return (
            JSONResponse({"chat_url": url}, status_code=202)
            if wants_json(request)
            else see_other(url)
        )
    if wants_json(request):
        # The script opens the chat's page, which picks the stream up from there.
        return started_json(started.reply, chat_url=url)
    return await reply_started(request, started.reply)


@router.get("/chats/{chat_id}", response_class=HTMLResponse, summary="One conversation")
async def chat_page(request: Request, chat_id: uuid.UUID, db: DbDep) -> Response:
    return await serve_chat_page(request, db, chat_id)


@router.post("/chats/{chat_id}/messages", summary="Send a message and start the reply")
async def send_message(
    request: Request,
    chat_id: uuid.UUID,
    user: SignedInUser,
    db: DbDep,
    settings: SettingsDep,
    conversation: ConversationDep,
    content: FormText = "",
    csrf_token: FormText = "",
    request_id: FormText = "",
) -> Response:
    form_id = form_request_id(request_id)
    try:
        await check_form(request, csrf_token)
        content = validate_message(content, max_chars=settings.max_message_chars)
        chat = await db.get_chat(user.id, chat_id)
        started = await conversation.send_message(chat, content, request_id=form_id)
    except ChatUiError as error:
        return await send_failed(
            request, db, user, error, chat_id=chat_id, draft=content, request_id=form_id
        )
    return await reply_started(request, started)

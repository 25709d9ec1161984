"""The chat pages: list, new chat, one conversation, sending a message and retrying a reply."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from chat_ui.conversation import DEFAULT_CHAT_TITLE, can_retry, validate_message
from chat_ui.deps import ConversationDep, CurrentUser, DbDep, SettingsDep, check_csrf
from chat_ui.errors import ChatUiError, DatabaseUnavailable, InvalidInput, ModelError
from chat_ui.pages import render, see_other
from chat_ui.schemas import ChatDetail
from chat_ui.sessions import SessionUser, pop_notice, session_user, set_notice

router = APIRouter(tags=["chats"])

FormText = Annotated[str, Form()]


def chat_url(chat_id: uuid.UUID, *, latest: bool = False) -> str:
    return f"/chats/{chat_id}" + ("#latest" if latest else "")


async def render_chat_page(
    request: Request,
    db: DbDep,
    user: SessionUser,
    *,
    chat: ChatDetail | None = None,
    chat_id: uuid.UUID | None = None,
    draft: str = "",
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    """The chat page (sidebar, conversation, message box); the sidebar-less form if db-api is down.

    Whatever went wrong, the typed `draft` goes back into the message box.
    """
    try:
        chats = await db.list_chats(user.id)
        if chat is None and chat_id is not None:
            chat = await db.get_chat(user.id, chat_id)
    except DatabaseUnavailable as outage:
        # No chats to show, but the form and the user's text still are.
        offline: dict[str, Any] = {
            "chats": [],
            "chat": None,
            "form_action": f"/chats/{chat_id}/messages" if chat_id else "/chats",
            "draft": draft,
            "error": outage.message,
        }
        return render(request, "chat.html", offline, status_code=outage.status_code)
    context: dict[str, Any] = {
        "chats": chats,
        "chat": chat,
        "messages": [m for m in chat.messages if m.role != "system"] if chat else [],
        "form_action": f"/chats/{chat.id}/messages" if chat else "/chats",
        "draft": draft,
        "error": error,
        "notice": pop_notice(request, chat_id=chat.id) if chat else None,
        "show_retry": can_retry(chat.messages) if chat else False,
    }
    return render(request, "chat.html", context, status_code=status_code)


@router.get("/", summary="Home: the chats when signed in, else sign-in")
async def home(request: Request) -> Response:
    return see_other("/chats" if session_user(request) is not None else "/login")


@router.get("/chats", response_class=HTMLResponse, summary="Chat list and a new message box")
async def chats_page(request: Request, user: CurrentUser, db: DbDep) -> Response:
    return await render_chat_page(request, db, user)


@router.post("/chats", summary="Start a chat, optionally with its first message")
async def create_chat(
    request: Request,
    user: CurrentUser,
    db: DbDep,
    settings: SettingsDep,
    conversation: ConversationDep,
    content: FormText = "",
    csrf_token: FormText = "",
) -> Response:
    has_message = bool(content.strip())
    try:
        check_csrf(request, csrf_token)
        if has_message:
            content = validate_message(content, max_chars=settings.max_message_chars)
    except ChatUiError as error:
        return await render_chat_page(
            request, db, user, draft=content, error=error.message, status_code=error.status_code
        )
    try:
        chat = await db.create_chat(user.id, title=DEFAULT_CHAT_TITLE)
        await db.add_message(user.id, chat.id, role="assistant", content=settings.opening_message)
    except DatabaseUnavailable:
        return await render_chat_page(request, db, user, draft=content)
    if not has_message:
        return see_other(chat_url(chat.id))
    return await _send(request, db, user, conversation, chat.id, content)


@router.get("/chats/{chat_id}", response_class=HTMLResponse, summary="One conversation")
async def chat_page(request: Request, chat_id: uuid.UUID, user: CurrentUser, db: DbDep) -> Response:
    chat = await db.get_chat(user.id, chat_id)
    return await render_chat_page(request, db, user, chat=chat)


@router.post("/chats/{chat_id}/messages", summary="Send a message and get the reply")
async def send_message(
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
        check_csrf(request, csrf_token)
        content = validate_message(content, max_chars=settings.max_message_chars)
    except ChatUiError as error:
        return await render_chat_page(
            request,
            db,
            user,
            chat_id=chat_id,
            draft=content,
            error=error.message,
            status_code=error.status_code,
        )
    return await _send(request, db, user, conversation, chat_id, content)


@router.post("/chats/{chat_id}/retry", summary="Generate the reply to the last message again")
async def retry_reply(
    request: Request,
    chat_id: uuid.UUID,
    user: CurrentUser,
    db: DbDep,
    conversation: ConversationDep,
    csrf_token: FormText = "",
) -> Response:
    check_csrf(request, csrf_token)
    chat = await db.get_chat(user.id, chat_id)
    try:
        await conversation.retry_reply(chat)
    except (ModelError, InvalidInput) as error:
        set_notice(request, chat_id=chat_id, message=error.message)
    return see_other(chat_url(chat_id, latest=True))


async def _send(
    request: Request,
    db: DbDep,
    user: SessionUser,
    conversation: ConversationDep,
    chat_id: uuid.UUID,
    content: str,
) -> Response:
    """Send `content`; failures the user can fix re-show the page with their text kept."""
    try:
        chat = await db.get_chat(user.id, chat_id)
        await conversation.send_message(chat, content)
    except (InvalidInput, DatabaseUnavailable) as error:
        return await render_chat_page(
            request,
            db,
            user,
            chat_id=chat_id,
            draft=content,
            error=error.message,
            status_code=error.status_code,
        )
    except ModelError as error:
        # The message is saved and its reply marked failed; the page offers a retry.
        set_notice(request, chat_id=chat_id, message=error.message)
    return see_other(chat_url(chat_id, latest=True))

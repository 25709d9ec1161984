"""The chat pages: list, new chat, one conversation, and sending a message.

Sending works two ways (see docs/ARCHITECTURE.md, "chat-ui routes"), both
answered as soon as the reply is being written: a plain form is redirected back to
the chat, which refreshes itself until the reply is done; the page's script asks for
JSON (`Accept: application/json`) and gets 202 with the reply's stream URL (see views
for both answers). The reply routes
(stream, stop, retry, regenerate, edit) are in `routes.messages`.
"""

from __future__ import annotations

import uuid

from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from chat_ui.conversation import validate_message
from chat_ui.deps import ChatPagesDep, ConversationDep, SettingsDep
from chat_ui.errors import InvalidInput
from chat_ui.forms import FormRouter, FormText
from chat_ui.pages import see_other
from chat_ui.sessions import session_user
from chat_ui.views import FailurePage, chat_id_in_path, chat_started, failure_page, reply_started

router = FormRouter(tags=["chats"])


def form_request_id(value: str) -> uuid.UUID | None:
    """The send form's request id; a form without one (or a mangled one) is not deduplicated."""
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def message_box_again(
    request: Request,
    pages: ChatPagesDep,
    settings: SettingsDep,
    content: FormText = "",
    request_id: FormText = "",
) -> FailurePage:
    """A failed send: the chat page again, saying why, with the typed text kept.

    Kept as it would be stored (trimmed) when it passed the checks, else as typed, for
    the person to fix. The same request id goes back with the form: sending it again
    finds the chat or the message if it was stored after all.
    """
    try:
        draft = validate_message(content, max_chars=settings.max_message_chars)
    except InvalidInput:
        draft = content
    return pages.again(
        chat_id=chat_id_in_path(request), draft=draft, request_id=form_request_id(request_id)
    )


@router.get("/", summary="Home: the chats when signed in, else sign-in")
async def home(request: Request) -> Response:
    return see_other("/chats" if session_user(request) is not None else "/login")


@router.get("/chats", response_class=HTMLResponse, summary="Chat list and a new message box")
async def chats_page(pages: ChatPagesDep) -> Response:
    return await pages.show(None)


@router.post(
    "/chats",
    summary="Start a chat, optionally with its first message",
    dependencies=[failure_page(message_box_again)],
)
async def create_chat(
    request: Request,
    settings: SettingsDep,
    conversation: ConversationDep,
    content: FormText = "",
    request_id: FormText = "",
) -> Response:
    if content.strip():
        content = validate_message(content, max_chars=settings.max_message_chars)
    started = await conversation.start_chat(content, request_id=form_request_id(request_id))
    return await chat_started(request, started)


@router.get("/chats/{chat_id}", response_class=HTMLResponse, summary="One conversation")
async def chat_page(chat_id: uuid.UUID, pages: ChatPagesDep) -> Response:
    return await pages.show(chat_id)


@router.post(
    "/chats/{chat_id}/messages",
    summary="Send a message and start the reply",
    dependencies=[failure_page(message_box_again)],
)
async def send_message(
    request: Request,
    chat_id: uuid.UUID,
    settings: SettingsDep,
    conversation: ConversationDep,
    content: FormText = "",
    request_id: FormText = "",
) -> Response:
    content = validate_message(content, max_chars=settings.max_message_chars)
    chat = await conversation.get_chat(chat_id)
    started = await conversation.send_message(chat, content, request_id=form_request_id(request_id))
    return await reply_started(request, started)

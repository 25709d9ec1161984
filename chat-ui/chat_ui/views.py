"""The presentation layer: how a route answers, and what the pages that show a chat hold.

Routes decide what happens; this module decides how the outcome is shown:

- JSON or HTML is chosen in one place, `json_or_page`: the page's script asks for JSON
  (`Accept: application/json`), a plain form gets a page or a redirect.
- Every failure a route answers is raised, and one exception handler,
  `show_route_failure`, shows it through `show_failure` with the page the route
  declared (`dependencies=[failure_page(...)]`), made for the request: the form again
  (`form_again`), the chat page again with the typed text (`ChatPages.again`), a
  notice on the chat (`notice_on_chat`); the error page for a route that declares none.
- Every page that shows a chat or the chat list (the chat pages, their offline
  fallback, the search page's sidebar) loads it with `ChatPages.load`: one db-api
  request, which also checks the session.
- One-shot values (a chat's notice, flashed form errors) are taken here, before
  rendering, and handed to the template as values: rendering never changes the session.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import Depends, Request, params
from fastapi.responses import HTMLResponse, JSONResponse, Response

from chat_ui.conversation import (
    StartedChat,
    StartedReply,
    can_retry,
    failed_reply_text,
)
from chat_ui.db_client import DbClient
from chat_ui.errors import (
    AccountPending,
    ChatNotFound,
    ChatUiError,
    DatabaseUnavailable,
    MalformedForm,
    PageNotFound,
    SignInRequired,
    TooManyAttempts,
)
from chat_ui.forms import submitted_form
from chat_ui.generation import GenerationRegistry
from chat_ui.page_cache import CSRF_MARKER, REQUEST_ID_MARKER, PageCache, fill
from chat_ui.pages import json_error, render, render_html, see_other, wants_json
from chat_ui.schemas import ChatDetail, ChatPublic, MessagePublic, PageView
from chat_ui.security import safe_next_path
from chat_ui.sessions import (
    claimed_session,
    csrf_token,
    has_one_shot_values,
    pop_flash,
    pop_notice,
    remember_role,
    session_ended,
    set_notice,
)

logger = logging.getLogger(__name__)

# Flash keys: the page that shows the values, set by the route that fails or finishes.
CHAT_LIST_FLASH = "chat-list"
# The sign-in page's notice after signing out (or deleting the account).
SIGN_IN_FLASH = "sign-in"


def rename_flash_key(chat_id: uuid.UUID) -> str:
    return f"rename:{chat_id}"


# URLs


def login_url(*, next_path: str | None = None, expired: bool = False) -> str:
    query = {}
    if next_path and safe_next_path(next_path) == next_path:
        query["next"] = next_path
    if expired:
        query["reason"] = "expired"
    return "/login" + (f"?{urlencode(query)}" if query else "")


def chat_url(chat_id: uuid.UUID, *, latest: bool = False) -> str:
    return f"/chats/{chat_id}" + ("#latest" if latest else "")


def stream_url(chat_id: uuid.UUID, message_id: int) -> str:
    return f"/chats/{chat_id}/messages/{message_id}/stream"


# JSON or HTML

Page = Callable[[], Awaitable[Response]]
# The page that shows a failure; it may raise the error instead, for the error page.
FailurePage = Callable[[ChatUiError], Awaitable[Response]]


async def json_or_page(request: Request, *, json: Response, page: Page) -> Response:
    """`json` for the page's script, else the page (only then made: it may wait or write)."""
    if wants_json(request):
        return json
    return await page()


def redirect_to(url: str) -> Page:
    async def redirect() -> Response:
        return see_other(url)

    return redirect


# Failures


async def show_failure(request: Request, error: ChatUiError, page: FailurePage) -> Response:
    """The one way a failure is answered: JSON for the script, else `page`.

    A refusal for going too fast (sign-ins, replies, new chats) also says when to try
    again (Retry-After), either way.
    """
    response = await json_or_page(
        request, json=json_error(error), page=functools.partial(page, error)
    )
    if isinstance(error, TooManyAttempts):
        response.headers["Retry-After"] = str(error.retry_after_seconds)
    return response


def failure_page(make: Callable[..., FailurePage | Awaitable[FailurePage]]) -> params.Depends:
    """A route's dependency: `make` (a dependency itself) makes the page for its failures.

    `CsrfCheckedRoute` solves it before the form check, so a stale or malformed form
    shows on it like any other failure of the route. Making the page does nothing else.
    """

    async def keep_failure_page(request: Request, page: FailurePage = Depends(make)) -> None:
        request.state.failure_page = page

    return params.Depends(keep_failure_page)


def sign_in_redirect(error: SignInRequired) -> Response:
    return see_other(login_url(next_path=error.next_path, expired=error.expired))


async def show_route_failure(request: Request, error: ChatUiError) -> Response:
    """The exception handler for every failure a route raises: its failure page, or the error page.

    A failure page that raises (the failure, or one met while showing it) hands that
    error to the error page, or to sign-in.
    """
    page: FailurePage = getattr(request.state, "failure_page", None) or error_page(request)
    try:
        return await show_failure(request, error, page)
    except SignInRequired as signed_out:
        return sign_in_redirect(signed_out)
    except ChatUiError as shown_instead:
        return await show_failure(request, shown_instead, error_page(request))


def error_page(request: Request) -> FailurePage:
    """The app's error page (the exception handlers' page)."""

    async def page(error: ChatUiError) -> Response:
        if isinstance(error, AccountPending):
            return render(request, "waiting.html", {"error": error}, status_code=error.status_code)
        return render(request, "error.html", {"error": error}, status_code=error.status_code)

    return page


def form_again(
    template: str, *, keep: tuple[str, ...]
) -> Callable[[Request], Awaitable[FailurePage]]:
    """The form again, with what to fix and the `keep` fields as typed (never the password)."""

    async def make(request: Request) -> FailurePage:
        form = await submitted_form(request)
        typed = {name: form.get(name, "").strip() for name in keep}

        async def page(error: ChatUiError) -> Response:
            context = {**typed, "error": error.message}
            return render(request, template, context, status_code=error.status_code)

        return page

    return make


def chat_id_in_path(request: Request) -> uuid.UUID | None:
    """The chat the URL names, if any; a malformed id names a page that does not exist.

    Read from the URL, not as a path parameter: FastAPI validates those only after the
    dependencies, the form check among them.
    """
    value = request.path_params.get("chat_id")
    if value is None:
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise PageNotFound() from None


def notice_on_chat(request: Request) -> FailurePage:
    """Back to the URL's chat, which shows the message once (after the POST-redirect-GET)."""
    chat_id = chat_id_in_path(request)

    async def page(error: ChatUiError) -> Response:
        # A form no page of ours sends gets its 400 where it was sent, not a notice.
        if chat_id is None or isinstance(error, ChatNotFound | SignInRequired | MalformedForm):
            raise error
        set_notice(request, chat_id=chat_id, message=error.message)
        return see_other(chat_url(chat_id, latest=True))

    return page


# A reply started


def started_json(started: StartedReply, **extra: str) -> JSONResponse:
    body: dict[str, Any] = {
        "reply_id": started.reply_id,
        "stream_url": stream_url(started.chat_id, started.reply_id),
        "user_message_id": started.user_message_id,
        **extra,
    }
    return JSONResponse(body, status_code=202)


async def reply_started(request: Request, started: StartedReply, **extra: str) -> Response:
    """202 JSON for the script; a plain form goes back to the chat at once.

    Without script the chat page refreshes itself while the reply is written, and offers
    Stop; a failure shows on the reply itself (see conversation_context).
    """
    page = redirect_to(chat_url(started.chat_id, latest=True))
    return await json_or_page(request, json=started_json(started, **extra), page=page)


async def chat_started(request: Request, started: StartedChat) -> Response:
    url = chat_url(started.chat_id)
    if started.reply is None:
        # No message, or another replica still setting the same form's chat up.
        chat_json = JSONResponse({"chat_url": url}, status_code=202)
        return await json_or_page(request, json=chat_json, page=redirect_to(url))
    # The script opens the chat's page, which picks the stream up from there.
    return await reply_started(request, started.reply, chat_url=url)


# The pages that show a chat


def reply_error_text(message: MessagePublic, registry: GenerationRegistry) -> str:
    """Why a reply failed, as precisely as this process knows."""
    generation = registry.get(message.id)
    if generation is not None and generation.state.error:
        return generation.state.error
    return failed_reply_text(message)


def conversation_context(chat: ChatDetail, registry: GenerationRegistry) -> dict[str, Any]:
    """What the message list needs: states as shown, the live reply and the action targets."""
    messages = [m for m in chat.messages if m.role != "system"]
    last = messages[-1] if messages else None
    generating = last is not None and last.status == "generating"
    has_user = any(m.role == "user" for m in messages)
    last_user = next((m for m in reversed(messages) if m.role == "user"), None)
    replying_to_user = last is not None and last.role == "assistant" and has_user
    latest_reply = last if replying_to_user else None
    live = registry.get(last.id) if generating and last else None
    return {
        "messages": messages,
        "generating": generating,
        # Its place in the model's queue, while it waits (known where it is written).
        "queue_position": live.state.position if live else None,
        "live_stream_url": stream_url(chat.id, last.id) if generating and last else None,
        "errors": {
            message.id: reply_error_text(message, registry)
            for message in messages
            if message.status == "error"
        },
        # The marker goes before the oldest message the model saw for the latest reply.
        "context_start_id": latest_reply.context_start_id if latest_reply else None,
        "show_retry": can_retry(messages),
        "regenerate_id": latest_reply.id
        if latest_reply and latest_reply.status in ("complete", "stopped")
        else None,
        "edit_id": last_user.id if last_user and not generating else None,
    }


def looks_the_same_later(chat: ChatDetail | None) -> bool:
    """Whether the page depends on the data alone, not on this process's live replies."""
    return chat is None or all(m.status in ("complete", "stopped") for m in chat.messages)


@dataclass(frozen=True)
class ChatPages:
    """Loads and renders, for one request, the pages that show the user's chats."""

    request: Request
    db: DbClient
    registry: GenerationRegistry
    cache: PageCache

    async def load(self, chat_id: uuid.UUID | None) -> PageView:
        """The chat list and `chat_id`'s chat: every page that shows them reads them here."""
        view, _etag = await self._page_view(chat_id, etag=None)
        if view is None:  # a 304 for a page never asked about: db-api would be broken
            raise ChatUiError()
        return view

    async def _page_view(
        self, chat_id: uuid.UUID | None, *, etag: str | None
    ) -> tuple[PageView | None, str]:
        """One db-api request, which also checks the session; (None, etag) while `etag` holds."""
        token, _claimed = claimed_session(self.request)
        try:
            view, current = await self.db.page_view(token, chat_id=chat_id, etag=etag)
        except SignInRequired:
            raise session_ended(self.request) from None
        if view is not None:
            remember_role(self.request, view.user.role)
            if view.user.status == "pending":
                raise AccountPending()
        if view is not None and chat_id is not None and view.chat is None:
            raise ChatNotFound()
        return view, current

    def sidebar_context(self, chats: list[ChatPublic]) -> dict[str, Any]:
        """What the sidebar needs: the chats and the chat list's one-shot notice."""
        return {
            "chats": chats,
            "list_notice": pop_flash(self.request, CHAT_LIST_FLASH).get("notice"),
        }

    def context(
        self,
        chats: list[ChatPublic],
        chat: ChatDetail | None,
        *,
        draft: str = "",
        request_id: uuid.UUID | str | None = None,
        error: str | None = None,
    ) -> dict[str, Any]:
        """What chat.html needs: the sidebar, the conversation (if any) and the message box."""
        context: dict[str, Any] = {
            **self.sidebar_context(chats),
            "chat": chat,
            "messages": [],
            "form_action": f"/chats/{chat.id}/messages" if chat else "/chats",
            "draft": draft,
            "request_id": request_id or uuid.uuid4(),
            "error": error,
            "notice": pop_notice(self.request, chat_id=chat.id) if chat else None,
            "rename": pop_flash(self.request, rename_flash_key(chat.id)) if chat else {},
            "show_retry": False,
        }
        if chat is not None:
            context.update(conversation_context(chat, self.registry))
        return context

    def offline(
        self,
        outage: DatabaseUnavailable,
        *,
        chat_id: uuid.UUID | None,
        draft: str = "",
        request_id: uuid.UUID | None = None,
    ) -> Response:
        """No chats to show while db-api is down, but the form and the user's text still are."""
        offline: dict[str, Any] = {
            **self.sidebar_context([]),
            "chat": None,
            "form_action": f"/chats/{chat_id}/messages" if chat_id else "/chats",
            "draft": draft,
            "request_id": request_id or uuid.uuid4(),
            "error": outage.message,
        }
        return render(self.request, "chat.html", offline, status_code=outage.status_code)

    async def show(self, chat_id: uuid.UUID | None) -> Response:
        """A chat page (the chat list alone without `chat_id`): one db-api request per view.

        When the page rendered last time for this user and chat is still current, db-api
        answers 304 and that page is sent again, with this response's CSRF token and
        request id filled in (see page_cache).
        """
        request, pages = self.request, self.cache
        _token, claimed = claimed_session(request)
        key = (claimed.id, chat_id)
        one_shot = has_one_shot_values(request)
        cached = None if one_shot else pages.get(key)
        try:
            view, etag = await self._page_view(chat_id, etag=cached.etag if cached else None)
        except DatabaseUnavailable as outage:
            logger.info("db-api down while showing a chat page; the page reports it")
            return self.offline(outage, chat_id=chat_id)
        # Without script the page refreshes itself to ?refresh=N while a reply is written;
        # once it is, the page goes back to the chat's own address.
        refreshed = chat_id is not None and "refresh" in request.query_params
        written = chat_url(chat_id, latest=True) if refreshed and chat_id is not None else None
        if view is not None:
            context = self.context(view.chats, view.chat)
            if written and not context.get("generating"):
                return see_other(written)
            if view.chat is not None and context.get("generating"):
                context["queue_position"] = await self._place_in_line(
                    view.user.id, view.chat, known=context["queue_position"]
                )
            if one_shot or not looks_the_same_later(view.chat):
                return render(request, "chat.html", context)
            markers = {"csrf_token": CSRF_MARKER, "request_id": REQUEST_ID_MARKER}
            html = render_html(request, "chat.html", {**context, **markers})
            pages.put(key, etag=etag, html=html)
            cached = pages.get(key)
            if cached is None:  # too large to keep, or no cache: render it for this response
                return render(request, "chat.html", context)
        elif cached is None:  # a 304 for a page never asked about: db-api would be broken
            raise ChatUiError()
        elif written:  # unchanged since it was kept, so no reply is being written in it
            return see_other(written)
        filled = fill(cached.html, csrf_token=csrf_token(request), request_id=uuid.uuid4())
        return HTMLResponse(filled)

    async def _place_in_line(
        self, user_id: uuid.UUID, chat: ChatDetail, *, known: int | None
    ) -> int | None:
        """The place in the model's queue of the chat's reply being written, if it waits.

        Known here when this process writes it; asked of db-api when another does.
        """
        reply = chat.messages[-1]
        if self.registry.get(reply.id) is not None:
            return known
        try:
            state = await self.db.get_message(user_id, chat.id, reply.id)
        except ChatUiError:
            return None  # the page says "Thinking…" instead, and asks again on its refresh
        return state.queue_position

    def again(
        self, *, chat_id: uuid.UUID | None, draft: str, request_id: uuid.UUID | None
    ) -> FailurePage:
        """The chat page again after a failed send, saying why, with the typed text kept.

        With the form's `request_id`: sending it again after a failure that did store it
        changes nothing. The sidebar-less form if db-api is down.
        """

        async def page(error: ChatUiError) -> Response:
            if isinstance(error, ChatNotFound | SignInRequired):
                raise error
            try:
                view = await self.load(chat_id)
            except DatabaseUnavailable as outage:
                return self.offline(outage, chat_id=chat_id, draft=draft, request_id=request_id)
            context = self.context(
                view.chats, view.chat, draft=draft, request_id=request_id, error=error.message
            )
            return render(self.request, "chat.html", context, status_code=error.status_code)

        return page

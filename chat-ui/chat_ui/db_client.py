"""Async client for db-api: one pooled connection pool, the service credential, typed answers.

Every upstream failure becomes one of our `errors` types, so routes never see the HTTP
library. That library is aiohttp: every page makes a db-api request, and measured with
16 requests in flight, httpx's connection pool cost 0.82 ms of CPU per request against
aiohttp's 0.07 ms (httpx polls every pooled connection on each request).
"""

from __future__ import annotations

import json as jsonlib
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, TypeVar

import aiohttp
from pydantic import BaseModel, ValidationError

from chat_ui.errors import (
    AccountDisabled,
    AccountNotActive,
    AccountPending,
    AdminChangeRefused,
    ChatNotFound,
    ChatUiError,
    DatabaseUnavailable,
    GenerationInProgress,
    InvalidInput,
    LastAdmin,
    LinkInvalid,
    MessageStatusChanged,
    PageNotFound,
    ReplyInOtherChat,
    SendingTooFast,
    SigningUpTooFast,
    SignInNotFound,
    SignInRequired,
    SignUpClosed,
    StartingChatsTooFast,
    TooManyAttempts,
    UpstreamMisbehaved,
    UsernameTaken,
    WrongCredentials,
    WrongPassword,
    db_api_problem_message,
)
from chat_ui.schemas import (
    AdminUser,
    AdminUserList,
    AdoptedReply,
    AppSettingsView,
    AuditPage,
    ChatDetail,
    ChatExportPage,
    ChatPage,
    ChatPublic,
    InviteList,
    LinkCreated,
    LinkInfo,
    MessagePublic,
    MessageState,
    MessageStatus,
    PageView,
    PublicSettings,
    ReplyLease,
    Role,
    SearchHit,
    SearchResults,
    SessionCreated,
    SessionDetail,
    SessionList,
    SessionPublic,
    TurnPublic,
    UserPublic,
)

logger = logging.getLogger(__name__)

ModelT = TypeVar("ModelT", bound=BaseModel)
ErrorByStatus = Mapping[int, type[ChatUiError]]

# db-api answers in milliseconds when healthy; a slow answer means it is in trouble.
DB_API_TIMEOUT = aiohttp.ClientTimeout(total=10.0, connect=3.0)
# Password checks are slow on purpose and queue behind each other in db-api (one per
# core at a time), so a burst of sign-ins waits longer than any other request.
PASSWORD_TIMEOUT = aiohttp.ClientTimeout(total=60.0, connect=3.0)
CHAT_ERRORS: ErrorByStatus = {404: ChatNotFound}
# db-api lets a chat have one reply being written at a time; a second one answers 409.
# Starting replies faster than the user's rate limit answers 429.
TURN_ERRORS: ErrorByStatus = {404: ChatNotFound, 409: GenerationInProgress, 429: SendingTooFast}
# A conditional message update (if_status) that lost the race answers 409; setting a
# reply back to "generating" (a retry) takes from the same rate limit as a turn.
# A wrong password answers 403; an account deleted meanwhile, 404 (its sessions are gone too).
ACCOUNT_ERRORS: ErrorByStatus = {403: WrongPassword, 404: SignInRequired}
# Refusals that mean the same on every route, told apart by db-api's documented detail.
ERRORS_BY_DETAIL: Mapping[tuple[int, str], type[ChatUiError]] = {
    (403, "Account waiting for approval"): AccountPending,
    (403, "Account disabled"): AccountDisabled,
    # Not an admin: chat-ui's admin pages are as missing as any unknown page.
    (403, "Admins only"): PageNotFound,
    (409, "Use the account page to change your own account"): AdminChangeRefused,
    (409, "The install needs at least one active admin"): LastAdmin,
    (409, "Approve or enable the account first"): AccountNotActive,
}
MESSAGE_UPDATE_ERRORS: ErrorByStatus = {
    404: ChatNotFound,
    409: MessageStatusChanged,
    429: SendingTooFast,
}


@dataclass(frozen=True)
class Answer:
    """One db-api response, read in full."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)


def _invalid_input(response: Answer) -> InvalidInput:
    """A 422 as the person should read it: db-api's problems in our words, never its own."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    return InvalidInput(db_api_problem_message(detail))


class DbClient:
    """db-api, as seen by chat-ui: methods named after what the pages need."""

    def __init__(self, base_url: str, *, service_token: str) -> None:
        """Create it inside the event loop that will use it (aiohttp binds to it)."""
        self._base_url = base_url.rstrip("/")
        self._http = aiohttp.ClientSession(
            # uvicorn closes idle keep-alive connections after 5 s; reusing one at that
            # moment fails the request, so let idle ones go sooner.
            connector=aiohttp.TCPConnector(limit=50, keepalive_timeout=2.0),
            headers={"Authorization": f"Bearer {service_token}"},
            timeout=DB_API_TIMEOUT,
        )

    async def aclose(self) -> None:
        await self._http.close()

    # Users

    async def create_user(
        self,
        *,
        username: str,
        password: str,
        client_ip: str | None = None,
        invite: str | None = None,
    ) -> UserPublic:
        """A new account under the sign-up policy (pending under `approval`; SignUpClosed
        while `closed` without an `invite`, LinkInvalid for a bad one); db-api limits
        sign-ups per `client_ip` (SigningUpTooFast)."""
        body = {"username": username, "password": password}
        if client_ip is not None:
            body["client_ip"] = client_ip
        if invite:
            body["invite"] = invite
        response = await self._request(
            "POST",
            "/users",
            json=body,
            errors={403: SignUpClosed, 404: LinkInvalid, 409: UsernameTaken, 429: SigningUpTooFast},
            patience=PASSWORD_TIMEOUT,
        )
        return self._parse(UserPublic, response)

    async def verify_user(
        self, *, username: str, password: str, client_ip: str | None = None
    ) -> UserPublic:
        """Check the password; db-api throttles failures per account and per `client_ip`."""
        body = {"username": username, "password": password}
        if client_ip is not None:
            body["client_ip"] = client_ip
        response = await self._request(
            "POST",
            "/users/verify",
            json=body,
            errors={401: WrongCredentials, 403: AccountDisabled},
            patience=PASSWORD_TIMEOUT,
        )
        return self._parse(UserPublic, response)

    # Sessions

    async def start_session(
        self,
        user_id: uuid.UUID,
        *,
        max_age_seconds: int,
        user_agent: str | None = None,
        client_ip: str | None = None,
    ) -> SessionCreated:
        """A new server-side sign-in; its token goes into the cookie, db-api keeps a hash.

        The browser's `user_agent` and `client_ip` are what the account page lists it by.
        """
        body: dict[str, str | int] = {"user_id": str(user_id), "max_age_seconds": max_age_seconds}
        if user_agent is not None:
            body["user_agent"] = user_agent
        if client_ip is not None:
            body["client_ip"] = client_ip
        response = await self._request("POST", "/sessions", json=body, errors={404: SignInRequired})
        return self._parse(SessionCreated, response)

    async def resolve_session(self, token: str) -> UserPublic:
        """The session's user; expired, signed out or unknown raises SignInRequired."""
        response = await self._request(
            "GET",
            "/sessions/current",
            headers={"X-Session-Token": token},
            errors={404: SignInRequired, 422: SignInRequired},
        )
        return self._parse(SessionPublic, response).user

    async def page_view(
        self, token: str, *, chat_id: uuid.UUID | None, etag: str | None = None, limit: int = 50
    ) -> tuple[PageView | None, str]:
        """A chat page's data and its ETag, checking the session on the way.

        With the `etag` of a page already rendered, answers (None, etag) while nothing
        changed. Raises SignInRequired like `resolve_session`.
        """
        headers = {"X-Session-Token": token}
        if etag is not None:
            headers["If-None-Match"] = etag
        params: dict[str, int | str] = {"limit": limit}
        if chat_id is not None:
            params["chat_id"] = str(chat_id)
        response = await self._request(
            "GET",
            "/sessions/current/page",
            headers=headers,
            params=params,
            errors={404: SignInRequired, 422: SignInRequired},
        )
        current = response.headers.get("ETag", "")
        if response.status_code == HTTPStatus.NOT_MODIFIED:
            return None, current
        return self._parse(PageView, response), current

    async def end_session(self, token: str) -> None:
        await self._request("DELETE", "/sessions/current", headers={"X-Session-Token": token})

    async def end_all_sessions(self, user_id: uuid.UUID) -> None:
        """Sign the user out on every device."""
        await self._request("DELETE", "/sessions", user_id=user_id)

    async def list_sessions(self, user_id: uuid.UUID, *, token: str) -> list[SessionDetail]:
        """The user's live sign-ins, most recently seen first; `token`'s is marked current."""
        response = await self._request(
            "GET", "/sessions", user_id=user_id, headers={"X-Session-Token": token}
        )
        return self._parse(SessionList, response).items

    async def end_session_by_id(self, user_id: uuid.UUID, session_id: uuid.UUID) -> None:
        """Sign out one of the user's browsers; SignInNotFound unless it is (still) theirs."""
        await self._request(
            "DELETE", f"/sessions/{session_id}", user_id=user_id, errors={404: SignInNotFound}
        )

    # The account

    async def change_password(
        self,
        user_id: uuid.UUID,
        *,
        current_password: str,
        new_password: str,
        keep_token: str,
        client_ip: str | None = None,
    ) -> None:
        """A new password; every sign-in but `keep_token`'s ends. WrongPassword if
        `current_password` is not the user's (counted like a failed sign-in from `client_ip`)."""
        body = {"current_password": current_password, "new_password": new_password}
        if client_ip is not None:
            body["client_ip"] = client_ip
        await self._request(
            "POST",
            "/users/me/password",
            user_id=user_id,
            json=body,
            headers={"X-Session-Token": keep_token},
            errors=ACCOUNT_ERRORS,
            patience=PASSWORD_TIMEOUT,
        )

    async def delete_account(
        self, user_id: uuid.UUID, *, password: str, client_ip: str | None = None
    ) -> None:
        """Delete the user, their chats and sign-ins; WrongPassword if `password` is wrong."""
        body = {"password": password}
        if client_ip is not None:
            body["client_ip"] = client_ip
        await self._request(
            "DELETE",
            "/users/me",
            user_id=user_id,
            json=body,
            errors=ACCOUNT_ERRORS,
            patience=PASSWORD_TIMEOUT,
        )

    async def export_chats(
        self, user_id: uuid.UUID, *, after: uuid.UUID | None = None, limit: int = 20
    ) -> ChatExportPage:
        """`limit` of the user's chats with their messages, after the chat id `after`."""
        params: dict[str, int | str] = {"limit": limit}
        if after is not None:
            params["after"] = str(after)
        response = await self._request("GET", "/chats/export", user_id=user_id, params=params)
        return self._parse(ChatExportPage, response)

    # Settings and one-time links (no user: anyone may ask)

    async def public_settings(self) -> PublicSettings:
        return self._parse(PublicSettings, await self._request("GET", "/settings"))

    async def lookup_link(self, token: str) -> LinkInfo:
        """What a live invite or reset link is for; LinkInvalid if unknown, used or expired."""
        response = await self._request(
            "POST",
            "/links/lookup",
            json={"token": token},
            errors={404: LinkInvalid, 422: LinkInvalid},
        )
        return self._parse(LinkInfo, response)

    async def reset_password(self, *, token: str, new_password: str) -> None:
        """Set a new password with a reset link; every sign-in of the account ends."""
        await self._request(
            "POST",
            "/password-resets",
            json={"token": token, "new_password": new_password},
            errors={404: LinkInvalid},
            patience=PASSWORD_TIMEOUT,
        )

    # Admin (db-api checks that `admin_id` is an active admin: PageNotFound otherwise)

    async def admin_users(
        self,
        admin_id: uuid.UUID,
        *,
        search: str = "",
        status: str = "",
        offset: int = 0,
        limit: int = 50,
    ) -> AdminUserList:
        params: dict[str, int | str] = {"offset": offset, "limit": limit}
        if search:
            params["search"] = search
        if status:
            params["status"] = status
        response = await self._request("GET", "/admin/users", user_id=admin_id, params=params)
        return self._parse(AdminUserList, response)

    async def admin_user(self, admin_id: uuid.UUID, user_id: uuid.UUID) -> AdminUser:
        response = await self._request(
            "GET", f"/admin/users/{user_id}", user_id=admin_id, errors={404: PageNotFound}
        )
        return self._parse(AdminUser, response)

    async def admin_set_status(self, admin_id: uuid.UUID, user_id: uuid.UUID, status: str) -> None:
        await self._request(
            "PUT",
            f"/admin/users/{user_id}/status",
            user_id=admin_id,
            json={"status": status},
            errors={404: PageNotFound},
        )

    async def admin_set_role(self, admin_id: uuid.UUID, user_id: uuid.UUID, role: str) -> None:
        await self._request(
            "PUT",
            f"/admin/users/{user_id}/role",
            user_id=admin_id,
            json={"role": role},
            errors={404: PageNotFound},
        )

    async def admin_delete_user(self, admin_id: uuid.UUID, user_id: uuid.UUID) -> None:
        await self._request(
            "DELETE", f"/admin/users/{user_id}", user_id=admin_id, errors={404: PageNotFound}
        )

    async def admin_password_reset(self, admin_id: uuid.UUID, user_id: uuid.UUID) -> LinkCreated:
        response = await self._request(
            "POST",
            f"/admin/users/{user_id}/password-reset",
            user_id=admin_id,
            errors={404: PageNotFound},
        )
        return self._parse(LinkCreated, response)

    async def admin_invites(self, admin_id: uuid.UUID) -> InviteList:
        response = await self._request("GET", "/admin/invites", user_id=admin_id)
        return self._parse(InviteList, response)

    async def admin_create_invite(self, admin_id: uuid.UUID, *, valid_hours: float) -> LinkCreated:
        response = await self._request(
            "POST", "/admin/invites", user_id=admin_id, json={"valid_hours": valid_hours}
        )
        return self._parse(LinkCreated, response)

    async def admin_revoke_invite(self, admin_id: uuid.UUID, invite_id: uuid.UUID) -> None:
        await self._request(
            "DELETE", f"/admin/invites/{invite_id}", user_id=admin_id, errors={404: LinkInvalid}
        )

    async def admin_settings(self, admin_id: uuid.UUID) -> AppSettingsView:
        response = await self._request("GET", "/admin/settings", user_id=admin_id)
        return self._parse(AppSettingsView, response)

    async def admin_update_settings(
        self, admin_id: uuid.UUID, values: Mapping[str, Any]
    ) -> AppSettingsView:
        response = await self._request(
            "PUT", "/admin/settings", user_id=admin_id, json=dict(values)
        )
        return self._parse(AppSettingsView, response)

    async def admin_audit(
        self, admin_id: uuid.UUID, *, before_id: int | None = None, limit: int = 50
    ) -> AuditPage:
        params: dict[str, int | str] = {"limit": limit}
        if before_id is not None:
            params["before_id"] = before_id
        response = await self._request("GET", "/admin/audit", user_id=admin_id, params=params)
        return self._parse(AuditPage, response)

    # Chats

    async def list_chats(self, user_id: uuid.UUID, *, limit: int = 50) -> list[ChatPublic]:
        response = await self._request(
            "GET", "/chats", user_id=user_id, params={"limit": limit, "offset": 0}
        )
        return self._parse(ChatPage, response).items

    async def create_chat(
        self, user_id: uuid.UUID, *, title: str, request_id: uuid.UUID | None = None
    ) -> tuple[ChatPublic, bool]:
        """The chat, and False when `request_id` had created it before (nothing written now).

        Raises StartingChatsTooFast beyond the user's limit on new chats.
        """
        body: dict[str, str] = {"title": title}
        if request_id is not None:
            body["request_id"] = str(request_id)
        response = await self._request(
            "POST", "/chats", user_id=user_id, json=body, errors={429: StartingChatsTooFast}
        )
        return self._parse(ChatPublic, response), response.status_code == HTTPStatus.CREATED

    async def get_chat(self, user_id: uuid.UUID, chat_id: uuid.UUID) -> ChatDetail:
        response = await self._request(
            "GET", f"/chats/{chat_id}", user_id=user_id, errors=CHAT_ERRORS
        )
        return self._parse(ChatDetail, response)

    async def rename_chat(self, user_id: uuid.UUID, chat_id: uuid.UUID, *, title: str) -> None:
        await self._request(
            "PATCH", f"/chats/{chat_id}", user_id=user_id, json={"title": title}, errors=CHAT_ERRORS
        )

    async def delete_chat(self, user_id: uuid.UUID, chat_id: uuid.UUID) -> None:
        """Delete the chat and (by cascade in db-api) all its messages."""
        await self._request("DELETE", f"/chats/{chat_id}", user_id=user_id, errors=CHAT_ERRORS)

    async def search_chats(
        self, user_id: uuid.UUID, query: str, *, limit: int = 20
    ) -> list[SearchHit]:
        """The user's chats matching `query` (titles and messages), best match first."""
        response = await self._request(
            "GET", "/chats/search", user_id=user_id, params={"q": query, "limit": limit}
        )
        return self._parse(SearchResults, response).items

    async def add_message(
        self,
        user_id: uuid.UUID,
        chat_id: uuid.UUID,
        *,
        role: Role,
        content: str,
        status: MessageStatus = "complete",
    ) -> MessagePublic:
        response = await self._request(
            "POST",
            f"/chats/{chat_id}/messages",
            user_id=user_id,
            json={"role": role, "content": content, "status": status},
            errors=TURN_ERRORS,
        )
        return self._parse(MessagePublic, response)

    async def update_message(
        self,
        user_id: uuid.UUID,
        chat_id: uuid.UUID,
        message_id: int,
        *,
        content: str | None = None,
        status: MessageStatus | None = None,
        if_status: MessageStatus | None = None,
        context_start_id: int | None = None,
        clear_context_start: bool = False,
    ) -> MessagePublic:
        """Change a message; with `if_status`, only while it still has that status.

        Raises MessageStatusChanged when db-api refuses the conditional update (409),
        e.g. a reply stopped elsewhere. `clear_context_start` sets context_start_id
        back to null (the model saw the whole chat this time).
        """
        changes: dict[str, str | int | None] = {}
        if content is not None:
            changes["content"] = content
        if status is not None:
            changes["status"] = status
        if if_status is not None:
            changes["if_status"] = if_status
        if context_start_id is not None or clear_context_start:
            changes["context_start_id"] = context_start_id
        response = await self._request(
            "PATCH",
            f"/chats/{chat_id}/messages/{message_id}",
            user_id=user_id,
            json=changes,
            errors=MESSAGE_UPDATE_ERRORS,
        )
        return self._parse(MessagePublic, response)

    async def get_message(
        self, user_id: uuid.UUID, chat_id: uuid.UUID, message_id: int
    ) -> MessageState:
        response = await self._request(
            "GET", f"/chats/{chat_id}/messages/{message_id}", user_id=user_id, errors=CHAT_ERRORS
        )
        return self._parse(MessageState, response)

    async def renew_lease(
        self, user_id: uuid.UUID, chat_id: uuid.UUID, message_id: int, *, slots: int
    ) -> ReplyLease:
        """Renew this process's lease on a reply it writes; its model slot or place in line.

        Raises MessageStatusChanged when the reply is no longer being written (stopped
        elsewhere, finished, or the lease lapsed and the slot went to another reply).
        """
        response = await self._request(
            "PUT",
            f"/chats/{chat_id}/messages/{message_id}/lease",
            user_id=user_id,
            json={"slots": slots},
            errors=MESSAGE_UPDATE_ERRORS,
        )
        return self._parse(ReplyLease, response)

    async def adopt_reply(self) -> AdoptedReply | None:
        """Take over a waiting reply whose writer is gone; None when there is none."""
        response = await self._request("POST", "/reply-jobs/adopt")
        if response.status_code == HTTPStatus.NO_CONTENT:
            return None
        return self._parse(AdoptedReply, response)

    async def create_turn(
        self,
        user_id: uuid.UUID,
        chat_id: uuid.UUID,
        *,
        content: str,
        title: str | None = None,
        request_id: uuid.UUID | None = None,
        replace_after_id: int | None = None,
        slots: int | None = None,
    ) -> tuple[TurnPublic, bool]:
        """Store the user's message and an empty reply being generated, in one transaction.

        `title` renames the chat only if it has no user message yet (db-api decides).
        `replace_after_id` deletes the chat's messages after that id in the same
        transaction (an edit). Answers False with the turn when `request_id` had stored
        it before (nothing written now). Raises GenerationInProgress while another reply
        is being written (ReplyInOtherChat when it is in another chat), SendingTooFast
        beyond the user's limit on starting replies. With `slots` (the model server's),
        the answer's `slot` is the model slot granted to the reply, if one was free.
        """
        body: dict[str, str | int] = {"content": content}
        if slots is not None:
            body["slots"] = slots
        if replace_after_id is not None:
            body["replace_after_id"] = replace_after_id
        if title is not None:
            body["title"] = title
        if request_id is not None:
            body["request_id"] = str(request_id)
        response = await self._request(
            "POST", f"/chats/{chat_id}/turns", user_id=user_id, json=body, errors=TURN_ERRORS
        )
        return self._parse(TurnPublic, response), response.status_code == HTTPStatus.CREATED

    async def delete_messages_after(
        self, user_id: uuid.UUID, chat_id: uuid.UUID, *, after_id: int
    ) -> None:
        """Delete the chat's messages with an id greater than `after_id`."""
        await self._request(
            "DELETE",
            f"/chats/{chat_id}/messages",
            user_id=user_id,
            params={"after_id": after_id},
            errors=CHAT_ERRORS,
        )

    # Health

    async def is_ready(self) -> bool:
        try:
            async with self._http.get(f"{self._base_url}/health/ready") as response:
                return response.status == HTTPStatus.OK
        except (aiohttp.ClientError, TimeoutError):
            return False

    # Plumbing

    async def _request(
        self,
        method: str,
        path: str,
        *,
        user_id: uuid.UUID | None = None,
        json: Any = None,
        params: Mapping[str, int | str] | None = None,
        errors: ErrorByStatus | None = None,
        headers: Mapping[str, str] | None = None,
        patience: aiohttp.ClientTimeout = DB_API_TIMEOUT,
    ) -> Answer:
        sent_headers = dict(headers or {})
        if user_id is not None:
            sent_headers["X-User-Id"] = str(user_id)
        try:
            async with self._http.request(
                method,
                f"{self._base_url}{path}",
                json=json,
                params=params,
                headers=sent_headers,
                timeout=patience,
            ) as answer:
                response = Answer(answer.status, answer.headers, await answer.read())
        except (aiohttp.ClientError, TimeoutError) as error:
            # Refused, reset, cut short or too slow: db-api is not there for us now.
            logger.warning("db-api unreachable: %s %s: %r", method, path, error)
            raise DatabaseUnavailable() from error
        if response.is_success or response.status_code == HTTPStatus.NOT_MODIFIED:
            return response
        status = response.status_code
        if (by_detail := ERRORS_BY_DETAIL.get((status, _detail_of(response)))) is not None:
            raise by_detail()
        if status == HTTPStatus.CONFLICT and (busy := _busy_chat_of(response)) is not None:
            # One reply at a time per user: whatever else a 409 of this route would mean.
            raise ReplyInOtherChat(busy)
        mapped = (errors or {}).get(status)
        if status == HTTPStatus.TOO_MANY_REQUESTS:
            # Saying when to try again, in the words of what was refused.
            too_fast = mapped if mapped and issubclass(mapped, TooManyAttempts) else TooManyAttempts
            raise too_fast(_retry_after(response))
        if mapped is SignInRequired:
            raise SignInRequired(expired=True)
        if mapped is not None:
            raise mapped()
        if status == HTTPStatus.UNPROCESSABLE_ENTITY:
            raise _invalid_input(response)
        if status in (HTTPStatus.SERVICE_UNAVAILABLE, HTTPStatus.BAD_GATEWAY):
            raise DatabaseUnavailable()
        logger.error("db-api answered %s to %s %s: %s", status, method, path, response.text[:500])
        raise UpstreamMisbehaved()

    @staticmethod
    def _parse(model: type[ModelT], response: Answer) -> ModelT:
        try:
            return model.model_validate_json(response.content)
        except ValidationError as error:
            logger.error("db-api answered an unexpected shape for %s: %s", model.__name__, error)
            raise UpstreamMisbehaved() from error


def _detail_of(response: Answer) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return ""
    return detail if isinstance(detail, str) else ""


def _busy_chat_of(response: Answer) -> uuid.UUID | None:
    """The chat named by db-api's "reply in another of your chats" 409, if it is one."""
    try:
        return uuid.UUID(str(response.json()["busy_chat_id"]))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _retry_after(response: Answer) -> int:
    try:
        return max(1, int(response.headers.get("Retry-After", "")))
    except ValueError:
        return 60

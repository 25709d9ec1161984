"""In-memory stand-ins for db-api and the llama.cpp server, for the in-process tier only.

`tests/inprocess/` runs chat-ui's real app with its real `DbClient` and `LmClient`;
only the wire under them is replaced, so everything chat-ui does with an answer
(statuses turned into `chat_ui.errors`, bodies parsed into `chat_ui.schemas`, streams
read and closed) is the production code:

- `FakeDbApi` answers DbClient's requests the way db-api does, for what chat-ui relies
  on: every chat query scoped to its owner (someone else's chat is 404, exactly like a
  missing one), one `generating` reply per chat (409) and per user (409 with
  `busy_chat_id`), conditional message updates
  (`if_status`, 409 with the current status), request ids that answer what they stored
  before (200 instead of 201), the per-user rate limits on starting replies and creating
  chats (429 with `Retry-After`; off unless a test sets `reply_limit` or `chat_limit`),
  the page view's revision and ETag (every change to a user's chats or messages bumps
  it; a matching `If-None-Match` gets 304), and the account's own routes (sessions
  listed and ended one by one; a new password ends the other sessions and a deletion
  takes everything of the user, both 403 for a wrong password, which counts towards
  the same lock as a failed sign-in), and the `open` sign-up policy with every account
  an active user (`GET /settings`; roles, approval and the admin's routes are tested
  against db-api itself, in `tests/db_api` and `tests/chat_ui`). Request
  bodies and search queries are validated with db-api's own models (`db_api.schemas`),
  so a refusal is db-api's 422 with its `detail`; answers are built through db-api's
  response models, so they have its documented shapes (`tests/unit/test_fakes.py`
  checks them against db-api's OpenAPI schema, as `test_db_api_contract.py` checks
  what chat-ui sends). Search is a plain substring match, not PostgreSQL's full-text
  search: tests of search semantics stay in `tests/db_api` and `tests/chat_ui`.
- `FakeModel` is llama.cpp's server behind an `httpx.MockTransport`: `/props`,
  `/apply-template`, `/tokenize`, `/health` and a streamed `/v1/chat/completions` of
  deterministic tokens. It can be down, loading, fail, break off mid-reply or hang
  until the reply is stopped, and it counts the streams it opened and saw closed.

Neither is a substitute for the real services: what PostgreSQL or llama.cpp themselves
do (constraints under concurrency, real tokenizers, freeing a slot) is tested against
them in `tests/db_api`, `tests/lm_api` and `tests/chat_ui`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
import secrets
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar, cast
from urllib.parse import urlsplit

import aiohttp
import httpx
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, TypeAdapter, ValidationError

from chat_ui.db_client import DbClient
from chat_ui.lm_client import LmClient
from db_api import schemas as db
from db_api.config import RateLimit
from db_api.config import Settings as DbApiSettings
from db_api.queries.rate_limits import REFUSALS, Action
from db_api.queries.reply_jobs import LEASE

__all__: list[str] = []

ModelT = TypeVar("ModelT", bound=BaseModel)
Id = uuid.UUID | str

DB_API_URL = "http://db-api.fake"
LM_API_URL = "http://lm-api.fake"

# db-api's defaults: failed sign-ins per account before it is locked, and for how long.
LOGIN_MAX_FAILURES: int = DbApiSettings.model_fields["login_max_failures"].default
LOGIN_LOCK_SECONDS: int = DbApiSettings.model_fields["login_lock_seconds"].default

_SEARCH_QUERY: TypeAdapter[str] = TypeAdapter(db.SearchQuery)


class DbApiError(Exception):
    """An answer other than success: db-api's status, JSON body and headers."""

    def __init__(
        self,
        status: int,
        detail: Any,
        *,
        headers: Mapping[str, str] | None = None,
        current: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(status, detail)
        self.status = status
        # A 409 about a message also says its status now (db-api's StatusConflict).
        self.body = {"detail": detail} if current is None else {"detail": detail, "status": current}
        self.body.update(extra or {})
        self.headers = dict(headers or {})


def _not_found(what: str) -> DbApiError:
    return DbApiError(404, f"{what} not found")


def _validation_refusal(error: ValidationError, *where: str) -> DbApiError:
    """db-api's 422: FastAPI's list of problems, each located in the body or the query."""
    problems = error.errors(include_url=False)
    for problem in problems:
        problem["loc"] = (*where, *problem["loc"])
    return DbApiError(422, jsonable_encoder(problems))


def _body(model: type[ModelT], body: Any) -> ModelT:
    try:
        # JSON mode, as the body arrives over the wire.
        return model.model_validate_json(json.dumps(body))
    except ValidationError as error:
        raise _validation_refusal(error, "body") from None


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _User:
    id: uuid.UUID
    username: str
    password_sha256: str
    created_at: datetime
    revision: int = 0
    failures: int = 0
    locked_until: datetime | None = None
    # Nobody is an admin here: the admin's routes are db-api's own (see the docstring).
    role: str = "user"


@dataclass
class _Session:
    user_id: uuid.UUID
    expires_at: datetime
    created_at: datetime
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    user_agent: str | None = None
    client_ip: str | None = None


@dataclass
class _Chat:
    id: uuid.UUID
    owner_id: uuid.UUID
    title: str
    created_at: datetime
    updated_at: datetime
    request_id: uuid.UUID | None = None


@dataclass
class _Message:
    id: int
    chat_id: uuid.UUID
    role: str
    content: str
    status: str
    created_at: datetime
    updated_at: datetime
    context_start_id: int | None = None
    request_id: uuid.UUID | None = None


@dataclass
class _Job:
    """A reply being written (db-api's `reply_jobs` row): its lease, slot or place in line."""

    owner_id: uuid.UUID
    chat_id: uuid.UUID
    queued: int
    lease_until: datetime
    slot: int | None = None

    def writer_alive(self, now: datetime) -> bool:
        return self.slot is None or self.lease_until > now


@dataclass
class _Bucket:
    tokens: float
    refilled_at: datetime


@dataclass
class FakeDbApi:
    """db-api's data and rules for what chat-ui relies on, in dicts (see the module docstring).

    `down` makes every request fail as if db-api were unreachable; `requests` records
    (method, path, status) of each request answered, to show what a route asked for.
    `reply_limit` and `chat_limit` turn on db-api's per-user rate limits (None: none).
    """

    users: dict[uuid.UUID, _User] = field(default_factory=dict)
    sessions: dict[str, _Session] = field(default_factory=dict)
    chats: dict[uuid.UUID, _Chat] = field(default_factory=dict)
    messages: dict[int, _Message] = field(default_factory=dict)
    jobs: dict[int, _Job] = field(default_factory=dict)
    down: bool = False
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    reply_limit: RateLimit | None = None
    chat_limit: RateLimit | None = None
    buckets: dict[str, _Bucket] = field(default_factory=dict)
    _next_message_id: int = 1

    # ---- helpers for tests (synchronous: call them in the app's event loop) --------

    def user_id(self, username: str) -> uuid.UUID:
        return next(u.id for u in self.users.values() if u.username == username)

    def accepts_password(self, username: str, password: str) -> bool:
        """Whether `username` exists and `password` is (still) theirs."""
        user = next((u for u in self.users.values() if u.username == username), None)
        return user is not None and user.password_sha256 == _sha256(password)

    def chat_json(self, owner_id: Id, chat_id: Id) -> dict[str, Any]:
        """The chat with its messages, as `GET /chats/{id}` answers it."""
        return self._detail(self._owned_chat(_uuid(owner_id), _uuid(chat_id)))

    def everything(self, owner_id: Id) -> list[dict[str, Any]]:
        """Every chat of the owner with its messages, oldest chat first."""
        owner = _uuid(owner_id)
        owned = sorted(
            (c for c in self.chats.values() if c.owner_id == owner), key=lambda c: c.created_at
        )
        return [self._detail(chat) for chat in owned]

    def add_message(
        self,
        owner_id: Id,
        chat_id: Id,
        *,
        content: str = "Hello!",
        role: str = "user",
        status: str = "complete",
    ) -> dict[str, Any]:
        body = {"role": role, "content": content, "status": status}
        return self._add_message(_uuid(owner_id), _uuid(chat_id), body)

    def start_turn(self, owner_id: Id, chat_id: Id, *, content: str = "Hello!") -> dict[str, Any]:
        """A user message and its reply being written (as no live task here writes it)."""
        answer, _created = self._start_turn(_uuid(owner_id), _uuid(chat_id), {"content": content})
        return answer

    def rename_chat(self, owner_id: Id, chat_id: Id, *, title: str) -> dict[str, Any]:
        return self._rename_chat(_uuid(owner_id), _uuid(chat_id), {"title": title})

    def create_chat(self, owner_id: Id, *, title: str = "New chat") -> dict[str, Any]:
        """An empty chat (no opening message), as `POST /chats` makes it."""
        answer, _created = self._create_chat(_uuid(owner_id), {"title": title})
        return answer

    def end_all_sessions(self, owner_id: Id) -> None:
        owner = _uuid(owner_id)
        for key in [k for k, s in self.sessions.items() if s.user_id == owner]:
            del self.sessions[key]

    # ---- the wire ------------------------------------------------------------------

    def answer(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str],
        params: Mapping[str, Any],
        body: Any,
    ) -> tuple[int, dict[str, str], bytes]:
        """One request as db-api would answer it: (status, headers, body)."""
        try:
            status, answer, answer_headers = self._route(method, path, headers, params, body)
        except DbApiError as refusal:
            status, answer, answer_headers = refusal.status, refusal.body, refusal.headers
        self.requests.append((method, path, status))
        content = b"" if answer is None else json.dumps(jsonable_encoder(answer)).encode()
        if answer is not None:
            answer_headers = {"Content-Type": "application/json", **answer_headers}
        return status, answer_headers, content

    def _route(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        params: Mapping[str, Any],
        body: Any,
    ) -> tuple[int, Any, dict[str, str]]:
        token = headers.get("X-Session-Token")
        user_header = headers.get("X-User-Id")
        acting = uuid.UUID(user_header) if user_header else None
        parts = path.strip("/").split("/")
        match method, parts:
            case "GET", ["health", "ready"]:
                return 200, {"status": "ok"}, {}
            case "GET", ["settings"]:
                settings = {"signup_mode": "open", "max_message_chars": None, "system_prompt": None}
                return 200, _shape(db.PublicSettings, settings), {}
            case "POST", ["users"]:
                return 201, self._create_user(body), {}
            case "POST", ["users", "verify"]:
                return 200, self._verify_user(body), {}
            case "POST", ["sessions"]:
                return 201, self._create_session(body), {}
            case "GET", ["sessions", "current"]:
                user, live = self._live_session(token)
                return 200, self._session_public(user, live), {}
            case "GET", ["sessions", "current", "page"]:
                return self._page_view(token, headers.get("If-None-Match"), params)
            case "DELETE", ["sessions", "current"]:
                self.sessions.pop(_token_key(token or ""), None)
                return 204, None, {}
            case "DELETE", ["sessions"]:
                self.end_all_sessions(self._acting(acting))
                return 204, None, {}
            case "GET", ["sessions"]:
                return 200, self._list_sessions(self._acting(acting), token), {}
            case "DELETE", ["sessions", session_text]:
                self._end_session_by_id(self._acting(acting), session_text)
                return 204, None, {}
            case "POST", ["users", "me", "password"]:
                self._change_password(self._acting(acting), token, body)
                return 204, None, {}
            case "DELETE", ["users", "me"]:
                self._delete_account(self._acting(acting), body)
                return 204, None, {}
            case "GET", ["chats", "export"]:
                return 200, self._export(self._acting(acting), params), {}
            case "GET", ["chats"]:
                return 200, self._list_chats(self._acting(acting), params), {}
            case "POST", ["chats"]:
                answer, created = self._create_chat(self._acting(acting), body)
                return (201 if created else 200), answer, {}
            case "GET", ["chats", "search"]:
                return 200, self._search(self._acting(acting), params), {}
            case "POST", ["reply-jobs", "adopt"]:
                return self._adopt()
            case _, ["chats", chat_text, *rest]:
                owner, chat_id = self._acting(acting), _chat_id(chat_text)
                return self._chat_route(method, owner, chat_id, rest, params, body)
        raise DbApiError(404, "Not Found")

    def _chat_route(
        self,
        method: str,
        owner: uuid.UUID,
        chat_id: uuid.UUID,
        rest: list[str],
        params: Mapping[str, Any],
        body: Any,
    ) -> tuple[int, Any, dict[str, str]]:
        match method, rest:
            case "GET", []:
                return 200, self.chat_json(owner, chat_id), {}
            case "PATCH", []:
                return 200, self._rename_chat(owner, chat_id, body), {}
            case "DELETE", []:
                self._delete_chat(owner, chat_id)
                return 204, None, {}
            case "POST", ["messages"]:
                return 201, self._add_message(owner, chat_id, body), {}
            case "DELETE", ["messages"]:
                self._delete_after(owner, chat_id, int(params["after_id"]))
                return 204, None, {}
            case "GET", ["messages", message_text]:
                self._owned_message(owner, chat_id, message_text)
                self._interrupt_lapsed(chat_id)
                message = self._owned_message(owner, chat_id, message_text)
                return 200, self._message_state(message), {}
            case "PUT", ["messages", message_text, "lease"]:
                return 200, self._renew_lease(owner, chat_id, message_text, body), {}
            case "PATCH", ["messages", message_text]:
                return 200, self._update_message(owner, chat_id, message_text, body), {}
            case "POST", ["turns"]:
                answer, created = self._start_turn(owner, chat_id, body)
                return (201 if created else 200), answer, {}
        raise DbApiError(404, "Not Found")

    # ---- users and sessions --------------------------------------------------------

    def _create_user(self, body: Any) -> dict[str, Any]:
        new = _body(db.SignUp, body)
        if any(u.username.lower() == new.username.lower() for u in self.users.values()):
            raise DbApiError(409, "Username is already taken")
        user = _User(uuid.uuid4(), new.username, _sha256(new.password), _now())
        self.users[user.id] = user
        return self._public_user(user)

    def _verify_user(self, body: Any) -> dict[str, Any]:
        attempt = _body(db.LoginAttempt, body)
        user = next(
            (u for u in self.users.values() if u.username.lower() == attempt.username.lower()),
            None,
        )
        now = _now()
        if user is not None and user.locked_until is not None and user.locked_until > now:
            retry_after = math.ceil((user.locked_until - now).total_seconds())
            raise DbApiError(
                429,
                "Too many failed logins; try again later",
                headers={"Retry-After": str(retry_after)},
            )
        if user is None or user.password_sha256 != _sha256(attempt.password):
            if user is not None:
                user.failures += 1
                if user.failures >= LOGIN_MAX_FAILURES:
                    user.locked_until = now + timedelta(seconds=LOGIN_LOCK_SECONDS)
            raise DbApiError(401, "Wrong username or password")
        user.failures, user.locked_until = 0, None
        return self._public_user(user)

    def _create_session(self, body: Any) -> dict[str, Any]:
        new = _body(db.SessionCreate, body)
        user = self.users.get(new.user_id)
        if user is None:
            raise DbApiError(404, "User not found")
        token = secrets.token_urlsafe(32)
        now = _now()
        live = _Session(
            user.id,
            now + timedelta(seconds=new.max_age_seconds),
            now,
            user_agent=new.user_agent,
            client_ip=None if new.client_ip is None else str(new.client_ip),
        )
        self.sessions[_token_key(token)] = live
        return _shape(db.SessionCreated, {**self._session_public(user, live), "token": token})

    def _live_session(self, token: str | None) -> tuple[_User, _Session]:
        live = self.sessions.get(_token_key(token or ""))
        if live is None or live.expires_at <= _now() or live.user_id not in self.users:
            raise DbApiError(404, "Session expired or signed out")
        return self.users[live.user_id], live

    def _session_public(self, user: _User, live: _Session) -> dict[str, Any]:
        return _shape(
            db.SessionPublic,
            {
                "user": self._public_user(user),
                "expires_at": live.expires_at,
                "created_at": live.created_at,
            },
        )

    def _list_sessions(self, owner: uuid.UUID, token: str | None) -> dict[str, Any]:
        now, current = _now(), _token_key(token) if token else None
        mine = [
            (key, live)
            for key, live in self.sessions.items()
            if live.user_id == owner and live.expires_at > now
        ]
        mine.sort(key=lambda entry: entry[1].created_at, reverse=True)
        items = [
            {
                "id": live.id,
                "created_at": live.created_at,
                "last_seen_at": live.created_at,
                "expires_at": live.expires_at,
                "user_agent": live.user_agent,
                "client_ip": live.client_ip,
                "current": key == current,
            }
            for key, live in mine
        ]
        return _shape(db.SessionList, {"items": items})

    def _end_session_by_id(self, owner: uuid.UUID, session_text: str) -> None:
        session_id = _path_uuid(session_text, "session_id")
        key = next(
            (k for k, s in self.sessions.items() if s.id == session_id and s.user_id == owner),
            None,
        )
        if key is None:
            raise DbApiError(404, "Session expired or signed out")
        del self.sessions[key]

    def _confirm_password(self, owner: uuid.UUID, password: str) -> _User:
        """db-api's password check for the account's own changes, on the sign-in counts."""
        user = self.users.get(owner)
        if user is None:
            raise DbApiError(404, "User not found")
        now = _now()
        if user.locked_until is not None and user.locked_until > now:
            retry_after = math.ceil((user.locked_until - now).total_seconds())
            raise DbApiError(
                429,
                "Too many failed logins; try again later",
                headers={"Retry-After": str(retry_after)},
            )
        if user.password_sha256 != _sha256(password):
            user.failures += 1
            if user.failures >= LOGIN_MAX_FAILURES:
                user.locked_until = now + timedelta(seconds=LOGIN_LOCK_SECONDS)
            raise DbApiError(403, "Wrong password")
        return user

    def _change_password(self, owner: uuid.UUID, token: str | None, body: Any) -> None:
        change = _body(db.PasswordChange, body)
        user = self._confirm_password(owner, change.current_password)
        user.password_sha256 = _sha256(change.new_password)
        kept = _token_key(token) if token else None
        for key in [k for k, s in self.sessions.items() if s.user_id == owner and k != kept]:
            del self.sessions[key]

    def _delete_account(self, owner: uuid.UUID, body: Any) -> None:
        deletion = _body(db.AccountDeletion, body)
        self._confirm_password(owner, deletion.password)
        del self.users[owner]
        self.end_all_sessions(owner)
        for chat in [c for c in self.chats.values() if c.owner_id == owner]:
            del self.chats[chat.id]
            for message in self._messages_of(chat.id):
                del self.messages[message.id]
                self.jobs.pop(message.id, None)
        for action in REFUSALS:
            self.buckets.pop(f"{action}:{owner}", None)

    def _page_view(
        self, token: str | None, if_none_match: str | None, params: Mapping[str, Any]
    ) -> tuple[int, Any, dict[str, str]]:
        user, _live = self._live_session(token)
        etag = f'"{user.id}.{user.revision}"'
        candidates = [tag.strip().removeprefix("W/") for tag in (if_none_match or "").split(",")]
        if if_none_match and any(tag in ("*", etag) for tag in candidates):
            return 304, None, {"ETag": etag}
        chat_text = params.get("chat_id")
        chat = None
        if chat_text is not None:
            found = self.chats.get(_chat_id(str(chat_text)))
            chat = self._detail(found) if found and found.owner_id == user.id else None
        view = {
            "user": self._public_user(user),
            "revision": user.revision,
            "chats": self._chat_list(user.id, limit=int(params.get("limit", 50))),
            "chat": chat,
        }
        return 200, _shape(db.PageView, view), {"ETag": etag}

    # ---- chats ---------------------------------------------------------------------

    def _acting(self, user_id: uuid.UUID | None) -> uuid.UUID:
        if user_id is None:
            raise DbApiError(
                422, [{"type": "missing", "loc": ["header", "X-User-Id"], "msg": "Field required"}]
            )
        return user_id

    def _owned_chat(self, owner: uuid.UUID, chat_id: uuid.UUID) -> _Chat:
        chat = self.chats.get(chat_id)
        if chat is None or chat.owner_id != owner:
            raise _not_found("Chat")
        return chat

    def _touch(self, chat: _Chat) -> None:
        """A change to the chat: it moves to the top and its owner's pages change."""
        chat.updated_at = _now()
        self.users[chat.owner_id].revision += 1

    def _chat_list(self, owner: uuid.UUID, *, limit: int, offset: int = 0) -> list[dict[str, Any]]:
        owned = [c for c in self.chats.values() if c.owner_id == owner]
        # Newest first by updated_at, then created_at; ties by id (as db-api's ORDER BY).
        owned.sort(key=lambda c: str(c.id))
        owned.sort(key=lambda c: (c.updated_at, c.created_at), reverse=True)
        return [self._public_chat(c) for c in owned[offset : offset + limit]]

    def _list_chats(self, owner: uuid.UUID, params: Mapping[str, Any]) -> dict[str, Any]:
        limit, offset = int(params.get("limit", 20)), int(params.get("offset", 0))
        total = sum(1 for c in self.chats.values() if c.owner_id == owner)
        items = self._chat_list(owner, limit=limit, offset=offset)
        return _shape(
            db.ChatPage, {"items": items, "total": total, "limit": limit, "offset": offset}
        )

    def _create_chat(self, owner: uuid.UUID, body: Any) -> tuple[dict[str, Any], bool]:
        new = _body(db.ChatCreate, body)
        if owner not in self.users:
            raise DbApiError(404, "User not found")
        if new.request_id is not None:
            for chat in self.chats.values():
                if chat.owner_id == owner and chat.request_id == new.request_id:
                    return self._public_chat(chat), False
        self._take_token("chat", owner)
        now = _now()
        chat = _Chat(
            uuid.uuid4(), owner, new.title or db.DEFAULT_CHAT_TITLE, now, now, new.request_id
        )
        self.chats[chat.id] = chat
        self.users[owner].revision += 1
        return self._public_chat(chat), True

    def _rename_chat(self, owner: uuid.UUID, chat_id: uuid.UUID, body: Any) -> dict[str, Any]:
        change = _body(db.ChatUpdate, body)
        chat = self._owned_chat(owner, chat_id)
        chat.title = change.title
        self._touch(chat)
        return self._public_chat(chat)

    def _delete_chat(self, owner: uuid.UUID, chat_id: uuid.UUID) -> None:
        chat = self._owned_chat(owner, chat_id)
        del self.chats[chat.id]
        for message in self._messages_of(chat.id):
            del self.messages[message.id]
        self.users[owner].revision += 1

    def _export(self, owner: uuid.UUID, params: Mapping[str, Any]) -> dict[str, Any]:
        """db-api's pages of chats with their messages, in chat id order."""
        limit = int(params.get("limit", 20))
        after = params.get("after")
        start = uuid.UUID(int=0) if after is None else _path_uuid(str(after), "after", "query")
        owned = sorted((c for c in self.chats.values() if c.owner_id == owner), key=lambda c: c.id)
        page = [chat for chat in owned if chat.id > start][:limit]
        next_after = page[-1].id if len(page) == limit else None
        items = [self._detail(chat) for chat in page]
        return _shape(db.ChatExportPage, {"items": items, "next_after": next_after})

    def _search(self, owner: uuid.UUID, params: Mapping[str, Any]) -> dict[str, Any]:
        try:
            query = _SEARCH_QUERY.validate_python(params.get("q", ""))
        except ValidationError as error:
            # A query parameter's problems are located at it: ("query", "q").
            raise _validation_refusal(error, "query", "q") from None
        words = [word.lower() for word in re.findall(r"\w+", query)]
        hits = []
        for chat in (c for c in self.chats.values() if c.owner_id == owner):
            # The first matching message (db-api: the best), else the title.
            sources = [*((m.content, m.id) for m in self._messages_of(chat.id)), (chat.title, None)]
            for text, message_id in sources:
                snippet = _snippet(text, words)
                if snippet is not None:
                    hit = {"chat": self._public_chat(chat), "snippet": snippet}
                    hits.append({**hit, "message_id": message_id})
                    break
        limit = int(params.get("limit", 20))
        return _shape(db.SearchResults, {"items": hits[:limit], "query": query})

    # ---- messages ------------------------------------------------------------------

    def _messages_of(self, chat_id: uuid.UUID) -> list[_Message]:
        return sorted(
            (m for m in self.messages.values() if m.chat_id == chat_id), key=lambda m: m.id
        )

    def _generating_in(self, chat_id: uuid.UUID) -> _Message | None:
        return next((m for m in self._messages_of(chat_id) if m.status == "generating"), None)

    def _refuse_a_second_reply_of(
        self, owner: uuid.UUID, chat_id: uuid.UUID, *, current: str | None = None
    ) -> None:
        """db-api's one reply being written (or waiting for a slot) per user."""
        now = _now()
        for message_id, job in list(self.jobs.items()):
            if job.owner_id == owner and not job.writer_alive(now):
                del self.jobs[message_id]  # cut off mid-reply: its chat shows it failed
        for job in self.jobs.values():
            if job.owner_id == owner and job.chat_id != chat_id:
                raise DbApiError(
                    409,
                    "A reply is already being written in another of your chats",
                    current=current,
                    extra={"busy_chat_id": str(job.chat_id)},
                )

    def _interrupt_lapsed(self, chat_id: uuid.UUID) -> None:
        """db-api marks a reply whose writer is gone as failed, when its chat is next used."""
        now = _now()
        for message in self._messages_of(chat_id):
            job = self.jobs.get(message.id)
            if message.status == "generating" and (job is None or not job.writer_alive(now)):
                message.status, message.updated_at = "error", now
                self.jobs.pop(message.id, None)
                self._touch(self.chats[chat_id])

    def _add_job(self, owner: uuid.UUID, reply: _Message) -> None:
        queued = max((job.queued for job in self.jobs.values()), default=0) + 1
        self.jobs[reply.id] = _Job(owner, reply.chat_id, queued, _now() + LEASE)

    def _renew_lease(
        self, owner: uuid.UUID, chat_id: uuid.UUID, message_text: str, body: Any
    ) -> dict[str, Any]:
        """db-api's queue: slots go to waiting replies in the order they were started."""
        request = _body(db.LeaseRequest, body)
        message = self._owned_message(owner, chat_id, message_text)
        job = self.jobs.get(message.id)
        if job is None:
            raise DbApiError(409, "The message is no longer being written", current=message.status)
        job.lease_until = _now() + LEASE
        if job.slot is None or job.slot >= request.slots:
            job.slot = None
            position = self._grant(job, request.slots)
            if position is not None:
                return _shape(
                    db.ReplyLease,
                    {"slot": None, "position": position, "lease_seconds": LEASE.total_seconds()},
                )
        return _shape(
            db.ReplyLease,
            {"slot": job.slot, "position": None, "lease_seconds": LEASE.total_seconds()},
        )

    def _message_state(self, message: _Message) -> dict[str, Any]:
        """The message, and for a reply waiting for a slot its place in the queue."""
        job = self.jobs.get(message.id) if message.status == "generating" else None
        position = None
        if job is not None and job.slot is None:
            position = 1 + sum(
                1 for j in self.jobs.values() if j.slot is None and j.queued < job.queued
            )
        return _shape(db.MessageState, {**vars(message), "queue_position": position})

    def _grant(self, job: _Job, slots: int) -> int | None:
        """Give a waiting job a free slot if none queued before it waits; else its place."""
        now = _now()
        running = {j.slot for j in self.jobs.values() if j.slot is not None and j.lease_until > now}
        free = sorted(set(range(slots)) - running)
        ahead = sum(1 for j in self.jobs.values() if j.slot is None and j.queued < job.queued)
        if ahead >= len(free):
            return ahead + 1
        job.slot = free[0]
        return None

    def _adopt(self) -> tuple[int, Any, dict[str, str]]:
        now = _now()
        waiting = [
            (job.queued, message_id, job)
            for message_id, job in self.jobs.items()
            if job.slot is None and job.lease_until <= now
        ]
        if not waiting:
            return 204, None, {}
        _queued, message_id, job = min(waiting, key=lambda entry: entry[:2])
        job.lease_until = now + LEASE
        adopted = {"message_id": message_id, "chat_id": job.chat_id, "owner_id": job.owner_id}
        return 200, _shape(db.AdoptedReply, adopted), {}

    def _insert(self, chat: _Chat, **values: Any) -> _Message:
        now = _now()
        message = _Message(self._next_message_id, chat.id, created_at=now, updated_at=now, **values)
        self._next_message_id += 1
        self.messages[message.id] = message
        return message

    def _add_message(self, owner: uuid.UUID, chat_id: uuid.UUID, body: Any) -> dict[str, Any]:
        new = _body(db.MessageCreate, body)
        chat = self._owned_chat(owner, chat_id)
        if new.status == "generating" and self._generating_in(chat.id) is not None:
            raise DbApiError(409, "A reply is already being written in this chat")
        if new.status == "generating":
            self._refuse_a_second_reply_of(owner, chat.id)
            self._take_token("reply", owner)
        message = self._insert(chat, role=new.role, content=new.content, status=new.status)
        if new.status == "generating":
            self._add_job(owner, message)
        self._touch(chat)
        return self._public_message(message)

    def _start_turn(
        self, owner: uuid.UUID, chat_id: uuid.UUID, body: Any
    ) -> tuple[dict[str, Any], bool]:
        new = _body(db.TurnCreate, body)
        chat = self._owned_chat(owner, chat_id)
        messages = self._messages_of(chat.id)
        if new.request_id is not None:
            sent = next((m for m in messages if m.request_id == new.request_id), None)
            if sent is not None:
                reply = next(
                    (m for m in messages if m.id > sent.id and m.role == "assistant"), None
                )
                if reply is None:
                    raise DbApiError(409, "This request was already handled")
                return self._turn(chat, sent, reply), False
        self._interrupt_lapsed(chat.id)
        if self._generating_in(chat.id) is not None:
            raise DbApiError(409, "A reply is already being written in this chat")
        self._refuse_a_second_reply_of(owner, chat.id)
        self._take_token("reply", owner)
        if new.replace_after_id is not None:
            for message in messages:
                if message.id > new.replace_after_id:
                    del self.messages[message.id]
            messages = self._messages_of(chat.id)
        if new.title is not None and not any(m.role == "user" for m in messages):
            chat.title = new.title
        user_message = self._insert(
            chat, role="user", content=new.content, status="complete", request_id=new.request_id
        )
        reply = self._insert(chat, role="assistant", content="", status="generating")
        self._add_job(owner, reply)
        if new.slots is not None:
            self._grant(self.jobs[reply.id], new.slots)
        self._touch(chat)
        return self._turn(chat, user_message, reply), True

    def _turn(self, chat: _Chat, user_message: _Message, reply: _Message) -> dict[str, Any]:
        job = self.jobs.get(reply.id)
        turn = {
            "chat": self._public_chat(chat),
            "user_message": self._public_message(user_message),
            "reply": self._public_message(reply),
            "slot": job.slot if job is not None else None,
        }
        return _shape(db.TurnPublic, turn)

    def _owned_message(self, owner: uuid.UUID, chat_id: uuid.UUID, message_text: str) -> _Message:
        chat = self._owned_chat(owner, chat_id)
        message = self.messages.get(int(message_text)) if message_text.isdigit() else None
        if message is None or message.chat_id != chat.id:
            raise _not_found("Message")
        return message

    def _update_message(
        self, owner: uuid.UUID, chat_id: uuid.UUID, message_text: str, body: Any
    ) -> dict[str, Any]:
        change = _body(db.MessageUpdate, body)
        message = self._owned_message(owner, chat_id, message_text)
        if change.if_status is not None and message.status != change.if_status:
            raise DbApiError(
                409,
                f"The message's status is {message.status}, not {change.if_status}",
                current=message.status,
            )
        content = message.content if change.content is None else change.content
        status = message.status if change.status is None else change.status
        if not content and not db.content_may_be_empty(role=message.role, status=status):
            problem = {"type": "value_error", "loc": ["body", "content"], "msg": "empty"}
            raise DbApiError(422, [problem])
        busy = self._generating_in(message.chat_id)
        if status == "generating" and busy is not None and busy.id != message.id:
            raise DbApiError(
                409, "A reply is already being written in this chat", current=message.status
            )
        if status == "generating" and message.status != "generating":
            self._interrupt_lapsed(message.chat_id)
            self._refuse_a_second_reply_of(owner, message.chat_id, current=message.status)
            self._take_token("reply", owner)
            self._add_job(owner, message)
        elif message.status == "generating" and status != "generating":
            self.jobs.pop(message.id, None)
        message.content, message.status, message.updated_at = content, status, _now()
        if change.sets_context_start:
            message.context_start_id = change.context_start_id
        self._touch(self.chats[message.chat_id])
        return self._public_message(message)

    def _take_token(self, action: Action, owner: uuid.UUID) -> None:
        """db-api's token bucket (queries.rate_limits); taken after every other check."""
        limit = self.reply_limit if action == "reply" else self.chat_limit
        if limit is None:
            return
        now, per_second = _now(), limit.per_minute / 60
        bucket = self.buckets.setdefault(f"{action}:{owner}", _Bucket(limit.burst, now))
        elapsed = max(0.0, (now - bucket.refilled_at).total_seconds())
        tokens = min(limit.burst, bucket.tokens + elapsed * per_second) - 1
        if tokens < 0:
            wait = max(1, math.ceil(-tokens / per_second))
            raise DbApiError(
                429,
                REFUSALS[action],
                headers={"Retry-After": str(wait)},
                extra={"retry_after_seconds": wait},
            )
        bucket.tokens, bucket.refilled_at = tokens, now

    def _delete_after(self, owner: uuid.UUID, chat_id: uuid.UUID, after_id: int) -> None:
        chat = self._owned_chat(owner, chat_id)
        for message in self._messages_of(chat.id):
            if message.id > after_id:
                del self.messages[message.id]
        self._touch(chat)

    # ---- answers in db-api's shapes ------------------------------------------------

    def _public_user(self, user: _User) -> dict[str, Any]:
        return _shape(
            db.UserPublic,
            {
                "id": user.id,
                "username": user.username,
                "created_at": user.created_at,
                "role": user.role,
                "status": "active",
            },
        )

    def _public_chat(self, chat: _Chat) -> dict[str, Any]:
        values = {
            "id": chat.id,
            "title": chat.title,
            "created_at": chat.created_at,
            "updated_at": chat.updated_at,
        }
        return _shape(db.ChatPublic, values)

    def _public_message(self, message: _Message) -> dict[str, Any]:
        return _shape(db.MessagePublic, vars(message))

    def _detail(self, chat: _Chat) -> dict[str, Any]:
        self._interrupt_lapsed(chat.id)
        messages = [self._public_message(m) for m in self._messages_of(chat.id)]
        return {**self._public_chat(chat), "messages": messages}


def _shape(model: type[BaseModel], values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` as db-api's response model writes them (its fields only, JSON types)."""
    dumped: dict[str, Any] = model.model_validate(dict(values)).model_dump(mode="json")
    return dumped


def _uuid(value: Id) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(value)


def _token_key(token: str) -> str:
    return _sha256(token)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _chat_id(text: str) -> uuid.UUID:
    return _path_uuid(text, "chat_id")


def _path_uuid(text: str, name: str, where: str = "path") -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        problem = {"type": "uuid_parsing", "loc": [where, name], "msg": "Input should be a UUID"}
        raise DbApiError(422, [problem]) from None


def _snippet(text: str, words: list[str]) -> str | None:
    """The text with matched words marked as db-api marks them, or None without a match."""
    if not words:
        return None
    pattern = re.compile(r"\b(" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE)
    if not pattern.search(text):
        return None
    return pattern.sub(lambda match: f"\u0002{match.group(1)}\u0003", text)


# ---- DbClient on FakeDbApi ---------------------------------------------------------


class _Answer:
    """What aiohttp's response gives DbClient: status, headers and the body."""

    def __init__(self, status: int, headers: Mapping[str, str], content: bytes) -> None:
        self.status, self.headers, self._content = status, headers, content

    async def read(self) -> bytes:
        return self._content

    async def __aenter__(self) -> _Answer:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        return None


class _FakeDbSession:
    """Stands in for DbClient's aiohttp.ClientSession, answering from a FakeDbApi."""

    def __init__(self, api: FakeDbApi) -> None:
        self.api = api

    def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: object = None,
    ) -> _Answer:
        if self.api.down:
            raise aiohttp.ClientConnectionError("db-api is down (FakeDbApi.down)")
        status, answer_headers, content = self.api.answer(
            method.upper(),
            urlsplit(url).path,
            headers=headers or {},
            params=params or {},
            body=json,
        )
        return _Answer(status, answer_headers, content)

    def get(self, url: str) -> _Answer:
        return self.request("GET", url)

    async def close(self) -> None:
        return None


def in_memory_db_client(api: FakeDbApi) -> DbClient:
    """chat-ui's real DbClient, its HTTP session replaced by one that asks `api`."""
    client = object.__new__(DbClient)
    client._base_url = DB_API_URL
    client._http = cast(aiohttp.ClientSession, _FakeDbSession(api))
    return client


# ---- the model server ----------------------------------------------------------------

ModelState = Literal["ready", "loading", "down"]
StreamFailure = Literal["error", "break", "no_done", "hang"]


def echo_reply(messages: list[dict[str, str]]) -> str:
    """The default reply: deterministic, and naming the message it answers."""
    last = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    return f"You said: {last}"


@dataclass
class FakeModel:
    """llama.cpp's server in memory (see the module docstring).

    One token is about four bytes of the templated prompt, so `context_tokens` sets how
    much history fits. `stream_failure` makes completions fail ("error": a 500 before
    any token), break off after `tokens_before_failure` tokens ("break": the connection
    resets; "no_done": the body ends without [DONE]) or stop sending after them until
    the reply is stopped ("hang").
    """

    context_tokens: int = 4096
    reply: Callable[[list[dict[str, str]]], str] = echo_reply
    state: ModelState = "ready"
    stream_failure: StreamFailure | None = None
    tokens_before_failure: int = 0
    seconds_per_token: float = 0.0
    # llama.cpp's parallel slots (`total_slots` in `/props`).
    slots: int = 4
    completions: list[dict[str, Any]] = field(default_factory=list)
    streams_opened: int = 0
    streams_closed: int = 0

    @staticmethod
    def template(messages: list[dict[str, str]]) -> str:
        turns = "".join(f"<|{m['role']}|>{m['content']}<|end|>" for m in messages)
        return turns + "<|assistant|>"

    @staticmethod
    def token_count(prompt: str) -> int:
        """About four bytes a token, as llama.cpp's tokenizers roughly make them."""
        return math.ceil(len(prompt.encode("utf-8")) / 4)

    def tokens(self, messages: list[dict[str, str]]) -> list[str]:
        return re.findall(r"\S+\s*", self.reply(messages))

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if self.state == "down":
            raise httpx.ConnectError("connection refused (FakeModel.state)", request=request)
        if self.state == "loading":
            return httpx.Response(503, json={"error": {"message": "Loading model"}})
        path = request.url.path
        if request.method == "GET" and path == "/health":
            return httpx.Response(200, json={"status": "ok"})
        if request.method == "GET" and path == "/props":
            return httpx.Response(
                200,
                json={
                    "default_generation_settings": {"n_ctx": self.context_tokens},
                    "total_slots": self.slots,
                },
            )
        body = json.loads(request.content or b"null")
        if path == "/apply-template":
            return httpx.Response(200, json={"prompt": self.template(body["messages"])})
        if path == "/tokenize":
            count = self.token_count(body["content"]) + int(bool(body.get("add_special")))
            return httpx.Response(200, json={"tokens": list(range(count))})
        if path == "/v1/chat/completions":
            self.completions.append(body)
            if self.stream_failure == "error":
                return httpx.Response(500, json={"error": {"message": "failed"}})
            self.streams_opened += 1
            return httpx.Response(
                200, headers={"Content-Type": "text/event-stream"}, stream=_Completion(self, body)
            )
        return httpx.Response(404, json={"error": {"message": "not found"}})


class _Completion(httpx.AsyncByteStream):
    """A streamed completion in llama.cpp's server-sent events; closing it is counted."""

    def __init__(self, model: FakeModel, body: dict[str, Any]) -> None:
        self.model, self.body, self.closed = model, body, False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        model = self.model
        tokens = model.tokens(self.body["messages"])[: self.body.get("max_tokens")]
        failing = model.stream_failure in ("break", "no_done", "hang")
        if failing:
            tokens = tokens[: model.tokens_before_failure]
        yield _event({"choices": [{"index": 0, "delta": {"role": "assistant"}}]})
        for token in tokens:
            if model.seconds_per_token:
                await asyncio.sleep(model.seconds_per_token)
            yield _event({"choices": [{"index": 0, "delta": {"content": token}}]})
        if model.stream_failure == "break":
            raise httpx.ReadError("connection reset (FakeModel.stream_failure)")
        if model.stream_failure == "hang":
            await asyncio.Event().wait()
        if model.stream_failure == "no_done":
            return
        yield _event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        yield b"data: [DONE]\n\n"

    async def aclose(self) -> None:
        if not self.closed:
            self.closed = True
            self.model.streams_closed += 1


def _event(chunk: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(chunk)}\n\n".encode()


def in_memory_lm_client(model: FakeModel) -> LmClient:
    """chat-ui's real LmClient, its HTTP clients replaced by ones that ask `model`."""
    client = object.__new__(LmClient)
    transport = httpx.MockTransport(model.handle)
    client._http = httpx.AsyncClient(base_url=LM_API_URL, transport=transport)
    client._streams = httpx.AsyncClient(base_url=LM_API_URL, transport=transport)
    client._context_tokens = None
    client._total_slots = None
    client._prompt_size_bound = None
    return client

"""The shapes db-api answers with (its v1 contract), parsed into typed objects."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

Role = Literal["system", "user", "assistant"]
MessageStatus = Literal["complete", "generating", "stopped", "error"]


class _Upstream(BaseModel):
    # Tolerate fields db-api may add later; we only rely on the documented ones.
    model_config = ConfigDict(extra="ignore", frozen=True)


AccountRole = Literal["user", "admin"]
AccountStatus = Literal["active", "pending", "disabled"]
SignUpMode = Literal["open", "approval", "closed"]


class UserPublic(_Upstream):
    id: uuid.UUID
    username: str
    created_at: datetime
    role: AccountRole = "user"
    # pending: waiting for an admin's approval; may sign in, may not chat.
    status: AccountStatus = "active"


class ChatPublic(_Upstream):
    id: uuid.UUID
    title: str
    created_at: datetime
    updated_at: datetime


class MessagePublic(_Upstream):
    id: int
    chat_id: uuid.UUID
    role: Role
    content: str
    status: MessageStatus
    created_at: datetime
    updated_at: datetime
    # For a reply: the oldest message the model saw when writing it (None: the whole chat).
    context_start_id: int | None = None
    # For a user message: the id of the form that sent it (a resend finds it by this).
    request_id: uuid.UUID | None = None


class MessageState(MessagePublic):
    """One message read alone; a reply waiting for a model slot has its place in the queue."""

    queue_position: int | None = None


class ChatDetail(ChatPublic):
    messages: list[MessagePublic]


class TurnPublic(_Upstream):
    """What `POST /chats/{id}/turns` stored: the user's message and the reply being written."""

    chat: ChatPublic
    user_message: MessagePublic
    reply: MessagePublic
    slot: int | None = None


class ReplyLease(_Upstream):
    """A reply's lease renewed: the model slot to write it on, or its place in the queue."""

    slot: int | None
    position: int | None
    lease_seconds: float


class AdoptedReply(_Upstream):
    """A waiting reply whose writer is gone, now this process's to write."""

    message_id: int
    chat_id: uuid.UUID
    owner_id: uuid.UUID


class ChatPage(_Upstream):
    items: list[ChatPublic]
    total: int
    limit: int
    offset: int


class SearchHit(_Upstream):
    chat: ChatPublic
    # Plain text; the matched words are wrapped in \u0002 … \u0003 (never HTML).
    snippet: str
    # The message the snippet comes from; None when only the title matched.
    message_id: int | None = None


class SearchResults(_Upstream):
    items: list[SearchHit]
    query: str


class SessionPublic(_Upstream):
    """A live sign-in as db-api resolves it."""

    user: UserPublic
    expires_at: datetime


class PageView(_Upstream):
    """Everything a chat page shows, from db-api's `GET /sessions/current/page`."""

    user: UserPublic
    revision: int
    chats: list[ChatPublic]
    chat: ChatDetail | None


class SessionCreated(SessionPublic):
    token: str


class SessionDetail(_Upstream):
    """One of the user's live sign-ins, as the account page lists it."""

    id: uuid.UUID
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    user_agent: str | None
    client_ip: str | None
    # The sign-in of the browser asking (the cookie's token).
    current: bool


class SessionList(_Upstream):
    items: list[SessionDetail]


class ChatExportPage(_Upstream):
    """Some of the user's chats with their messages; `next_after` asks for the next ones."""

    items: list[ChatDetail]
    next_after: uuid.UUID | None


class PublicSettings(_Upstream):
    """The admin's settings every process applies; null: this process's configuration."""

    signup_mode: SignUpMode
    max_message_chars: int | None
    system_prompt: str | None


class LinkInfo(_Upstream):
    kind: Literal["invite", "password_reset"]
    username: str | None
    expires_at: datetime


class LinkCreated(_Upstream):
    token: str
    expires_at: datetime


class AdminUser(_Upstream):
    id: uuid.UUID
    username: str
    role: AccountRole
    status: AccountStatus
    created_at: datetime
    last_seen_at: datetime | None
    chats: int
    messages: int
    storage_bytes: int


class AdminUserList(_Upstream):
    items: list[AdminUser]
    total: int


class InvitePublic(_Upstream):
    id: uuid.UUID
    created_at: datetime
    expires_at: datetime
    created_by: str | None


class InviteList(_Upstream):
    items: list[InvitePublic]


class ConfiguredDefaults(_Upstream):
    signup_mode: SignUpMode
    replies_per_minute: float
    reply_burst: int
    chats_per_minute: float
    chat_burst: int


class AppSettingsView(_Upstream):
    signup_mode: SignUpMode | None
    replies_per_minute: float | None
    reply_burst: int | None
    chats_per_minute: float | None
    chat_burst: int | None
    max_message_chars: int | None
    system_prompt: str | None
    defaults: ConfiguredDefaults
    updated_at: datetime | None


class AuditEvent(_Upstream):
    id: int
    at: datetime
    action: str
    actor_name: str | None
    target_name: str | None
    detail: str | None
    client_ip: str | None


class AuditPage(_Upstream):
    items: list[AuditEvent]
    next_before_id: int | None

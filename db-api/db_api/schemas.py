"""Request and response bodies of the HTTP API (XCreate / XUpdate / XPublic)."""

from __future__ import annotations

import uuid
from datetime import datetime
from ipaddress import IPv4Address, IPv6Address
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    IPvAnyAddress,
    model_validator,
)

USERNAME_PATTERN = r"^[A-Za-z0-9_.-]+$"
MAX_MESSAGE_CHARS = 32_000
# Ids are PostgreSQL bigints; anything outside that range cannot exist and is a 422.
MAX_BIGINT = 2**63 - 1
DEFAULT_CHAT_TITLE = "New chat"

MessageRole = Literal["system", "user", "assistant"]
MessageStatus = Literal["complete", "generating", "stopped", "error"]


# What _storable_text enforces, stated in the schema (not enforced by it, so the error
# message stays the readable one below): no NUL anywhere.
NO_NUL = {"pattern": "^[^\\x00]*$"}
# The same for text that is trimmed first: at least one character that is not a space.
# (Python's str.strip() also strips \x1c-\x1f, which \s does not match everywhere.)
NO_NUL_NOT_BLANK = {
    "pattern": "^[^\\x00]*[^\\s\\x00\\x1c-\\x1f\\x85\\xa0\\u1680\\u2000-\\u200a"
    "\\u2028\\u2029\\u202f\\u205f\\u3000][^\\x00]*$"
}


def _storable_text(value: str) -> str:
    # PostgreSQL text cannot hold NUL, and lone surrogates cannot be encoded as UTF-8;
    # both would fail inside the database, so they are refused here with a clear reason.
    if "\x00" in value:
        raise ValueError("must not contain NUL (\\u0000) characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (no lone surrogates)") from None
    return value


Username = Annotated[
    str,
    Field(
        min_length=3,
        max_length=32,
        pattern=USERNAME_PATTERN,
        description="3 to 32 letters, digits, `_`, `.` or `-`; unique regardless of case.",
        examples=["alice"],
    ),
]
Password = Annotated[
    str,
    Field(
        min_length=8,
        max_length=128,
        examples=["correct horse battery"],
        json_schema_extra=NO_NUL,
    ),
    AfterValidator(_storable_text),
]


def _strip(value: object) -> object:
    return value.strip() if isinstance(value, str) else value


# Trimmed before the length check, so "   " is refused as empty.
Title = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        examples=["Planning a trip to Lisbon"],
        json_schema_extra=NO_NUL_NOT_BLANK,
    ),
    BeforeValidator(_strip),
    AfterValidator(_storable_text),
]
SearchQuery = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        examples=["lisbon alfama"],
        json_schema_extra=NO_NUL_NOT_BLANK,
    ),
    BeforeValidator(_strip),
    AfterValidator(_storable_text),
]
MessageId = Annotated[int, Field(ge=1, le=MAX_BIGINT)]
RequestId = Annotated[
    uuid.UUID,
    Field(
        description="An id the client makes once per form (e.g. when rendering it). Sending "
        "the same id again answers what the first request stored and writes nothing, so a "
        "double-submitted form or a retried request never creates a duplicate.",
        examples=["5b0f9a62-1d3c-4f8e-b7a4-2c9e6d1f0a37"],
    ),
]
MessageContent = Annotated[
    str,
    Field(
        max_length=MAX_MESSAGE_CHARS,
        examples=["What should I see in Lisbon?"],
        json_schema_extra=NO_NUL,
    ),
    AfterValidator(_storable_text),
]


class _Strict(BaseModel):
    # A misspelt field is an error rather than silently ignored.
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(BaseModel):
    """The body of every error except validation errors (422)."""

    detail: str = Field(examples=["Chat not found"])


Role = Literal["user", "admin"]
# pending: waiting for an admin's approval (may sign in, may not chat).
AccountStatus = Literal["active", "pending", "disabled"]
SignUpMode = Literal["open", "approval", "closed"]
LinkToken = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        description="The token of a one-time link (an invite or a password reset), as handed over.",
    ),
]


class UserCreate(_Strict):
    """A new account, or the credentials to check at login."""

    username: Username
    password: Password

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"username": "alice", "password": "correct horse battery"}]}
    )


class UserPublic(BaseModel):
    """An account as other services see it; never includes the password hash."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "2f1c7a4e-8a0e-4c53-9a57-4c3b7d0b9a11",
                    "username": "alice",
                    "created_at": "2025-01-31T12:00:00Z",
                }
            ]
        },
    )

    id: uuid.UUID
    username: str
    created_at: datetime
    role: Role = "user"
    status: AccountStatus = "active"


class ChatCreate(_Strict):
    """A new chat; without a title it is called "New chat"."""

    title: Annotated[Title | None, Field(description="1 to 200 characters, trimmed.")] = None
    request_id: RequestId | None = None

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"title": "Trip to Lisbon"},
                {"title": "New chat", "request_id": "5b0f9a62-1d3c-4f8e-b7a4-2c9e6d1f0a37"},
            ]
        }
    )


class ChatUpdate(_Strict):
    """A new title for an existing chat."""

    title: Annotated[Title, Field(description="1 to 200 characters, trimmed.")]

    model_config = ConfigDict(json_schema_extra={"examples": [{"title": "Lisbon, day by day"}]})


class ChatPublic(BaseModel):
    """A chat without its messages, as listed."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "8d3e4c1a-3f7b-4e8e-9a51-1b2c3d4e5f60",
                    "title": "Trip to Lisbon",
                    "created_at": "2025-01-31T12:00:00Z",
                    "updated_at": "2025-01-31T12:05:00Z",
                }
            ]
        },
    )

    id: uuid.UUID
    title: str
    created_at: datetime
    updated_at: datetime


class MessagePublic(BaseModel):
    """One message of a chat; `id` increases in the order messages were added."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": 42,
                    "chat_id": "8d3e4c1a-3f7b-4e8e-9a51-1b2c3d4e5f60",
                    "role": "assistant",
                    "content": "Start with the Alfama district.",
                    "status": "complete",
                    "created_at": "2025-01-31T12:05:00Z",
                    "updated_at": "2025-01-31T12:05:03Z",
                    "context_start_id": None,
                    "request_id": None,
                }
            ]
        },
    )

    id: int
    chat_id: uuid.UUID
    role: MessageRole
    content: str
    status: MessageStatus
    created_at: datetime
    updated_at: datetime
    context_start_id: int | None = Field(
        description="For an assistant reply, the id of the oldest message the model saw when "
        "writing it; null when it saw the whole chat.",
        examples=[None, 17],
    )
    request_id: uuid.UUID | None = Field(
        default=None,
        description="For a user message sent as a turn, the `request_id` it was sent with.",
        examples=[None, "5b0f9a62-1d3c-4f8e-b7a4-2c9e6d1f0a37"],
    )


class ChatDetail(ChatPublic):
    """A chat with all of its messages, oldest first."""

    messages: list[MessagePublic]


class ChatPage(BaseModel):
    """One page of the acting user's chats, most recently active first."""

    items: list[ChatPublic]
    total: int = Field(description="How many chats the user has in all.", examples=[37])
    limit: int = Field(examples=[20])
    offset: int = Field(examples=[0])


def content_may_be_empty(*, role: str, status: str) -> bool:
    """Only an assistant reply that is not finished may have no text yet."""
    return role == "assistant" and status != "complete"


class MessageCreate(_Strict):
    """A message to append to a chat."""

    role: MessageRole
    content: Annotated[
        MessageContent,
        Field(description="1 to 32,000 characters; an unfinished assistant reply may be empty."),
    ]
    status: MessageStatus = "complete"

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"role": "user", "content": "What should I see in Lisbon?"},
                {"role": "assistant", "content": "", "status": "generating"},
            ],
            # require_content below, in the schema: text, or an unfinished assistant reply.
            "anyOf": [
                {"properties": {"content": {"minLength": 1}}},
                {
                    "properties": {
                        "role": {"const": "assistant"},
                        "status": {"enum": ["generating", "stopped", "error"]},
                    },
                    "required": ["status"],
                },
            ],
        }
    )

    @model_validator(mode="after")
    def require_content(self) -> Self:
        if not self.content and not content_may_be_empty(role=self.role, status=self.status):
            raise ValueError(
                "content must not be empty (only an unfinished assistant reply may be empty)"
            )
        return self


class MessageUpdate(_Strict):
    """New content, status and/or context start for a message, e.g. while a reply streams in."""

    content: Annotated[
        MessageContent | None,
        Field(description="Up to 32,000 characters; replaces the whole text."),
    ] = None
    status: MessageStatus | None = None
    context_start_id: Annotated[
        MessageId | None,
        Field(
            description="The oldest message the model saw for this reply; `null` clears it "
            "(the model saw the whole chat). Leave it out to keep the stored value."
        ),
    ] = None
    if_status: Annotated[
        MessageStatus | None,
        Field(
            description="Apply the update only if the message's current status is this one; "
            "otherwise answer 409 with the current status. Makes a save from a reply that "
            "was stopped meanwhile (or a stop after it finished) fail instead of overwriting."
        ),
    ] = None

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"content": "Start with the Alfama district.", "if_status": "generating"},
                {
                    "content": "Start with the Alfama district.",
                    "status": "complete",
                    "context_start_id": 17,
                    "if_status": "generating",
                },
                {"status": "stopped", "if_status": "generating"},
            ],
            # require_a_change below, in the schema.
            "anyOf": [
                {"required": ["content"]},
                {"required": ["status"]},
                {"required": ["context_start_id"]},
            ],
        }
    )

    @model_validator(mode="after")
    def require_a_change(self) -> Self:
        if not self.model_fields_set & {"content", "status", "context_start_id"}:
            raise ValueError("give at least one of content, status or context_start_id")
        return self

    @property
    def sets_context_start(self) -> bool:
        """Whether the caller sent `context_start_id` at all (null clears it)."""
        return "context_start_id" in self.model_fields_set


class TurnCreate(_Strict):
    """The user's next message, which also starts the assistant's (empty) reply."""

    content: Annotated[
        MessageContent,
        Field(min_length=1, description="The user's message, 1 to 32,000 characters."),
    ]
    title: Annotated[
        Title | None,
        Field(
            description="Becomes the chat's title if this is the chat's first user message "
            "(1 to 200 characters, trimmed); ignored otherwise."
        ),
    ] = None
    request_id: RequestId | None = None
    replace_after_id: Annotated[
        int | None,
        Field(
            ge=0,
            le=MAX_BIGINT,
            description="Editing the last message: the chat's messages after this id are "
            "deleted first, in the same transaction, so a refused turn deletes nothing.",
        ),
    ] = None
    slots: Annotated[
        int | None,
        Field(
            ge=1,
            le=1024,
            description="How many slots the model server has: the reply is granted one at "
            "once when it may have it (`slot` in the answer), saving a `PUT .../lease`.",
        ),
    ] = None

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"content": "What should I see in Lisbon?", "title": "Trip to Lisbon"},
                {
                    "content": "And where should I eat?",
                    "request_id": "5b0f9a62-1d3c-4f8e-b7a4-2c9e6d1f0a37",
                },
            ]
        }
    )


class TurnPublic(BaseModel):
    """What a turn created: the chat as it is now, the user's message and the empty reply."""

    chat: ChatPublic
    user_message: MessagePublic
    reply: MessagePublic = Field(
        description="The assistant's reply, empty and `generating`; fill it in with PATCH."
    )
    slot: int | None = Field(
        default=None,
        description="The model slot granted to the reply (with `slots`), or `null`: ask "
        "with `PUT /chats/{chat_id}/messages/{reply.id}/lease`.",
    )


class StatusConflict(BaseModel):
    """The 409 body when `if_status` no longer holds."""

    detail: str = Field(examples=["The message is no longer generating"])
    status: MessageStatus = Field(description="The message's current status.", examples=["stopped"])


class LeaseRequest(_Strict):
    """A reply's writer renewing its lease, and asking for a model slot if it has none."""

    slots: int = Field(
        ge=1, le=1024, description="How many slots the model server has.", examples=[4]
    )


class MessageState(MessagePublic):
    """One message, and for a reply waiting for the model, its place in the queue."""

    queue_position: int | None = Field(
        default=None,
        description="For a reply waiting for a model slot: its place in the queue, 1 being "
        "next, as its writer's lease renewal answers it; null otherwise.",
        examples=[None, 2],
    )


class ReplyLease(BaseModel):
    """The writer's lease, renewed: a slot to write the reply in, or the place in the queue."""

    slot: int | None = Field(
        description="The model server's slot to send the reply's request to (`id_slot`); "
        "`null` while the reply waits.",
        examples=[2],
    )
    position: int | None = Field(
        description="While the reply waits: its place in the queue, 1 being next.",
        examples=[None],
    )
    lease_seconds: float = Field(
        description="The lease lapses this long after now unless renewed again.",
        examples=[10.0],
    )


class AdoptedReply(BaseModel):
    """A waiting reply whose writer is gone, taken over by the caller: write it now."""

    message_id: int
    chat_id: uuid.UUID
    owner_id: uuid.UUID = Field(description="The user the reply is for (act as them).")


class ReplyInOtherChat(BaseModel):
    """The 409 body when the user already has a reply being written in another chat."""

    detail: str = Field(examples=["A reply is already being written in another of your chats"])
    busy_chat_id: uuid.UUID = Field(description="The chat whose reply is being written.")
    status: MessageStatus | None = Field(
        default=None, description="For a message update: the message's unchanged status."
    )


class RateLimited(BaseModel):
    """The 429 body when the acting user starts replies or creates chats too fast."""

    detail: str = Field(examples=["Too many replies started in a short time"])
    retry_after_seconds: int = Field(
        description="Seconds until the next one is allowed (also the `Retry-After` header).",
        examples=[12],
    )


class SearchHit(BaseModel):
    """One matching chat and a plain-text excerpt around the matched words."""

    chat: ChatPublic
    snippet: str = Field(
        description="Plain text from the best matching message (or the title) with each match "
        "wrapped in U+0002 ... U+0003; escape the text, then turn those into highlighting.",
        examples=["Start with the \u0002Alfama\u0003 district, then walk down to the river"],
    )
    message_id: int | None = Field(
        default=None,
        description="The best matching message, the snippet's source; null when only the "
        "title matched.",
    )


class SearchResults(BaseModel):
    """The acting user's chats that match a full-text query, best matches first."""

    items: list[SearchHit]
    query: str = Field(description="The query as searched (trimmed).", examples=["alfama"])


# ---- sign-in sessions ------------------------------------------------------

MAX_SESSION_AGE_SECONDS = 366 * 24 * 3600
MAX_USER_AGENT_CHARS = 200


def _short_user_agent(value: object) -> object:
    # Browsers send a few hundred characters; the start names the browser and system.
    if not isinstance(value, str):
        return value
    return _storable_text(" ".join(value.split())[:MAX_USER_AGENT_CHARS])


def _without_zone(address: IPv4Address | IPv6Address | None) -> IPv4Address | IPv6Address | None:
    """The address as a person reads it: an IPv4 client as IPv4, with no IPv6 zone index
    (which names an interface of the web tier's host, not the browser)."""
    if isinstance(address, IPv6Address):
        address = IPv6Address(str(address).split("%", 1)[0])
        return address.ipv4_mapped or address
    return address


UserAgent = Annotated[
    str,
    Field(
        description="The browser's `User-Agent`; whitespace collapsed, then cut to its "
        f"first {MAX_USER_AGENT_CHARS} characters.",
        examples=["Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"],
        json_schema_extra=NO_NUL,
    ),
    BeforeValidator(_short_user_agent),
]
ClientAddress = Annotated[IPvAnyAddress | None, AfterValidator(_without_zone)]
# Standard formats in the schema, so clients (and generated tests) know what is valid.
ADDRESS_FORMATS: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "format": "ipv4"},
        {"type": "string", "format": "ipv6"},
        {"type": "null"},
    ]
}


def _client_ip(description: str) -> Any:
    """The browser's address as the web tier saw it, for counting attempts per client."""
    return Field(
        default=None,
        description=description,
        examples=["203.0.113.7"],
        # Standard formats in the schema, so clients (and generated tests) know what is valid.
        json_schema_extra={
            "anyOf": [
                {"type": "string", "format": "ipv4"},
                {"type": "string", "format": "ipv6"},
                {"type": "null"},
            ]
        },
    )


class SignUp(UserCreate):
    """A new account, and the address it came from (sign-ups are limited per address)."""

    invite: LinkToken | None = Field(
        default=None,
        description="An admin's invite link token: needed while sign-up is `closed`; makes "
        "the account active at once under `approval`. Used up by the sign-up.",
    )

    client_ip: IPvAnyAddress | None = _client_ip(
        "The signing-up browser's address as the web tier saw it (an IPv6 client counts as "
        "its /64)."
    )


class LoginAttempt(UserCreate):
    """Credentials to check, and the address they came from (for per-client throttling)."""

    client_ip: IPvAnyAddress | None = _client_ip(
        "The signing-in browser's address as the web tier saw it. Failures are counted per "
        "address (an IPv6 client per /64) and per account from that address."
    )


class SessionCreate(_Strict):
    """Start a sign-in for an account whose password was just checked (or that just signed up)."""

    user_id: uuid.UUID
    max_age_seconds: int = Field(
        ge=60,
        le=MAX_SESSION_AGE_SECONDS,
        description="How long the sign-in lasts.",
        examples=[1209600],
    )
    user_agent: UserAgent | None = None
    client_ip: ClientAddress = Field(
        default=None,
        description="The browser's address as the web tier saw it, listed with the session.",
        examples=["203.0.113.7"],
        json_schema_extra=ADDRESS_FORMATS,
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "user_id": "2f1c7a4e-8a0e-4c53-9a57-4c3b7d0b9a11",
                    "max_age_seconds": 1209600,
                    "user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Firefox/128.0",
                    "client_ip": "203.0.113.7",
                }
            ]
        }
    )


class SessionPublic(BaseModel):
    """A live sign-in: whose it is and until when."""

    model_config = ConfigDict(from_attributes=True)

    user: UserPublic
    created_at: datetime
    expires_at: datetime


class PageView(BaseModel):
    """What a chat page shows, read in one request: whose session it is, their chats, one chat."""

    user: UserPublic
    revision: int = Field(
        description="Grows with every change to the user's chats and messages.", examples=[12]
    )
    chats: list[ChatPublic] = Field(description="The user's chats, most recently active first.")
    chat: ChatDetail | None = Field(description="The chat asked for; null when there is none.")


class SessionCreated(SessionPublic):
    """A new sign-in. `token` is shown only once; db-api keeps only its hash."""

    token: str = Field(description="Opaque secret for `X-Session-Token`; 43 characters.")


class SessionDetail(BaseModel):
    """One of the acting user's live sign-ins, as an account page lists it."""

    id: uuid.UUID
    created_at: datetime
    last_seen_at: datetime = Field(description="When it was last used, to the minute.")
    expires_at: datetime
    user_agent: str | None = Field(
        description="The browser's `User-Agent` (its start), if chat-ui sent it.",
        examples=["Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"],
    )
    client_ip: str | None = Field(
        description="The address it was started from, if chat-ui sent it.",
        examples=["203.0.113.7"],
    )
    current: bool = Field(description="Whether this is the session named by `X-Session-Token`.")


class SessionList(BaseModel):
    """The acting user's live sign-ins, most recently seen first."""

    items: list[SessionDetail]


# A password typed to confirm who is asking: any text could be a wrong one, so only the
# form is checked. (Not `Password`: its example is a real test account's password.)
ConfirmingPassword = Annotated[
    str,
    Field(
        min_length=1,
        max_length=1024,
        examples=["what I typed at sign-in"],
        json_schema_extra=NO_NUL,
    ),
    AfterValidator(_storable_text),
]
ConfirmingAddress = Annotated[
    ClientAddress,
    Field(
        description="The browser's address as the web tier saw it; wrong passwords are "
        "counted per account from that address, as at sign-in.",
        examples=["203.0.113.7"],
        json_schema_extra=ADDRESS_FORMATS,
    ),
]


class PasswordChange(_Strict):
    """A new password for the acting user, confirmed with the current one."""

    current_password: ConfirmingPassword
    new_password: Password
    client_ip: ConfirmingAddress = None

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "current_password": "what I typed at sign-in",
                    "new_password": "a longer passphrase",
                    "client_ip": "203.0.113.7",
                }
            ]
        }
    )


class AccountDeletion(_Strict):
    """Deleting the acting user's account, confirmed with its password."""

    password: ConfirmingPassword
    client_ip: ConfirmingAddress = None

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"password": "what I typed at sign-in"}]}
    )


class ChatExportPage(BaseModel):
    """Some of the acting user's chats, each with all of its messages."""

    items: list[ChatDetail]
    next_after: uuid.UUID | None = Field(
        description="Send it as `after` for the next page; null on the last page.",
        examples=["8d3e4c1a-3f7b-4e8e-9a51-1b2c3d4e5f60"],
    )


class PublicSettings(BaseModel):
    """What every service needs of the admin's settings; null: the service's own default."""

    signup_mode: SignUpMode = Field(description="The sign-up policy in force.")
    max_message_chars: int | None
    system_prompt: str | None


class LinkLookup(_Strict):
    token: LinkToken


class LinkInfo(BaseModel):
    """A live one-time link: what it is for and until when it works."""

    kind: Literal["invite", "password_reset"]
    username: str | None = Field(description="The account a password reset is for.")
    expires_at: datetime


class PasswordReset(_Strict):
    """A new password set with an admin's one-time reset link."""

    token: LinkToken
    new_password: Password


class AdminUser(BaseModel):
    """An account as the admin's list shows it: usage in numbers, never chat content."""

    id: uuid.UUID
    username: str
    role: Role
    status: AccountStatus
    created_at: datetime
    last_seen_at: datetime | None
    chats: int
    messages: int
    storage_bytes: int = Field(description="Stored size of the user's titles and messages.")


class AdminUserList(BaseModel):
    items: list[AdminUser]
    total: int = Field(description="Accounts matching the search, on every page.")


class StatusChange(_Strict):
    """Approve (`active` from `pending`), disable, or enable an account."""

    status: Literal["active", "disabled"]


class RoleChange(_Strict):
    role: Role


class InviteCreate(_Strict):
    valid_hours: float = Field(default=72, gt=0, le=24 * 30, description="How long it works.")


class LinkCreated(BaseModel):
    """A new one-time link's token: shown once, only its hash is kept."""

    token: str
    expires_at: datetime


class InvitePublic(BaseModel):
    id: uuid.UUID
    created_at: datetime
    expires_at: datetime
    created_by: str | None = Field(description="The admin who made it (null: since deleted).")


class InviteList(BaseModel):
    items: list[InvitePublic]


class AppSettingsUpdate(_Strict):
    """Every setting an admin changes; null puts one back to the server's configuration."""

    signup_mode: SignUpMode | None = None
    replies_per_minute: float | None = Field(default=None, gt=0, le=10_000)
    reply_burst: int | None = Field(default=None, ge=1, le=10_000)
    chats_per_minute: float | None = Field(default=None, gt=0, le=10_000)
    chat_burst: int | None = Field(default=None, ge=1, le=10_000)
    max_message_chars: int | None = Field(default=None, ge=1, le=MAX_MESSAGE_CHARS)
    system_prompt: str | None = Field(default=None, max_length=MAX_MESSAGE_CHARS)


class ConfiguredDefaults(BaseModel):
    """db-api's configuration: what a null setting means."""

    signup_mode: SignUpMode
    replies_per_minute: float
    reply_burst: int
    chats_per_minute: float
    chat_burst: int


class AppSettingsView(BaseModel):
    """The admin's settings as stored (null: the configuration's value), and db-api's
    configured values."""

    signup_mode: SignUpMode | None
    replies_per_minute: float | None
    reply_burst: int | None
    chats_per_minute: float | None
    chat_burst: int | None
    max_message_chars: int | None
    system_prompt: str | None
    defaults: ConfiguredDefaults
    updated_at: datetime | None = Field(description="Null until an admin first saves.")


class AuditEventPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    action: str
    actor_name: str | None
    target_name: str | None
    detail: str | None
    client_ip: str | None


class AuditPage(BaseModel):
    items: list[AuditEventPublic]
    next_before_id: int | None = Field(description="Pass as `before_id` for older events.")

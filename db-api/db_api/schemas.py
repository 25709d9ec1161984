"""Request and response bodies of the HTTP API (XCreate / XUpdate / XPublic)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

USERNAME_PATTERN = r"^[A-Za-z0-9_.-]+$"
MAX_MESSAGE_CHARS = 32_000
DEFAULT_CHAT_TITLE = "New chat"

MessageRole = Literal["system", "user", "assistant"]
MessageStatus = Literal["complete", "generating", "stopped", "error"]


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
    Field(min_length=8, max_length=128, examples=["correct horse battery"]),
    AfterValidator(_storable_text),
]


def _strip(value: object) -> object:
    return value.strip() if isinstance(value, str) else value


# Trimmed before the length check, so "   " is refused as empty.
Title = Annotated[
    str,
    Field(min_length=1, max_length=200, examples=["Planning a trip to Lisbon"]),
    BeforeValidator(_strip),
    AfterValidator(_storable_text),
]
MessageContent = Annotated[
    str,
    Field(max_length=MAX_MESSAGE_CHARS, examples=["What should I see in Lisbon?"]),
    AfterValidator(_storable_text),
]


class _Strict(BaseModel):
    # A misspelt field is an error rather than silently ignored.
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(BaseModel):
    """The body of every error except validation errors (422)."""

    detail: str = Field(examples=["Chat not found"])


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


class ChatCreate(_Strict):
    """A new chat; without a title it is called "New chat"."""

    title: Annotated[Title | None, Field(description="1 to 200 characters, trimmed.")] = None

    model_config = ConfigDict(json_schema_extra={"examples": [{"title": "Trip to Lisbon"}]})


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
            ]
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
    """New content and/or status for a message, e.g. while a reply streams in."""

    content: Annotated[
        MessageContent | None,
        Field(description="Up to 32,000 characters; replaces the whole text."),
    ] = None
    status: MessageStatus | None = None

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"content": "Start with the Alfama district.", "status": "complete"}]
        }
    )

    @model_validator(mode="after")
    def require_a_change(self) -> Self:
        if self.content is None and self.status is None:
            raise ValueError("give at least one of content or status")
        return self

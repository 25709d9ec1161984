"""Small helpers the tests and benchmarks use to make users, chats and messages through db-api."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import httpx

DEFAULT_PASSWORD = "correct horse battery"


def unique_username(prefix: str = "user") -> str:
    """A valid username no other test uses (3 to 32 characters)."""
    return f"{prefix[:16]}_{uuid.uuid4().hex[:12]}"


def auth_headers(token: str, user_id: str | uuid.UUID | None = None) -> dict[str, str]:
    """The service token header, plus `X-User-Id` when acting for a user."""
    headers = {"Authorization": f"Bearer {token}"}
    if user_id is not None:
        headers["X-User-Id"] = str(user_id)
    return headers


def user_headers(user_id: str | uuid.UUID) -> dict[str, str]:
    """Just `X-User-Id`, for a client that already sends the service token."""
    return {"X-User-Id": str(user_id)}


def _json_object(response: httpx.Response, expected_status: int) -> dict[str, Any]:
    assert response.status_code == expected_status, response.text
    body: dict[str, Any] = response.json()
    return body


def create_user(
    client: httpx.Client, *, username: str | None = None, password: str = DEFAULT_PASSWORD
) -> dict[str, Any]:
    """Sign up through `POST /users` and answer the `UserPublic` JSON."""
    response = client.post(
        "/users", json={"username": username or unique_username(), "password": password}
    )
    return _json_object(response, 201)


def create_chat(
    client: httpx.Client, *, user_id: str | uuid.UUID, title: str | None = None
) -> dict[str, Any]:
    """Start a chat through `POST /chats` and answer the `ChatPublic` JSON."""
    body = {} if title is None else {"title": title}
    response = client.post("/chats", json=body, headers=user_headers(user_id))
    return _json_object(response, 201)


def add_message(
    client: httpx.Client,
    *,
    user_id: str | uuid.UUID,
    chat_id: str | uuid.UUID,
    content: str = "Hello!",
    role: str = "user",
    status: str | None = None,
) -> dict[str, Any]:
    """Append through `POST /chats/{id}/messages` and answer the `MessagePublic` JSON."""
    body: dict[str, Any] = {"role": role, "content": content}
    if status is not None:
        body["status"] = status
    response = client.post(f"/chats/{chat_id}/messages", json=body, headers=user_headers(user_id))
    return _json_object(response, 201)


def create_turn(
    client: httpx.Client,
    *,
    user_id: str | uuid.UUID,
    chat_id: str | uuid.UUID,
    content: str = "Hello!",
    title: str | None = None,
) -> dict[str, Any]:
    """Send a message and start its reply through `POST /chats/{id}/turns`.

    Answers the JSON `{"chat", "user_message", "reply"}`.
    """
    body: dict[str, Any] = {"content": content}
    if title is not None:
        body["title"] = title
    response = client.post(f"/chats/{chat_id}/turns", json=body, headers=user_headers(user_id))
    return _json_object(response, 201)


def finish_reply(
    client: httpx.Client, *, user_id: str | uuid.UUID, turn: dict[str, Any], content: str = "Done."
) -> dict[str, Any]:
    """Complete a turn's reply, so the chat may start another one (one at a time per chat)."""
    reply = turn["reply"]
    response = client.patch(
        f"/chats/{reply['chat_id']}/messages/{reply['id']}",
        json={"content": content, "status": "complete"},
        headers=user_headers(user_id),
    )
    return _json_object(response, 200)


def parse_timestamp(value: str) -> datetime:
    """A JSON timestamp as an aware datetime, for comparisons that strings get wrong."""
    parsed = datetime.fromisoformat(value)
    assert parsed.tzinfo is not None, value
    return parsed

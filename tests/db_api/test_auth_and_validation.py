"""The service token, and input that must be refused with 422 instead of reaching the database."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from harness.db_api import DbApiServer
from harness.factories import (
    DEFAULT_PASSWORD,
    add_message,
    auth_headers,
    create_chat,
    create_user,
    unique_username,
    user_headers,
)

PROTECTED_ROUTES = [
    ("POST", "/users"),
    ("POST", "/users/verify"),
    ("GET", "/users/me"),
    ("GET", "/chats"),
    ("POST", "/chats"),
    ("GET", f"/chats/{uuid.uuid4()}"),
    ("PATCH", f"/chats/{uuid.uuid4()}"),
    ("DELETE", f"/chats/{uuid.uuid4()}"),
    ("POST", f"/chats/{uuid.uuid4()}/messages"),
    ("PATCH", f"/chats/{uuid.uuid4()}/messages/1"),
    ("GET", f"/chats/{uuid.uuid4()}/messages/1"),
    ("DELETE", f"/chats/{uuid.uuid4()}/messages?after_id=0"),
    ("POST", f"/chats/{uuid.uuid4()}/turns"),
    ("GET", "/chats/search?q=anything"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED_ROUTES)
@pytest.mark.parametrize(
    "authorization",
    # Raw bytes, so a non-ASCII token reaches the server as sent.
    [None, b"Bearer wrong-token", b"Basic dXNlcjpwYXNz", b"Bearer", "Bearer t\u00f6ken".encode()],
)
def test_missing_or_wrong_token_is_401(
    db_api: DbApiServer, method: str, path: str, authorization: bytes | None
) -> None:
    headers = {b"X-User-Id": str(uuid.uuid4()).encode()}
    if authorization is not None:
        headers[b"Authorization"] = authorization
    with httpx.Client(base_url=db_api.url) as client:
        response = client.request(method, path, headers=headers, json={})
    assert response.status_code == 401
    assert response.json() == {"detail": "Missing or invalid service token"}


def test_health_needs_no_token(db_api: DbApiServer) -> None:
    for path in ("/health/live", "/health/ready"):
        response = httpx.get(f"{db_api.url}{path}")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"username": "ab", "password": DEFAULT_PASSWORD},
        {"username": "a" * 33, "password": DEFAULT_PASSWORD},
        {"username": "has space", "password": DEFAULT_PASSWORD},
        {"username": "null\x00byte", "password": DEFAULT_PASSWORD},
        {"username": "ünïcode", "password": DEFAULT_PASSWORD},
        {"username": "valid_name", "password": "short"},
        {"username": "valid_name", "password": "x" * 129},
        {"username": "valid_name", "password": "nul\x00in password"},
        {"username": "valid_name", "password": DEFAULT_PASSWORD, "admin": True},
        {"username": 12345, "password": DEFAULT_PASSWORD},
    ],
)
def test_invalid_sign_up_is_422(db_api_client: httpx.Client, body: dict[str, Any]) -> None:
    response = db_api_client.post("/users", json=body)
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], list)


def test_malformed_json_is_422(db_api_client: httpx.Client) -> None:
    response = db_api_client.post(
        "/users", content=b'{"username": ', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422


@pytest.mark.parametrize("user_id", ["not-a-uuid", "", "1"])
def test_bad_user_id_header_is_422(db_api_client: httpx.Client, user_id: str) -> None:
    assert db_api_client.get("/chats", headers={"X-User-Id": user_id}).status_code == 422


def test_missing_user_id_header_is_422(db_api_client: httpx.Client) -> None:
    response = db_api_client.get("/chats")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["header", "X-User-Id"]


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 101}, {"limit": "ten"}, {"offset": -1}, {"offset": 10**30}],
)
def test_bad_pagination_is_422(db_api_client: httpx.Client, params: dict[str, Any]) -> None:
    response = db_api_client.get("/chats", params=params, headers=user_headers(uuid.uuid4()))
    assert response.status_code == 422


@pytest.mark.parametrize("title", ["", "   ", "x" * 201, "nul\x00title", 42])
def test_bad_titles_are_422(db_api_client: httpx.Client, title: object) -> None:
    user = create_user(db_api_client)
    headers = user_headers(user["id"])
    assert db_api_client.post("/chats", json={"title": title}, headers=headers).status_code == 422
    chat = create_chat(db_api_client, user_id=user["id"])
    response = db_api_client.patch(f"/chats/{chat['id']}", json={"title": title}, headers=headers)
    assert response.status_code == 422


def test_title_of_exactly_200_characters_is_fine(db_api_client: httpx.Client) -> None:
    user = create_user(db_api_client)
    chat = create_chat(db_api_client, user_id=user["id"], title="t" * 200)
    assert chat["title"] == "t" * 200


@pytest.mark.parametrize(
    "body",
    [
        {"role": "user", "content": ""},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": "x" * 32_001},
        {"role": "user", "content": "nul\x00content"},
        {"role": "robot", "content": "hi"},
        {"role": "user", "content": "hi", "status": "done"},
        {"role": "user"},
        {"content": "hi"},
        {"role": "user", "content": None},
    ],
)
def test_bad_new_messages_are_422(db_api_client: httpx.Client, body: dict[str, Any]) -> None:
    user = create_user(db_api_client)
    chat = create_chat(db_api_client, user_id=user["id"])
    response = db_api_client.post(
        f"/chats/{chat['id']}/messages", json=body, headers=user_headers(user["id"])
    )
    assert response.status_code == 422


def test_longest_message_is_stored_whole(db_api_client: httpx.Client) -> None:
    user = create_user(db_api_client)
    chat = create_chat(db_api_client, user_id=user["id"])
    content = "é" * 32_000
    message = add_message(db_api_client, user_id=user["id"], chat_id=chat["id"], content=content)
    assert message["content"] == content


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"content": "x" * 32_001},
        {"content": "a\x00b"},
        {"status": "finished"},
        {"if_status": "generating"},
        {"content": "x", "if_status": "done"},
        {"content": "x", "if_status": None, "extra": 1},
        {"context_start_id": 0},
        {"context_start_id": -5},
        {"context_start_id": 2**63},
        {"context_start_id": "seven"},
    ],
)
def test_bad_message_updates_are_422(db_api_client: httpx.Client, body: dict[str, Any]) -> None:
    user = create_user(db_api_client)
    chat = create_chat(db_api_client, user_id=user["id"])
    message = add_message(db_api_client, user_id=user["id"], chat_id=chat["id"])
    response = db_api_client.patch(
        f"/chats/{chat['id']}/messages/{message['id']}",
        json=body,
        headers=user_headers(user["id"]),
    )
    assert response.status_code == 422


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/chats/not-a-uuid", {"title": "x"}),
        ("/chats/not-a-uuid/messages/1", {"content": "x"}),
        (f"/chats/{uuid.uuid4()}/messages/abc", {"content": "x"}),
        (f"/chats/{uuid.uuid4()}/messages/0", {"content": "x"}),
        (f"/chats/{uuid.uuid4()}/messages/{2**63}", {"content": "x"}),
    ],
)
def test_bad_ids_in_the_path_are_422(
    db_api_client: httpx.Client, path: str, body: dict[str, str]
) -> None:
    response = db_api_client.patch(path, json=body, headers=user_headers(uuid.uuid4()))
    assert response.status_code == 422


@pytest.mark.parametrize("after_id", [None, -1, "abc", 2**63])
def test_bad_after_id_is_422(db_api_client: httpx.Client, after_id: object) -> None:
    user = create_user(db_api_client)
    chat = create_chat(db_api_client, user_id=user["id"])
    add_message(db_api_client, user_id=user["id"], chat_id=chat["id"])
    params = {} if after_id is None else {"after_id": str(after_id)}
    response = db_api_client.delete(
        f"/chats/{chat['id']}/messages", params=params, headers=user_headers(user["id"])
    )
    assert response.status_code == 422
    detail = db_api_client.get(f"/chats/{chat['id']}", headers=user_headers(user["id"])).json()
    assert len(detail["messages"]) == 1


@pytest.mark.parametrize("path", ["/chats/search/messages", "/chats/search/turns"])
def test_search_is_not_a_chat_id_elsewhere(db_api_client: httpx.Client, path: str) -> None:
    response = db_api_client.post(path, json={"content": "x"}, headers=user_headers(uuid.uuid4()))
    assert response.status_code == 422


def test_lone_surrogates_are_422(db_api_client: httpx.Client) -> None:
    user = create_user(db_api_client)
    response = db_api_client.post(
        "/chats",
        content=b'{"title": "\\ud800 lone"}',
        headers={**user_headers(user["id"]), "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "title"]


def test_undecodable_body_is_a_client_error(db_api_client: httpx.Client) -> None:
    user = create_user(db_api_client)
    response = db_api_client.post(
        "/chats",
        content=b'{"title": "\xff\xfe"}',
        headers={**user_headers(user["id"]), "Content-Type": "application/json"},
    )
    # Starlette refuses bytes that are not UTF-8 before validation runs (400).
    assert response.status_code in (400, 422)
    assert isinstance(response.json()["detail"], str | list)


def test_bad_credentials_shapes_at_verify_are_422(db_api_client: httpx.Client) -> None:
    response = db_api_client.post(
        "/users/verify", json={"username": unique_username(), "password": "a\x00bcdefgh"}
    )
    assert response.status_code == 422


def test_token_and_user_headers_together(db_api: DbApiServer, db_api_client: httpx.Client) -> None:
    user = create_user(db_api_client)
    response = httpx.get(
        f"{db_api.url}/users/me", headers=auth_headers(db_api.service_token, user["id"])
    )
    assert response.status_code == 200

"""Another user's chats and messages answer exactly like missing ones, on every chat route."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from harness.factories import (
    add_message,
    create_chat,
    create_turn,
    create_user,
    user_headers,
)

CHAT_NOT_FOUND = {"detail": "Chat not found"}


@pytest.fixture
def alice_chat(db_api_client: httpx.Client) -> dict[str, Any]:
    """Alice's chat with a finished exchange and a reply still generating, plus Bob."""
    alice = create_user(db_api_client, username=None)
    bob = create_user(db_api_client)
    chat = create_chat(db_api_client, user_id=alice["id"], title="Alice's secrets")
    message = add_message(db_api_client, user_id=alice["id"], chat_id=chat["id"])
    turn = create_turn(db_api_client, user_id=alice["id"], chat_id=chat["id"], content="Private")
    return {
        "alice": alice,
        "bob": bob,
        "chat": chat,
        "message": message,
        "reply": turn["reply"],
        "messages": [message, turn["user_message"], turn["reply"]],
    }


# Every route that names a chat, old and new. `{message}` is one of Alice's messages.
CHAT_ROUTES = [
    ("GET", "/chats/{chat}", None),
    ("PATCH", "/chats/{chat}", {"title": "Mine now"}),
    ("DELETE", "/chats/{chat}", None),
    ("POST", "/chats/{chat}/messages", {"role": "user", "content": "hi"}),
    ("DELETE", "/chats/{chat}/messages?after_id=0", None),
    ("POST", "/chats/{chat}/turns", {"content": "hi", "title": "Mine now"}),
    ("GET", "/chats/{chat}/messages/{message}", None),
    ("PATCH", "/chats/{chat}/messages/{message}", {"content": "changed"}),
    ("PATCH", "/chats/{chat}/messages/{message}", {"status": "stopped", "if_status": "generating"}),
    ("PATCH", "/chats/{chat}/messages/{message}", {"context_start_id": 1}),
    ("PUT", "/chats/{chat}/messages/{message}/lease", {"slots": 4}),
]


@pytest.mark.parametrize(("method", "path", "body"), CHAT_ROUTES)
def test_other_users_chat_is_404_like_a_missing_one(
    db_api_client: httpx.Client,
    alice_chat: dict[str, Any],
    method: str,
    path: str,
    body: dict[str, str] | None,
) -> None:
    bob_headers = user_headers(alice_chat["bob"]["id"])
    alice_headers = user_headers(alice_chat["alice"]["id"])
    chat_url = f"/chats/{alice_chat['chat']['id']}"
    before = db_api_client.get(chat_url, headers=alice_headers).json()
    as_bob = db_api_client.request(
        method,
        path.format(chat=alice_chat["chat"]["id"], message=alice_chat["reply"]["id"]),
        json=body,
        headers=bob_headers,
    )
    missing = db_api_client.request(
        method,
        path.format(chat=uuid.uuid4(), message=alice_chat["reply"]["id"]),
        json=body,
        headers=bob_headers,
    )
    assert as_bob.status_code == missing.status_code == 404
    # The same body as for a chat that does not exist: nothing of Alice's leaks.
    assert as_bob.json() == missing.json() == CHAT_NOT_FOUND

    # Nothing changed for Alice, not even the chat's activity time.
    after = db_api_client.get(chat_url, headers=alice_headers).json()
    assert after == before
    assert after["title"] == "Alice's secrets"
    assert after["messages"] == alice_chat["messages"]


def test_the_matrix_covers_every_chat_route(db_api_client: httpx.Client) -> None:
    """A new route under /chats/{chat_id} must be added to CHAT_ROUTES above."""
    spec = db_api_client.get("/openapi.json").json()
    documented = {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        if path.startswith("/chats/{chat_id}")
        for method in item
    }
    covered = {
        (
            method,
            path.split("?")[0].replace("{chat}", "{chat_id}").replace("{message}", "{message_id}"),
        )
        for method, path, _ in CHAT_ROUTES
    }
    assert documented == covered


def test_other_users_chats_are_not_found_by_search(
    db_api_client: httpx.Client, alice_chat: dict[str, Any]
) -> None:
    for q in ("secrets", "Private", "Hello"):
        response = db_api_client.get(
            "/chats/search", params={"q": q}, headers=user_headers(alice_chat["bob"]["id"])
        )
        assert response.status_code == 200
        assert response.json()["items"] == []


def test_other_users_chats_are_not_exported(
    db_api_client: httpx.Client, alice_chat: dict[str, Any]
) -> None:
    bob = user_headers(alice_chat["bob"]["id"])
    for params in ({}, {"after": str(uuid.UUID(int=0))}, {"limit": 50}):
        response = db_api_client.get("/chats/export", params=params, headers=bob)
        assert response.status_code == 200
        assert response.json() == {"items": [], "next_after": None}


def test_other_users_chats_are_not_listed(
    db_api_client: httpx.Client, alice_chat: dict[str, Any]
) -> None:
    listing = db_api_client.get("/chats", headers=user_headers(alice_chat["bob"]["id"])).json()
    assert listing["total"] == 0
    assert listing["items"] == []


@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("GET", None),
        ("PATCH", {"content": "moved?"}),
        ("PATCH", {"status": "stopped", "if_status": "generating"}),
    ],
)
def test_message_addressed_through_another_chat_is_404(
    db_api_client: httpx.Client,
    alice_chat: dict[str, Any],
    method: str,
    body: dict[str, str] | None,
) -> None:
    alice_id = alice_chat["alice"]["id"]
    other_chat = create_chat(db_api_client, user_id=alice_id)
    response = db_api_client.request(
        method,
        f"/chats/{other_chat['id']}/messages/{alice_chat['reply']['id']}",
        json=body,
        headers=user_headers(alice_id),
    )
    assert response.status_code == 404
    assert response.json() == {"detail": "Message not found"}
    reply = db_api_client.get(
        f"/chats/{alice_chat['chat']['id']}/messages/{alice_chat['reply']['id']}",
        headers=user_headers(alice_id),
    ).json()
    reply.pop("queue_position")  # the reply waits for a model slot behind other tests'
    assert reply == alice_chat["reply"]


def test_delete_after_through_another_chat_leaves_this_one(
    db_api_client: httpx.Client, alice_chat: dict[str, Any]
) -> None:
    alice_headers = user_headers(alice_chat["alice"]["id"])
    other_chat = create_chat(db_api_client, user_id=alice_chat["alice"]["id"])
    response = db_api_client.delete(
        f"/chats/{other_chat['id']}/messages", params={"after_id": 0}, headers=alice_headers
    )
    assert response.status_code == 204
    detail = db_api_client.get(f"/chats/{alice_chat['chat']['id']}", headers=alice_headers)
    assert detail.json()["messages"] == alice_chat["messages"]

"""Another user's chats and messages answer exactly like missing ones."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.support.factories import add_message, create_chat, create_user, user_headers

CHAT_NOT_FOUND = {"detail": "Chat not found"}


@pytest.fixture
def alice_chat(db_api_client: httpx.Client) -> dict[str, Any]:
    """Alice's chat with one message, plus Bob, who must never see it."""
    alice = create_user(db_api_client, username=None)
    bob = create_user(db_api_client)
    chat = create_chat(db_api_client, user_id=alice["id"], title="Alice's secrets")
    message = add_message(db_api_client, user_id=alice["id"], chat_id=chat["id"])
    return {"alice": alice, "bob": bob, "chat": chat, "message": message}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/chats/{chat}", None),
        ("PATCH", "/chats/{chat}", {"title": "Mine now"}),
        ("DELETE", "/chats/{chat}", None),
        ("POST", "/chats/{chat}/messages", {"role": "user", "content": "hi"}),
        ("PATCH", "/chats/{chat}/messages/{message}", {"content": "changed"}),
    ],
)
def test_other_users_chat_is_404_like_a_missing_one(
    db_api_client: httpx.Client,
    alice_chat: dict[str, Any],
    method: str,
    path: str,
    body: dict[str, str] | None,
) -> None:
    bob_headers = user_headers(alice_chat["bob"]["id"])
    as_bob = db_api_client.request(
        method,
        path.format(chat=alice_chat["chat"]["id"], message=alice_chat["message"]["id"]),
        json=body,
        headers=bob_headers,
    )
    missing = db_api_client.request(
        method,
        path.format(chat=uuid.uuid4(), message=alice_chat["message"]["id"]),
        json=body,
        headers=bob_headers,
    )
    assert as_bob.status_code == missing.status_code == 404
    assert as_bob.json() == missing.json() == CHAT_NOT_FOUND

    # Nothing changed for Alice.
    alice_view = db_api_client.get(
        f"/chats/{alice_chat['chat']['id']}", headers=user_headers(alice_chat["alice"]["id"])
    ).json()
    assert alice_view["title"] == "Alice's secrets"
    assert alice_view["messages"] == [alice_chat["message"]]


def test_other_users_chats_are_not_listed(
    db_api_client: httpx.Client, alice_chat: dict[str, Any]
) -> None:
    listing = db_api_client.get("/chats", headers=user_headers(alice_chat["bob"]["id"])).json()
    assert listing["total"] == 0
    assert listing["items"] == []


def test_message_addressed_through_another_chat_is_404(
    db_api_client: httpx.Client, alice_chat: dict[str, Any]
) -> None:
    alice_id = alice_chat["alice"]["id"]
    other_chat = create_chat(db_api_client, user_id=alice_id)
    response = db_api_client.patch(
        f"/chats/{other_chat['id']}/messages/{alice_chat['message']['id']}",
        json={"content": "moved?"},
        headers=user_headers(alice_id),
    )
    assert response.status_code == 404
    assert response.json() == {"detail": "Message not found"}

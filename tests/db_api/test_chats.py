"""Chats: create, list (paged, newest activity first), read, rename, delete, export."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from harness.db_api import DbApiServer
from harness.factories import (
    add_message,
    create_chat,
    create_user,
    parse_timestamp,
    user_headers,
)


def test_create_chat_with_and_without_title(db_api_client: httpx.Client) -> None:
    user = create_user(db_api_client)
    untitled = create_chat(db_api_client, user_id=user["id"])
    titled = create_chat(db_api_client, user_id=user["id"], title="  Trip to Lisbon  ")
    assert untitled["title"] == "New chat"
    assert titled["title"] == "Trip to Lisbon"
    assert set(titled) == {"id", "title", "created_at", "updated_at"}
    assert titled["created_at"] == titled["updated_at"]


def test_create_chat_for_an_unknown_user_is_404(db_api_client: httpx.Client) -> None:
    response = db_api_client.post("/chats", json={}, headers=user_headers(uuid.uuid4()))
    assert response.status_code == 404
    assert response.json() == {"detail": "User not found"}


def test_get_chat_answers_messages_in_order(db_api_client: httpx.Client) -> None:
    user = create_user(db_api_client)
    chat = create_chat(db_api_client, user_id=user["id"], title="Ordered")
    contents = ["first", "second", "third"]
    for content in contents:
        add_message(db_api_client, user_id=user["id"], chat_id=chat["id"], content=content)
    response = db_api_client.get(f"/chats/{chat['id']}", headers=user_headers(user["id"]))
    assert response.status_code == 200
    detail = response.json()
    assert detail["title"] == "Ordered"
    assert [message["content"] for message in detail["messages"]] == contents
    ids = [message["id"] for message in detail["messages"]]
    assert ids == sorted(ids)


def test_rename_chat(db_api_client: httpx.Client) -> None:
    user = create_user(db_api_client)
    chat = create_chat(db_api_client, user_id=user["id"])
    response = db_api_client.patch(
        f"/chats/{chat['id']}", json={"title": " Renamed "}, headers=user_headers(user["id"])
    )
    assert response.status_code == 200
    renamed = response.json()
    assert renamed["title"] == "Renamed"
    assert parse_timestamp(renamed["updated_at"]) > parse_timestamp(chat["updated_at"])


def test_list_is_paged_and_newest_activity_first(db_api_client: httpx.Client) -> None:
    user = create_user(db_api_client)
    headers = user_headers(user["id"])
    chats = [create_chat(db_api_client, user_id=user["id"], title=f"chat {n}") for n in range(5)]
    # A new message in the oldest chat makes it the most recently active.
    add_message(db_api_client, user_id=user["id"], chat_id=chats[0]["id"])
    expected = ["chat 0", "chat 4", "chat 3", "chat 2", "chat 1"]

    full = db_api_client.get("/chats", headers=headers).json()
    assert full["total"] == 5
    assert (full["limit"], full["offset"]) == (20, 0)
    assert [chat["title"] for chat in full["items"]] == expected

    pages = [
        db_api_client.get("/chats", params={"limit": 2, "offset": offset}, headers=headers).json()
        for offset in (0, 2, 4)
    ]
    assert [len(page["items"]) for page in pages] == [2, 2, 1]
    assert all(page["total"] == 5 and page["limit"] == 2 for page in pages)
    assert [chat["title"] for page in pages for chat in page["items"]] == expected


def test_list_of_a_user_without_chats_is_empty(db_api_client: httpx.Client) -> None:
    response = db_api_client.get("/chats", headers=user_headers(uuid.uuid4()))
    assert response.status_code == 200
    assert response.json() == {"items": [], "total": 0, "limit": 20, "offset": 0}


def test_delete_chat_removes_its_messages(db_api: DbApiServer, db_api_client: httpx.Client) -> None:
    user = create_user(db_api_client)
    headers = user_headers(user["id"])
    chat = create_chat(db_api_client, user_id=user["id"])
    for content in ("one", "two"):
        add_message(db_api_client, user_id=user["id"], chat_id=chat["id"], content=content)

    response = db_api_client.delete(f"/chats/{chat['id']}", headers=headers)
    assert response.status_code == 204
    assert response.content == b""
    assert db_api_client.get(f"/chats/{chat['id']}", headers=headers).status_code == 404
    assert db_api_client.delete(f"/chats/{chat['id']}", headers=headers).status_code == 404

    engine = create_engine(db_api.database_url)
    try:
        with engine.connect() as connection:
            left = connection.execute(
                text("SELECT count(*) FROM messages WHERE chat_id = :chat_id"),
                {"chat_id": chat["id"]},
            ).scalar_one()
    finally:
        engine.dispose()
    assert left == 0


def test_the_export_pages_through_every_chat_once_with_its_messages(
    db_api_client: httpx.Client,
) -> None:
    user, other = create_user(db_api_client), create_user(db_api_client)
    made = {}
    for number in range(5):
        chat = create_chat(db_api_client, user_id=user["id"], title=f"Chat {number}")
        add_message(db_api_client, user_id=user["id"], chat_id=chat["id"], content=f"m{number}")
        made[chat["id"]] = f"m{number}"
    create_chat(db_api_client, user_id=other["id"], title="Not theirs")
    pages, after = [], None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"after": after} if after else {})
        response = db_api_client.get(
            "/chats/export", params=params, headers=user_headers(user["id"])
        )
        assert response.status_code == 200, response.text
        pages.append(response.json()["items"])
        after = response.json()["next_after"]
        if after is None:
            break
        # A chat that changes meanwhile moves in the chat list, not in the export.
        add_message(db_api_client, user_id=user["id"], chat_id=pages[0][0]["id"], content="new")
    assert [len(page) for page in pages] == [2, 2, 1]
    exported = [chat for page in pages for chat in page]
    assert sorted(chat["id"] for chat in exported) == sorted(made)
    for chat in exported:
        assert chat["messages"][0]["content"] == made[chat["id"]]
        assert "Not theirs" not in chat["title"]

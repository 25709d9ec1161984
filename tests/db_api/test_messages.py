"""Messages: append, stream an assistant reply in, and the chat's activity time."""

from __future__ import annotations

import httpx

from tests.support.factories import (
    add_message,
    create_chat,
    create_user,
    parse_timestamp,
    user_headers,
)


def test_append_message_bumps_the_chat(db_api_client: httpx.Client) -> None:
    user = create_user(db_api_client)
    chat = create_chat(db_api_client, user_id=user["id"])
    message = add_message(
        db_api_client, user_id=user["id"], chat_id=chat["id"], content="What is 2 + 2?"
    )
    assert message["chat_id"] == chat["id"]
    assert (message["role"], message["content"], message["status"]) == (
        "user",
        "What is 2 + 2?",
        "complete",
    )
    assert isinstance(message["id"], int)
    detail = db_api_client.get(f"/chats/{chat['id']}", headers=user_headers(user["id"])).json()
    assert parse_timestamp(detail["updated_at"]) > parse_timestamp(chat["updated_at"])
    assert detail["messages"] == [message]


def test_assistant_reply_streams_in_and_finishes(db_api_client: httpx.Client) -> None:
    user = create_user(db_api_client)
    headers = user_headers(user["id"])
    chat = create_chat(db_api_client, user_id=user["id"])
    reply = add_message(
        db_api_client,
        user_id=user["id"],
        chat_id=chat["id"],
        role="assistant",
        content="",
        status="generating",
    )
    assert (reply["content"], reply["status"]) == ("", "generating")
    url = f"/chats/{chat['id']}/messages/{reply['id']}"

    partial = db_api_client.patch(url, json={"content": "Four"}, headers=headers)
    assert partial.status_code == 200
    assert (partial.json()["content"], partial.json()["status"]) == ("Four", "generating")
    assert parse_timestamp(partial.json()["updated_at"]) > parse_timestamp(reply["updated_at"])

    done = db_api_client.patch(
        url, json={"content": "Four.", "status": "complete"}, headers=headers
    )
    assert done.status_code == 200
    finished = done.json()
    assert (finished["content"], finished["status"]) == ("Four.", "complete")
    assert finished["created_at"] == reply["created_at"]
    assert parse_timestamp(finished["updated_at"]) > parse_timestamp(partial.json()["updated_at"])

    detail = db_api_client.get(f"/chats/{chat['id']}", headers=headers).json()
    assert parse_timestamp(detail["updated_at"]) >= parse_timestamp(finished["updated_at"])
    assert detail["messages"] == [finished]


def test_status_alone_can_change(db_api_client: httpx.Client) -> None:
    user = create_user(db_api_client)
    chat = create_chat(db_api_client, user_id=user["id"])
    reply = add_message(
        db_api_client,
        user_id=user["id"],
        chat_id=chat["id"],
        role="assistant",
        content="Partial answ",
        status="generating",
    )
    response = db_api_client.patch(
        f"/chats/{chat['id']}/messages/{reply['id']}",
        json={"status": "stopped"},
        headers=user_headers(user["id"]),
    )
    assert response.status_code == 200
    assert (response.json()["content"], response.json()["status"]) == ("Partial answ", "stopped")


def test_finished_message_cannot_be_emptied(db_api_client: httpx.Client) -> None:
    user = create_user(db_api_client)
    chat = create_chat(db_api_client, user_id=user["id"])
    message = add_message(db_api_client, user_id=user["id"], chat_id=chat["id"])
    response = db_api_client.patch(
        f"/chats/{chat['id']}/messages/{message['id']}",
        json={"content": ""},
        headers=user_headers(user["id"]),
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "content"]


def test_unknown_message_is_404(db_api_client: httpx.Client) -> None:
    user = create_user(db_api_client)
    chat = create_chat(db_api_client, user_id=user["id"])
    response = db_api_client.patch(
        f"/chats/{chat['id']}/messages/999999999",
        json={"status": "complete"},
        headers=user_headers(user["id"]),
    )
    assert response.status_code == 404
    assert response.json() == {"detail": "Message not found"}

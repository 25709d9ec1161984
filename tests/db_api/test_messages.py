"""Messages: append, read one, stream a reply in, context start, drop the tail."""

from __future__ import annotations

import httpx

from harness.factories import (
    add_message,
    create_chat,
    create_turn,
    create_user,
    finish_reply,
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


def test_get_one_message(db_api_client: httpx.Client) -> None:
    user = create_user(db_api_client)
    chat = create_chat(db_api_client, user_id=user["id"])
    turn = create_turn(db_api_client, user_id=user["id"], chat_id=chat["id"])
    reply = turn["reply"]
    response = db_api_client.get(
        f"/chats/{chat['id']}/messages/{reply['id']}", headers=user_headers(user["id"])
    )
    assert response.status_code == 200
    message = response.json()
    # Nobody writes the reply yet: it waits for a model slot, in its place in the queue.
    assert isinstance(message.pop("queue_position"), int)
    assert message == reply


def test_get_message_through_another_chat_is_404(db_api_client: httpx.Client) -> None:
    user = create_user(db_api_client)
    chat = create_chat(db_api_client, user_id=user["id"])
    other_chat = create_chat(db_api_client, user_id=user["id"])
    message = add_message(db_api_client, user_id=user["id"], chat_id=chat["id"])
    response = db_api_client.get(
        f"/chats/{other_chat['id']}/messages/{message['id']}", headers=user_headers(user["id"])
    )
    assert response.status_code == 404
    assert response.json() == {"detail": "Message not found"}


def test_context_start_round_trip(db_api_client: httpx.Client) -> None:
    user = create_user(db_api_client)
    headers = user_headers(user["id"])
    chat = create_chat(db_api_client, user_id=user["id"])
    first = create_turn(db_api_client, user_id=user["id"], chat_id=chat["id"])
    finish_reply(db_api_client, user_id=user["id"], turn=first)
    second = create_turn(db_api_client, user_id=user["id"], chat_id=chat["id"])
    url = f"/chats/{chat['id']}/messages/{second['reply']['id']}"
    start_id = first["reply"]["id"]

    saved = db_api_client.patch(url, json={"context_start_id": start_id}, headers=headers)
    assert saved.status_code == 200
    assert saved.json()["context_start_id"] == start_id
    # Leaving the field out keeps it; other fields still change.
    finished = db_api_client.patch(
        url, json={"content": "Done.", "status": "complete"}, headers=headers
    )
    assert finished.json()["context_start_id"] == start_id
    assert db_api_client.get(url, headers=headers).json()["context_start_id"] == start_id
    detail = db_api_client.get(f"/chats/{chat['id']}", headers=headers).json()
    assert detail["messages"][-1]["context_start_id"] == start_id
    # An explicit null clears it.
    cleared = db_api_client.patch(url, json={"context_start_id": None}, headers=headers)
    assert cleared.status_code == 200
    assert cleared.json()["context_start_id"] is None
    assert cleared.json()["content"] == "Done."


def test_delete_after_drops_only_later_messages(db_api_client: httpx.Client) -> None:
    user = create_user(db_api_client)
    headers = user_headers(user["id"])
    chat = create_chat(db_api_client, user_id=user["id"])
    other_chat = create_chat(db_api_client, user_id=user["id"])
    first = create_turn(db_api_client, user_id=user["id"], chat_id=chat["id"])
    finish_reply(db_api_client, user_id=user["id"], turn=first)
    second = create_turn(db_api_client, user_id=user["id"], chat_id=chat["id"])
    # Finished, so the other chat may start a reply (one being written per user).
    finish_reply(db_api_client, user_id=user["id"], turn=second)
    untouched = create_turn(db_api_client, user_id=user["id"], chat_id=other_chat["id"])

    response = db_api_client.delete(
        f"/chats/{chat['id']}/messages",
        params={"after_id": first["user_message"]["id"]},
        headers=headers,
    )
    assert response.status_code == 204
    assert response.content == b""
    detail = db_api_client.get(f"/chats/{chat['id']}", headers=headers).json()
    assert detail["messages"] == [first["user_message"]]
    other = db_api_client.get(f"/chats/{other_chat['id']}", headers=headers).json()
    assert other["messages"] == [untouched["user_message"], untouched["reply"]]

    # Nothing later: still 204. Zero empties the chat.
    again = db_api_client.delete(
        f"/chats/{chat['id']}/messages",
        params={"after_id": first["user_message"]["id"]},
        headers=headers,
    )
    assert again.status_code == 204
    emptied = db_api_client.delete(
        f"/chats/{chat['id']}/messages", params={"after_id": 0}, headers=headers
    )
    assert emptied.status_code == 204
    assert db_api_client.get(f"/chats/{chat['id']}", headers=headers).json()["messages"] == []

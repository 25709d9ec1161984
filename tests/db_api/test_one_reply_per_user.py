"""One reply being written per user, across chats and db-api replicas (PostgreSQL decides)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from harness.db_api import DbApiServer
from harness.factories import (
    add_message,
    auth_headers,
    create_chat,
    create_turn,
    create_user,
    finish_reply,
    user_headers,
)
from tests.support.db_api import cut_off_writer


def _turn(client: httpx.Client, user: dict[str, Any], chat: dict[str, Any]) -> httpx.Response:
    return client.post(
        f"/chats/{chat['id']}/turns", json={"content": "Hello?"}, headers=user_headers(user["id"])
    )


def _messages(client: httpx.Client, user: dict[str, Any], chat: dict[str, Any]) -> list[Any]:
    detail = client.get(f"/chats/{chat['id']}", headers=user_headers(user["id"])).json()
    messages: list[Any] = detail["messages"]
    return messages


def test_a_second_chat_waits_for_the_users_reply(db_api_client: httpx.Client) -> None:
    user = create_user(db_api_client)
    first, second = (create_chat(db_api_client, user_id=user["id"]) for _ in range(2))
    writing = create_turn(db_api_client, user_id=user["id"], chat_id=first["id"])

    refused = _turn(db_api_client, user, second)
    assert refused.status_code == 409
    assert refused.json() == {
        "detail": "A reply is already being written in another of your chats",
        "busy_chat_id": first["id"],
    }
    # Nothing was written.
    assert _messages(db_api_client, user, second) == []

    finish_reply(db_api_client, user_id=user["id"], turn=writing)
    assert _turn(db_api_client, user, second).status_code == 201


def test_every_way_of_starting_a_reply_is_refused(db_api_client: httpx.Client) -> None:
    user = create_user(db_api_client)
    busy, other = (create_chat(db_api_client, user_id=user["id"]) for _ in range(2))
    earlier = create_turn(db_api_client, user_id=user["id"], chat_id=other["id"])
    failed = client_patch_status(db_api_client, user, earlier["reply"], "error")
    create_turn(db_api_client, user_id=user["id"], chat_id=busy["id"])
    headers = user_headers(user["id"])

    # A retry that adds a reply row, and one that reuses the failed row.
    added = db_api_client.post(
        f"/chats/{other['id']}/messages",
        json={"role": "assistant", "content": "", "status": "generating"},
        headers=headers,
    )
    reused = client_patch(db_api_client, user, failed, {"content": "", "status": "generating"})
    assert (added.status_code, reused.status_code) == (409, 409)
    assert added.json()["busy_chat_id"] == reused.json()["busy_chat_id"] == busy["id"]
    # The refused update says the message's unchanged status, as 409s of that route do.
    assert reused.json()["status"] == "error"
    assert [m["status"] for m in _messages(db_api_client, user, other)] == ["complete", "error"]
    # Finished messages and other users are not held up.
    add_message(db_api_client, user_id=user["id"], chat_id=other["id"], content="Still here")
    someone_else = create_user(db_api_client)
    their_chat = create_chat(db_api_client, user_id=someone_else["id"])
    assert _turn(db_api_client, someone_else, their_chat).status_code == 201


def test_a_reply_whose_writer_died_does_not_hold_the_user(
    db_api_client: httpx.Client, db_api: DbApiServer
) -> None:
    """A reply whose writer's lease lapsed while it held a model slot was cut off (a crash)."""
    user = create_user(db_api_client)
    stale_chat, fresh_chat = (create_chat(db_api_client, user_id=user["id"]) for _ in range(2))
    stale = create_turn(db_api_client, user_id=user["id"], chat_id=stale_chat["id"])
    cut_off_writer(db_api, stale["reply"]["id"])
    assert _turn(db_api_client, user, fresh_chat).status_code == 201
    assert [m["status"] for m in _messages(db_api_client, user, stale_chat)] == [
        "complete",
        "error",
    ]


def test_racing_sends_in_six_chats_start_one_reply(db_api: DbApiServer) -> None:
    """Six chats, six sends at once (as from several replicas): exactly one reply starts."""
    with httpx.Client(base_url=db_api.url, headers=auth_headers(db_api.service_token)) as client:
        user = create_user(client)
        chats = [create_chat(client, user_id=user["id"]) for _ in range(6)]

    def send(chat: dict[str, Any]) -> httpx.Response:
        with httpx.Client(
            base_url=db_api.url, headers=auth_headers(db_api.service_token)
        ) as client:
            return _turn(client, user, chat)

    with ThreadPoolExecutor(max_workers=6) as pool:
        responses = list(pool.map(send, chats))
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201, 409, 409, 409, 409, 409], [r.text for r in responses]
    (winner,) = [r.json() for r in responses if r.status_code == 201]
    busy = {r.json()["busy_chat_id"] for r in responses if r.status_code == 409}
    assert busy == {winner["chat"]["id"]}
    with httpx.Client(base_url=db_api.url, headers=auth_headers(db_api.service_token)) as client:
        written = [len(_messages(client, user, chat)) for chat in chats]
    assert sorted(written) == [0, 0, 0, 0, 0, 2]


def client_patch(
    client: httpx.Client, user: dict[str, Any], message: dict[str, Any], change: dict[str, Any]
) -> httpx.Response:
    return client.patch(
        f"/chats/{message['chat_id']}/messages/{message['id']}",
        json=change,
        headers=user_headers(user["id"]),
    )


def client_patch_status(
    client: httpx.Client, user: dict[str, Any], message: dict[str, Any], status: str
) -> dict[str, Any]:
    response = client_patch(client, user, message, {"content": "partial", "status": status})
    assert response.status_code == 200, response.text
    updated: dict[str, Any] = response.json()
    return updated


def test_an_edit_replaces_the_last_message_in_one_transaction(db_api_client: httpx.Client) -> None:
    """`replace_after_id`: the old message goes with the new turn, or stays if it is refused."""
    user = create_user(db_api_client)
    chat, other = (create_chat(db_api_client, user_id=user["id"]) for _ in range(2))
    asked = create_turn(db_api_client, user_id=user["id"], chat_id=chat["id"], content="Hi")
    finish_reply(db_api_client, user_id=user["id"], turn=asked)
    before = _messages(db_api_client, user, chat)
    busy = create_turn(db_api_client, user_id=user["id"], chat_id=other["id"])
    edit = {"content": "Hello", "replace_after_id": 0}
    headers = user_headers(user["id"])

    refused = db_api_client.post(f"/chats/{chat['id']}/turns", json=edit, headers=headers)
    assert refused.status_code == 409
    assert _messages(db_api_client, user, chat) == before

    finish_reply(db_api_client, user_id=user["id"], turn=busy)
    edited = db_api_client.post(f"/chats/{chat['id']}/turns", json=edit, headers=headers)
    assert edited.status_code == 201
    assert [m["content"] for m in _messages(db_api_client, user, chat)] == ["Hello", ""]

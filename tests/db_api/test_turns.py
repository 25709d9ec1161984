"""Turns: the user's message and the empty reply, written together in one transaction."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from harness.db_api import DbApiServer
from harness.factories import (
    add_message,
    auth_headers,
    create_chat,
    create_turn,
    create_user,
    finish_reply,
    parse_timestamp,
    user_headers,
)


def _chat_detail(client: httpx.Client, user: dict[str, Any], chat_id: str) -> dict[str, Any]:
    response = client.get(f"/chats/{chat_id}", headers=user_headers(user["id"]))
    assert response.status_code == 200
    detail: dict[str, Any] = response.json()
    return detail


def test_turn_adds_the_message_and_an_empty_reply(db_api_client: httpx.Client) -> None:
    user = create_user(db_api_client)
    chat = create_chat(db_api_client, user_id=user["id"])
    turn = create_turn(
        db_api_client, user_id=user["id"], chat_id=chat["id"], content="What is 2 + 2?"
    )
    assert set(turn) == {"chat", "user_message", "reply", "slot"}
    assert turn["slot"] is None  # no slot count sent: the writer asks for one
    question, reply = turn["user_message"], turn["reply"]
    assert (question["role"], question["content"], question["status"]) == (
        "user",
        "What is 2 + 2?",
        "complete",
    )
    assert (reply["role"], reply["content"], reply["status"]) == ("assistant", "", "generating")
    assert question["chat_id"] == reply["chat_id"] == chat["id"]
    assert question["id"] < reply["id"]
    assert question["context_start_id"] is None
    assert reply["context_start_id"] is None

    # The answer is what is stored, and the chat moved to the top of the list.
    detail = _chat_detail(db_api_client, user, chat["id"])
    assert detail["messages"] == [question, reply]
    assert turn["chat"] == {key: detail[key] for key in ("id", "title", "created_at", "updated_at")}
    assert parse_timestamp(turn["chat"]["updated_at"]) > parse_timestamp(chat["updated_at"])
    assert "search_vector" not in turn["chat"]
    assert "search_vector" not in question


def test_title_names_the_chat_on_its_first_user_message(db_api_client: httpx.Client) -> None:
    user = create_user(db_api_client)
    chat = create_chat(db_api_client, user_id=user["id"])
    # An opening assistant message does not count as the user's first message.
    add_message(
        db_api_client, user_id=user["id"], chat_id=chat["id"], role="assistant", content="Hi!"
    )
    first = create_turn(
        db_api_client,
        user_id=user["id"],
        chat_id=chat["id"],
        content="Plan a trip",
        title="  Trip planning  ",
    )
    assert first["chat"]["title"] == "Trip planning"
    finish_reply(db_api_client, user_id=user["id"], turn=first)

    second = create_turn(
        db_api_client,
        user_id=user["id"],
        chat_id=chat["id"],
        content="Now the budget",
        title="Budget",
    )
    assert second["chat"]["title"] == "Trip planning"
    assert _chat_detail(db_api_client, user, chat["id"])["title"] == "Trip planning"


def test_without_title_the_chat_keeps_its_name(db_api_client: httpx.Client) -> None:
    user = create_user(db_api_client)
    chat = create_chat(db_api_client, user_id=user["id"], title="Named by hand")
    turn = create_turn(db_api_client, user_id=user["id"], chat_id=chat["id"])
    assert turn["chat"]["title"] == "Named by hand"


def test_title_is_ignored_once_a_user_message_exists(db_api_client: httpx.Client) -> None:
    user = create_user(db_api_client)
    chat = create_chat(db_api_client, user_id=user["id"], title="Kept")
    add_message(db_api_client, user_id=user["id"], chat_id=chat["id"], content="Earlier")
    turn = create_turn(
        db_api_client, user_id=user["id"], chat_id=chat["id"], content="Later", title="Ignored"
    )
    assert turn["chat"]["title"] == "Kept"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"content": ""},
        {"content": "x" * 32_001},
        {"content": "nul\x00content"},
        {"content": None},
        {"content": "hi", "title": ""},
        {"content": "hi", "title": "   "},
        {"content": "hi", "title": "t" * 201},
        {"content": "hi", "title": "nul\x00title"},
        {"content": "hi", "role": "assistant"},
        {"content": "hi", "status": "generating"},
    ],
)
def test_invalid_turn_writes_nothing(db_api_client: httpx.Client, body: dict[str, Any]) -> None:
    user = create_user(db_api_client)
    chat = create_chat(db_api_client, user_id=user["id"], title="Untouched")
    response = db_api_client.post(
        f"/chats/{chat['id']}/turns", json=body, headers=user_headers(user["id"])
    )
    assert response.status_code == 422
    detail = _chat_detail(db_api_client, user, chat["id"])
    assert detail["messages"] == []
    assert (detail["title"], detail["updated_at"]) == ("Untouched", chat["updated_at"])


def test_longest_message_starts_a_turn(db_api_client: httpx.Client) -> None:
    user = create_user(db_api_client)
    chat = create_chat(db_api_client, user_id=user["id"])
    content = "é" * 32_000
    turn = create_turn(db_api_client, user_id=user["id"], chat_id=chat["id"], content=content)
    assert turn["user_message"]["content"] == content


def test_another_users_chat_is_404_and_untouched(db_api_client: httpx.Client) -> None:
    alice = create_user(db_api_client)
    bob = create_user(db_api_client)
    chat = create_chat(db_api_client, user_id=alice["id"])
    response = db_api_client.post(
        f"/chats/{chat['id']}/turns",
        json={"content": "Mine now", "title": "Hijacked"},
        headers=user_headers(bob["id"]),
    )
    assert response.status_code == 404
    assert response.json() == {"detail": "Chat not found"}
    detail = _chat_detail(db_api_client, alice, chat["id"])
    assert detail["messages"] == []
    assert (detail["title"], detail["updated_at"]) == (chat["title"], chat["updated_at"])


def test_unknown_chat_is_404(db_api_client: httpx.Client) -> None:
    user = create_user(db_api_client)
    response = db_api_client.post(
        f"/chats/{uuid.uuid4()}/turns", json={"content": "hi"}, headers=user_headers(user["id"])
    )
    assert response.status_code == 404
    assert response.json() == {"detail": "Chat not found"}


def test_concurrent_first_turns_name_the_chat_once(db_api: DbApiServer) -> None:
    """Racing first messages: one turn wins and names the chat; the others are 409s."""
    with httpx.Client(base_url=db_api.url, headers=auth_headers(db_api.service_token)) as client:
        user = create_user(client)
        chat = create_chat(client, user_id=user["id"])

    def send(index: int) -> httpx.Response:
        with httpx.Client(
            base_url=db_api.url, headers=auth_headers(db_api.service_token, user["id"])
        ) as client:
            return client.post(
                f"/chats/{chat['id']}/turns",
                json={"content": f"question {index}", "title": f"Title {index}"},
            )

    with ThreadPoolExecutor(max_workers=6) as pool:
        responses = list(pool.map(send, range(6)))
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201, 409, 409, 409, 409, 409], [r.text for r in responses]
    (winner,) = [response.json() for response in responses if response.status_code == 201]
    expected_title = winner["user_message"]["content"].replace("question", "Title")
    with httpx.Client(
        base_url=db_api.url, headers=auth_headers(db_api.service_token, user["id"])
    ) as client:
        detail = client.get(f"/chats/{chat['id']}").json()
    assert detail["title"] == expected_title
    # The refused turns wrote nothing: the winner's question and reply, in order.
    assert detail["messages"] == [winner["user_message"], winner["reply"]]

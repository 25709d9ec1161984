"""Idempotent sends and one reply at a time: request ids, and the database as the judge."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from harness.db_api import DbApiServer
from harness.factories import (
    auth_headers,
    create_chat,
    create_turn,
    create_user,
    finish_reply,
    user_headers,
)


def _chat_detail(client: httpx.Client, user_id: str, chat_id: str) -> dict[str, Any]:
    response = client.get(f"/chats/{chat_id}", headers=user_headers(user_id))
    assert response.status_code == 200, response.text
    detail: dict[str, Any] = response.json()
    return detail


def _at_once(
    db_api: DbApiServer,
    user_id: str,
    count: int,
    send: Callable[[httpx.Client, int], httpx.Response],
) -> list[httpx.Response]:
    """Run `send` on `count` threads, each with its own connection, released together."""
    barrier = threading.Barrier(count)

    def run(index: int) -> httpx.Response:
        headers = auth_headers(db_api.service_token, user_id)
        with httpx.Client(base_url=db_api.url, headers=headers) as client:
            client.get("/health/live")  # connect first, so the posts really start together
            barrier.wait(timeout=30)
            return send(client, index)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def test_a_resent_chat_form_answers_the_first_chat(db_api_client: httpx.Client) -> None:
    user = create_user(db_api_client)
    request_id = str(uuid.uuid4())
    headers = user_headers(user["id"])
    body = {"title": "Once", "request_id": request_id}
    first = db_api_client.post("/chats", json=body, headers=headers)
    again = db_api_client.post("/chats", json={**body, "title": "Twice"}, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    listed = db_api_client.get("/chats", headers=headers).json()
    assert listed["total"] == 1

    # Request ids belong to their user: someone else's equal id is a different form.
    other = create_user(db_api_client)
    theirs = db_api_client.post("/chats", json=body, headers=user_headers(other["id"]))
    assert theirs.status_code == 201
    assert theirs.json()["id"] != first.json()["id"]


def test_a_resent_turn_answers_the_first_turn_and_writes_nothing(
    db_api_client: httpx.Client,
) -> None:
    user = create_user(db_api_client)
    chat = create_chat(db_api_client, user_id=user["id"])
    request_id = str(uuid.uuid4())
    url = f"/chats/{chat['id']}/turns"
    headers = user_headers(user["id"])
    body = {"content": "Hello once", "title": "Greeting", "request_id": request_id}
    first = db_api_client.post(url, json=body, headers=headers)
    assert first.status_code == 201, first.text
    turn = first.json()
    assert turn["user_message"]["request_id"] == request_id
    assert turn["reply"]["request_id"] is None
    before = _chat_detail(db_api_client, user["id"], chat["id"])

    # Even with other text, the same id is the same form: the stored turn comes back.
    again = db_api_client.post(url, json={**body, "content": "Hello twice"}, headers=headers)
    assert again.status_code == 200, again.text
    assert again.json() == turn
    assert _chat_detail(db_api_client, user["id"], chat["id"]) == before

    # Later, the answer shows the turn as it is now (the reply finished meanwhile).
    finished = finish_reply(db_api_client, user_id=user["id"], turn=turn, content="Hi!")
    later = db_api_client.post(url, json=body, headers=headers)
    assert later.status_code == 200
    assert later.json()["reply"] == finished
    assert len(_chat_detail(db_api_client, user["id"], chat["id"])["messages"]) == 2


def test_a_request_id_is_per_chat(db_api_client: httpx.Client) -> None:
    user = create_user(db_api_client)
    request_id = str(uuid.uuid4())
    for _ in range(2):
        chat = create_chat(db_api_client, user_id=user["id"])
        response = db_api_client.post(
            f"/chats/{chat['id']}/turns",
            json={"content": "Same form, other chat", "request_id": request_id},
            headers=user_headers(user["id"]),
        )
        assert response.status_code == 201, response.text
        # Finished, so the next chat may start a reply (one being written per user).
        finish_reply(db_api_client, user_id=user["id"], turn=response.json())


def test_a_resent_turn_whose_reply_was_deleted_is_a_conflict(db_api_client: httpx.Client) -> None:
    user = create_user(db_api_client)
    chat = create_chat(db_api_client, user_id=user["id"])
    headers = user_headers(user["id"])
    body = {"content": "Hello", "request_id": str(uuid.uuid4())}
    turn = db_api_client.post(f"/chats/{chat['id']}/turns", json=body, headers=headers).json()
    deleted = db_api_client.delete(
        f"/chats/{chat['id']}/messages",
        params={"after_id": turn["user_message"]["id"]},
        headers=headers,
    )
    assert deleted.status_code == 204
    again = db_api_client.post(f"/chats/{chat['id']}/turns", json=body, headers=headers)
    assert again.status_code == 409
    assert again.json() == {"detail": "This request was already handled"}
    assert _chat_detail(db_api_client, user["id"], chat["id"])["messages"] == [turn["user_message"]]


def test_double_submitted_turn_at_once_stores_one_turn(db_api: DbApiServer) -> None:
    with httpx.Client(base_url=db_api.url, headers=auth_headers(db_api.service_token)) as client:
        user = create_user(client)
        chat = create_chat(client, user_id=user["id"])
    body = {"content": "Sent twice at once", "request_id": str(uuid.uuid4())}

    responses = _at_once(
        db_api,
        user["id"],
        4,
        lambda client, _index: client.post(f"/chats/{chat['id']}/turns", json=body),
    )
    assert sorted(r.status_code for r in responses) == [200, 200, 200, 201]
    turns = [response.json() for response in responses]
    assert all(turn["user_message"] == turns[0]["user_message"] for turn in turns)
    assert all(turn["reply"]["id"] == turns[0]["reply"]["id"] for turn in turns)
    with httpx.Client(base_url=db_api.url, headers=auth_headers(db_api.service_token)) as client:
        messages = _chat_detail(client, user["id"], chat["id"])["messages"]
    assert [m["id"] for m in messages] == [turns[0]["user_message"]["id"], turns[0]["reply"]["id"]]


def test_double_submitted_chat_at_once_makes_one_chat(db_api: DbApiServer) -> None:
    with httpx.Client(base_url=db_api.url, headers=auth_headers(db_api.service_token)) as client:
        user = create_user(client)
    body = {"request_id": str(uuid.uuid4())}

    responses = _at_once(
        db_api, user["id"], 4, lambda client, _index: client.post("/chats", json=body)
    )
    assert sorted(r.status_code for r in responses) == [200, 200, 200, 201]
    assert len({response.json()["id"] for response in responses}) == 1
    with httpx.Client(base_url=db_api.url, headers=auth_headers(db_api.service_token)) as client:
        assert client.get("/chats", headers=user_headers(user["id"])).json()["total"] == 1


def test_two_turns_at_once_one_reply_at_a_time(db_api: DbApiServer) -> None:
    """Two replicas start a reply in the same chat at the same instant: one 201, one 409."""
    with httpx.Client(base_url=db_api.url, headers=auth_headers(db_api.service_token)) as client:
        user = create_user(client)
        chat = create_chat(client, user_id=user["id"])

    def send(client: httpx.Client, index: int) -> httpx.Response:
        body = {"content": f"Question {index}", "request_id": str(uuid.uuid4())}
        return client.post(f"/chats/{chat['id']}/turns", json=body)

    responses = _at_once(db_api, user["id"], 2, send)
    by_status = Counter(response.status_code for response in responses)
    assert by_status == {201: 1, 409: 1}, [response.text for response in responses]
    (refused,) = [r for r in responses if r.status_code == 409]
    assert refused.json() == {"detail": "A reply is already being written in this chat"}
    (winner,) = [r.json() for r in responses if r.status_code == 201]
    with httpx.Client(base_url=db_api.url, headers=auth_headers(db_api.service_token)) as client:
        messages = _chat_detail(client, user["id"], chat["id"])["messages"]
    assert messages == [winner["user_message"], winner["reply"]]


def test_every_way_to_a_second_generating_reply_is_a_conflict(
    db_api_client: httpx.Client,
) -> None:
    user = create_user(db_api_client)
    chat = create_chat(db_api_client, user_id=user["id"])
    headers = user_headers(user["id"])
    turn = create_turn(db_api_client, user_id=user["id"], chat_id=chat["id"])

    added = db_api_client.post(
        f"/chats/{chat['id']}/messages",
        json={"role": "assistant", "content": "", "status": "generating"},
        headers=headers,
    )
    assert added.status_code == 409
    assert added.json() == {"detail": "A reply is already being written in this chat"}

    turned = db_api_client.post(
        f"/chats/{chat['id']}/turns", json={"content": "And another"}, headers=headers
    )
    assert turned.status_code == 409

    # Finish it, start a second turn, then try to restart the first reply.
    finish_reply(db_api_client, user_id=user["id"], turn=turn)
    second = create_turn(db_api_client, user_id=user["id"], chat_id=chat["id"])
    restarted = db_api_client.patch(
        f"/chats/{chat['id']}/messages/{turn['reply']['id']}",
        json={"content": "", "status": "generating", "if_status": "complete"},
        headers=headers,
    )
    assert restarted.status_code == 409
    assert restarted.json() == {
        "detail": "A reply is already being written in this chat",
        "status": "complete",
    }
    messages = _chat_detail(db_api_client, user["id"], chat["id"])["messages"]
    assert [m["status"] for m in messages] == ["complete", "complete", "complete", "generating"]
    assert messages[-1] == second["reply"]

"""PATCH with `if_status`: a reply's saves and a stop cannot overwrite each other."""

from __future__ import annotations

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
    user_headers,
)


@pytest.fixture
def generating_reply(db_api_client: httpx.Client) -> dict[str, Any]:
    """A user, their chat and a reply being generated; `url` addresses the reply."""
    user = create_user(db_api_client)
    chat = create_chat(db_api_client, user_id=user["id"])
    turn = create_turn(db_api_client, user_id=user["id"], chat_id=chat["id"])
    return {
        "user": user,
        "chat": chat,
        "reply": turn["reply"],
        "url": f"/chats/{chat['id']}/messages/{turn['reply']['id']}",
        "headers": user_headers(user["id"]),
    }


def test_update_applies_when_the_status_matches(
    db_api_client: httpx.Client, generating_reply: dict[str, Any]
) -> None:
    response = db_api_client.patch(
        generating_reply["url"],
        json={"content": "Four", "if_status": "generating"},
        headers=generating_reply["headers"],
    )
    assert response.status_code == 200
    assert (response.json()["content"], response.json()["status"]) == ("Four", "generating")


def test_stop_then_late_save_is_409_with_the_current_status(
    db_api_client: httpx.Client, generating_reply: dict[str, Any]
) -> None:
    url, headers = generating_reply["url"], generating_reply["headers"]
    db_api_client.patch(url, json={"content": "Fo", "if_status": "generating"}, headers=headers)
    stop = db_api_client.patch(
        url, json={"status": "stopped", "if_status": "generating"}, headers=headers
    )
    assert stop.status_code == 200
    assert (stop.json()["content"], stop.json()["status"]) == ("Fo", "stopped")

    late = db_api_client.patch(
        url,
        json={"content": "Four.", "status": "complete", "if_status": "generating"},
        headers=headers,
    )
    assert late.status_code == 409
    assert late.json() == {"detail": "The message is no longer generating", "status": "stopped"}
    stored = db_api_client.get(url, headers=headers).json()
    assert stored == {**stop.json(), "queue_position": None}


def test_finished_reply_cannot_be_stopped(
    db_api_client: httpx.Client, generating_reply: dict[str, Any]
) -> None:
    url, headers = generating_reply["url"], generating_reply["headers"]
    done = db_api_client.patch(
        url,
        json={"content": "Four.", "status": "complete", "if_status": "generating"},
        headers=headers,
    )
    assert done.status_code == 200
    stop = db_api_client.patch(
        url, json={"status": "stopped", "if_status": "generating"}, headers=headers
    )
    assert stop.status_code == 409
    assert stop.json() == {"detail": "The message is no longer generating", "status": "complete"}
    assert db_api_client.get(url, headers=headers).json()["status"] == "complete"


def test_conflict_does_not_bump_the_chat(
    db_api_client: httpx.Client, generating_reply: dict[str, Any]
) -> None:
    url, headers = generating_reply["url"], generating_reply["headers"]
    db_api_client.patch(url, json={"status": "error"}, headers=headers)
    before = db_api_client.get(f"/chats/{generating_reply['chat']['id']}", headers=headers).json()
    conflict = db_api_client.patch(
        url, json={"content": "late", "if_status": "generating"}, headers=headers
    )
    assert conflict.status_code == 409
    assert conflict.json()["status"] == "error"
    after = db_api_client.get(f"/chats/{generating_reply['chat']['id']}", headers=headers).json()
    assert after == before


def test_if_status_other_than_generating(db_api_client: httpx.Client) -> None:
    user = create_user(db_api_client)
    chat = create_chat(db_api_client, user_id=user["id"])
    message = add_message(db_api_client, user_id=user["id"], chat_id=chat["id"])
    url = f"/chats/{chat['id']}/messages/{message['id']}"
    headers = user_headers(user["id"])
    ok = db_api_client.patch(
        url, json={"content": "edited", "if_status": "complete"}, headers=headers
    )
    assert ok.status_code == 200
    conflict = db_api_client.patch(
        url, json={"content": "again", "if_status": "stopped"}, headers=headers
    )
    assert conflict.status_code == 409
    assert conflict.json() == {"detail": "The message is no longer stopped", "status": "complete"}


def test_content_rules_still_apply_with_if_status(
    db_api_client: httpx.Client, generating_reply: dict[str, Any]
) -> None:
    # The reply is still empty, so it cannot be marked complete.
    response = db_api_client.patch(
        generating_reply["url"],
        json={"status": "complete", "if_status": "generating"},
        headers=generating_reply["headers"],
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "content"]


def test_racing_finishes_and_stops_let_exactly_one_win(db_api: DbApiServer) -> None:
    """Many writers race to end the same reply; exactly one succeeds, the rest see 409."""
    with httpx.Client(base_url=db_api.url, headers=auth_headers(db_api.service_token)) as client:
        user = create_user(client)
        chat = create_chat(client, user_id=user["id"])
        reply = create_turn(client, user_id=user["id"], chat_id=chat["id"])["reply"]
    url = f"{db_api.url}/chats/{chat['id']}/messages/{reply['id']}"
    headers = auth_headers(db_api.service_token, user["id"])
    bodies = [
        {"content": f"answer {index}", "status": "complete", "if_status": "generating"}
        if index % 2
        else {"status": "stopped", "if_status": "generating"}
        for index in range(8)
    ]

    def send(body: dict[str, str]) -> httpx.Response:
        return httpx.patch(url, json=body, headers=headers)

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        responses = list(pool.map(send, bodies))
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] + [409] * (len(bodies) - 1)
    winner = next(response.json() for response in responses if response.status_code == 200)
    for response in responses:
        if response.status_code == 409:
            assert response.json()["status"] == winner["status"]
    stored = httpx.get(url, headers=headers).json()
    assert stored == {**winner, "queue_position": None}

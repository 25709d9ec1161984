"""`GET /sessions/current/page`: a chat page's data in one request, and its ETag.

The ETag stands for every chat and message of the user (a revision the database's
triggers bump), so each kind of write must change it, and nothing else may.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from db_api.schemas import PageView
from harness.factories import (
    add_message,
    create_chat,
    create_turn,
    create_user,
    finish_reply,
    user_headers,
)

PAGE = "/sessions/current/page"


class Reader:
    """One user with a session, two chats (one with messages), reading the page view."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.user = create_user(client)
        self.token = client.post(
            "/sessions", json={"user_id": self.user["id"], "max_age_seconds": 3600}
        ).json()["token"]
        self.other_chat = create_chat(client, user_id=self.user["id"], title="Older")
        self.chat = create_chat(client, user_id=self.user["id"], title="Newer")
        self.turn = create_turn(client, user_id=self.user["id"], chat_id=self.chat["id"])
        finish_reply(client, user_id=self.user["id"], turn=self.turn)

    def page(self, etag: str | None = None, **params: Any) -> httpx.Response:
        headers = {"X-Session-Token": self.token}
        if etag is not None:
            headers["If-None-Match"] = etag
        return self.client.get(PAGE, params={"chat_id": self.chat["id"], **params}, headers=headers)

    def acting(self) -> dict[str, str]:
        return user_headers(self.user["id"])


@pytest.fixture
def reader(db_api_client: httpx.Client) -> Reader:
    return Reader(db_api_client)


def test_the_view_holds_the_user_their_chats_and_the_chat(reader: Reader) -> None:
    response = reader.page()
    assert response.status_code == 200, response.text
    view = PageView.model_validate_json(response.content)
    assert str(view.user.id) == reader.user["id"]
    assert [chat.title for chat in view.chats] == ["Newer", "Older"]
    assert view.chat is not None and [m.role for m in view.chat.messages] == ["user", "assistant"]
    # The same chat as GET /chats/{id} answers, field for field.
    direct = reader.client.get(f"/chats/{reader.chat['id']}", headers=reader.acting())
    assert response.json()["chat"] == direct.json()


def test_without_a_chat_id_the_view_lists_the_chats_only(reader: Reader) -> None:
    response = reader.client.get(PAGE, headers={"X-Session-Token": reader.token})
    assert response.status_code == 200
    assert response.json()["chat"] is None and len(response.json()["chats"]) == 2


def test_an_unchanged_page_answers_304_with_the_same_etag(reader: Reader) -> None:
    first = reader.page()
    etag = first.headers["ETag"]
    again = reader.page(etag)
    assert again.status_code == 304 and again.content == b""
    assert again.headers["ETag"] == etag
    # A weak form of the tag, or one of several, matches too.
    assert reader.page(f'"other", W/{etag}').status_code == 304
    assert reader.page('"some-other-state"').status_code == 200


def test_a_signed_out_session_is_404_even_with_a_matching_etag(reader: Reader) -> None:
    etag = reader.page().headers["ETag"]
    ended = reader.client.delete("/sessions/current", headers={"X-Session-Token": reader.token})
    assert ended.status_code == 204
    assert reader.page(etag).status_code == 404


def _add_message(reader: Reader) -> None:
    add_message(reader.client, user_id=reader.user["id"], chat_id=reader.chat["id"])


def _turn_then_partial_reply(reader: Reader) -> None:
    turn = create_turn(reader.client, user_id=reader.user["id"], chat_id=reader.chat["id"])
    reply = turn["reply"]
    reader.client.patch(
        f"/chats/{reply['chat_id']}/messages/{reply['id']}",
        json={"content": "Part"},
        headers=reader.acting(),
    ).raise_for_status()


def _edit_a_reply(reader: Reader) -> None:
    reply = reader.turn["reply"]
    reader.client.patch(
        f"/chats/{reader.chat['id']}/messages/{reply['id']}",
        json={"content": "Edited"},
        headers=reader.acting(),
    ).raise_for_status()


def _delete_messages_after(reader: Reader) -> None:
    first = reader.turn["user_message"]["id"]
    reader.client.delete(
        f"/chats/{reader.chat['id']}/messages",
        params={"after_id": first},
        headers=reader.acting(),
    ).raise_for_status()


def _rename(reader: Reader) -> None:
    reader.client.patch(
        f"/chats/{reader.chat['id']}", json={"title": "Renamed"}, headers=reader.acting()
    ).raise_for_status()


def _new_chat(reader: Reader) -> None:
    create_chat(reader.client, user_id=reader.user["id"])


def _delete_the_other_chat(reader: Reader) -> None:
    reader.client.delete(
        f"/chats/{reader.other_chat['id']}", headers=reader.acting()
    ).raise_for_status()


WRITES: dict[str, Callable[[Reader], None]] = {
    "add a message": _add_message,
    "start a turn and save part of its reply": _turn_then_partial_reply,
    "edit a reply": _edit_a_reply,
    "delete messages after one": _delete_messages_after,
    "rename the chat": _rename,
    "start another chat": _new_chat,
    "delete another chat": _delete_the_other_chat,
}


@pytest.mark.parametrize("write", WRITES.values(), ids=WRITES.keys())
def test_every_kind_of_write_changes_the_etag(
    reader: Reader, write: Callable[[Reader], None]
) -> None:
    before = reader.page()
    write(reader)
    after = reader.page(before.headers["ETag"])
    assert after.status_code == 200
    assert after.headers["ETag"] != before.headers["ETag"]
    assert after.json() != before.json()


def test_reads_and_other_users_writes_leave_the_etag_alone(
    reader: Reader, db_api_client: httpx.Client
) -> None:
    etag = reader.page().headers["ETag"]
    reader.client.get(f"/chats/{reader.chat['id']}", headers=reader.acting()).raise_for_status()
    reader.client.get("/chats/search", params={"q": "Newer"}, headers=reader.acting())
    someone = create_user(db_api_client)
    theirs = create_chat(db_api_client, user_id=someone["id"])
    add_message(db_api_client, user_id=someone["id"], chat_id=theirs["id"])
    assert reader.page(etag).status_code == 304

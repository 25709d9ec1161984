"""Sending the same form twice stores one message and starts one reply.

Every send form carries a hidden `request_id` made when the page was rendered; a
resend (a double click, a browser resubmitting, a retried request) finds what the
first submission stored and answers like it did. Runs on a dedicated chat-ui with
short replies (MAX_REPLY_TOKENS), against the real db-api and llama.cpp server.
"""

from __future__ import annotations

import asyncio
import html
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from chat_ui.db_client import DbClient
from chat_ui.errors import GenerationInProgress
from harness.chat_ui import ChatUiServer, running_chat_ui
from harness.db_api import DbApiServer
from harness.factories import auth_headers
from harness.forms import Browser, csrf_from, stored_chat, user_id_of
from harness.llama import LlamaServer
from tests.support.sse import JSON, read_until_done

REQUEST_ID_FIELD = re.compile(r'name="request_id" value="([^"]+)"')
BUSY = "Wait for the current reply to finish or stop it first."


@pytest.fixture(scope="module")
def short_chat_ui(db_api: DbApiServer, llama_server: LlamaServer) -> Iterator[ChatUiServer]:
    with running_chat_ui(db_api, llama_server.url, extra_env={"MAX_REPLY_TOKENS": "8"}) as server:
        yield server


@pytest.fixture
def user(short_chat_ui: ChatUiServer) -> Iterator[Browser]:
    browser = Browser(short_chat_ui.url)
    browser.sign_up()
    try:
        yield browser
    finally:
        browser.close()


def form_fields(page: str) -> dict[str, str]:
    """The send form's hidden fields, as the page rendered them."""
    match = REQUEST_ID_FIELD.search(page)
    assert match is not None, "no request_id field in the page"
    return {"csrf_token": csrf_from(page), "request_id": html.unescape(match.group(1))}


def twin(browser: Browser) -> httpx.Client:
    """A second connection with the same cookies: the other half of a double submit."""
    return httpx.Client(
        base_url=str(browser.http.base_url), cookies=browser.http.cookies, timeout=300.0
    )


def at_once(*posts: Callable[[], httpx.Response]) -> list[httpx.Response]:
    """Run the posts on their own threads, released at the same instant."""
    barrier = threading.Barrier(len(posts))

    def run(post: Callable[[], httpx.Response]) -> httpx.Response:
        barrier.wait(timeout=30)
        return post()

    with ThreadPoolExecutor(max_workers=len(posts)) as pool:
        return list(pool.map(run, posts))


def turns_of(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in messages if m["role"] == "user"]


def test_every_render_gets_its_own_request_id(user: Browser) -> None:
    chat_id = user.new_chat()
    ids = {form_fields(user.get(f"/chats/{chat_id}").text)["request_id"] for _ in range(3)}
    assert len(ids) == 3
    assert all(uuid.UUID(value).version == 4 for value in ids)


def test_a_resent_message_form_stores_one_turn(user: Browser, db_api: DbApiServer) -> None:
    chat_id = user.new_chat()
    form = {**form_fields(user.get(f"/chats/{chat_id}").text), "content": "Say hi."}
    first = user.http.post(f"/chats/{chat_id}/messages", data=form, follow_redirects=False)
    again = user.http.post(f"/chats/{chat_id}/messages", data=form, follow_redirects=False)
    assert (first.status_code, again.status_code) == (303, 303)
    assert again.headers["location"] == first.headers["location"] == f"/chats/{chat_id}#latest"
    # Script-style, too: the same reply, not a new one.
    replayed = user.http.post(f"/chats/{chat_id}/messages", data=form, headers=JSON)
    assert replayed.status_code == 202, replayed.text
    user.until_written(user.get(f"/chats/{chat_id}"))
    messages = stored_chat(db_api, user, chat_id)["messages"]
    assert [(m["role"], m["status"]) for m in messages] == [
        ("user", "complete"),
        ("assistant", "complete"),
    ]
    assert replayed.json()["reply_id"] == messages[1]["id"]
    assert replayed.json()["user_message_id"] == messages[0]["id"]


def test_a_form_submitted_twice_at_once_starts_one_reply(
    user: Browser, db_api: DbApiServer
) -> None:
    chat_id = user.new_chat()
    form = {**form_fields(user.get(f"/chats/{chat_id}").text), "content": "Say hello."}
    url = f"/chats/{chat_id}/messages"
    with twin(user) as other:
        plain, script = at_once(
            lambda: user.http.post(url, data=form, follow_redirects=False),
            lambda: other.post(url, data=form, headers=JSON),
        )
    assert plain.status_code == 303, plain.text
    assert plain.headers["location"] == f"/chats/{chat_id}#latest"
    assert script.status_code == 202, script.text
    read_until_done(user, script.json()["stream_url"])
    messages = stored_chat(db_api, user, chat_id)["messages"]
    assert turns_of(messages) == [("user", "Say hello.")]
    assert len(messages) == 2
    assert script.json()["reply_id"] == messages[1]["id"]


def test_a_new_chat_form_submitted_twice_makes_one_chat(user: Browser, db_api: DbApiServer) -> None:
    form = {**form_fields(user.get("/chats").text), "content": "Name a colour."}
    with twin(user) as other:
        responses = at_once(
            lambda: user.http.post("/chats", data=form, follow_redirects=False),
            lambda: other.post("/chats", data=form, follow_redirects=False),
        )
    assert [r.status_code for r in responses] == [303, 303], [r.text for r in responses]
    # Both answer like the first submission: after the reply, to the chat's latest message.
    (latest,) = {response.headers["location"] for response in responses}
    again = user.http.post("/chats", data=form, follow_redirects=False)
    assert again.status_code == 303
    assert again.headers["location"] == latest
    location = latest.removesuffix("#latest")

    chat_id = location.rsplit("/", 1)[1]
    chats = httpx.get(
        f"{db_api.url}/chats",
        headers=auth_headers(db_api.service_token, user_id_of(db_api, user)),
    ).json()
    assert [chat["id"] for chat in chats["items"]] == [chat_id]
    messages = stored_chat(db_api, user, chat_id)["messages"]
    # The question once, its reply once.
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[0]["content"] == "Name a colour."
    assert messages[0]["request_id"] == form["request_id"]


def test_a_failed_send_keeps_its_request_id_and_a_new_page_has_a_new_one(user: Browser) -> None:
    chat_id = user.new_chat()
    form = {**form_fields(user.get(f"/chats/{chat_id}").text), "content": "   "}
    refused = user.http.post(f"/chats/{chat_id}/messages", data=form)
    assert refused.status_code == 422
    # Sending the corrected text again is the same form: if the first had been stored
    # after all, it would be found instead of stored twice.
    assert form_fields(refused.text)["request_id"] == form["request_id"]
    assert form_fields(user.get(f"/chats/{chat_id}").text)["request_id"] != form["request_id"]


def test_different_forms_at_once_one_reply_and_a_clear_409(user: Browser) -> None:
    chat_id = user.new_chat()
    page = user.get(f"/chats/{chat_id}").text
    url = f"/chats/{chat_id}/messages"
    first = {**form_fields(page), "content": "First question"}
    second = {**first, "request_id": str(uuid.uuid4()), "content": "Second question"}
    with twin(user) as other:
        responses = at_once(
            lambda: user.http.post(url, data=first, headers=JSON),
            lambda: other.post(url, data=second, headers=JSON),
        )
    assert sorted(r.status_code for r in responses) == [202, 409], [r.text for r in responses]
    (refused,) = [r for r in responses if r.status_code == 409]
    assert refused.json() == {"error": BUSY}


def test_db_api_refusing_a_second_reply_is_shown_as_busy(db_api: DbApiServer) -> None:
    """What a replica sees when another replica's reply started in the same instant."""
    headers = auth_headers(db_api.service_token)
    with httpx.Client(base_url=db_api.url, headers=headers) as client:
        owner = client.post(
            "/users", json={"username": f"busy_{uuid.uuid4().hex[:12]}", "password": "x" * 12}
        ).json()["id"]
        chat = client.post("/chats", json={}, headers={"X-User-Id": owner}).json()["id"]
        started = client.post(
            f"/chats/{chat}/turns", json={"content": "First"}, headers={"X-User-Id": owner}
        )
        assert started.status_code == 201

    async def second_turn() -> None:
        db = DbClient(db_api.url, service_token=db_api.service_token)
        try:
            await db.create_turn(uuid.UUID(owner), uuid.UUID(chat), content="Second")
        finally:
            await db.aclose()

    with pytest.raises(GenerationInProgress):
        asyncio.run(second_turn())

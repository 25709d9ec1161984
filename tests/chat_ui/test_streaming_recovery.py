"""Replies the model could not see whole, and replies whose writer went away.

Real db-api and llama.cpp server; the only shortcut is running out a writer's lease
in PostgreSQL (`cut_off_writer`), instead of killing a process and waiting 10 s.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from harness.chat_ui import running_chat_ui, start_chat_ui
from harness.db_api import DbApiServer
from harness.factories import add_message, auth_headers
from harness.forms import Browser, chat_id_of, stored_chat, user_id_of
from harness.llama import LlamaServer
from harness.processes import free_port
from tests.support.db_api import cut_off_writer
from tests.support.questions import LONG_REPLY_QUESTION
from tests.support.sse import post_json, read_until_done, send_json

MARKER = "Earlier messages are beyond what the model can see."
# Hundreds of tokens: still being written when the service is told to stop.


@pytest.fixture(scope="module")
def chat_ui_with_small_budget(db_api: DbApiServer, llama_server: LlamaServer) -> Iterator[str]:
    """A chat-ui that leaves only ~150 prompt tokens (of 2048 per slot) for the history."""
    with running_chat_ui(
        db_api, llama_server.url, extra_env={"MAX_REPLY_TOKENS": "1900"}
    ) as server:
        yield server.url


def test_the_reply_records_where_the_models_view_began(
    signed_in: Browser, db_api: DbApiServer, chat_ui_with_small_budget: str
) -> None:
    chat_id = signed_in.new_chat()
    user_id = user_id_of(db_api, signed_in)
    with httpx.Client(base_url=db_api.url, headers=auth_headers(db_api.service_token)) as client:
        for index in range(6):
            add_message(client, user_id=user_id, chat_id=chat_id, content=f"Question {index}? " * 8)
            add_message(
                client,
                user_id=user_id,
                chat_id=chat_id,
                role="assistant",
                content=f"Answer number {index} is long enough. " * 4,
            )
    small = Browser(chat_ui_with_small_budget)
    small.http.cookies = signed_in.http.cookies
    try:
        answer = send_json(small, chat_id, "Reply with just one word: ok.")
        assert answer.status_code == 202, answer.text
        # Only the record of what the model saw matters here, not the whole reply.
        assert post_json(small, f"/chats/{chat_id}/stop").status_code == 204
        read_until_done(small, answer.json()["stream_url"])
    finally:
        small.close()

    messages = stored_chat(db_api, signed_in, chat_id)["messages"]
    reply = messages[-1]
    start_id = reply["context_start_id"]
    ids = [m["id"] for m in messages]
    assert start_id in ids[2:-1], "some, but not all, earlier messages were dropped"
    page = signed_in.get(f"/chats/{chat_id}").text
    assert page.count(MARKER) == 1
    marker_at = page.index(MARKER)
    assert marker_at < page.index(f'data-message-id="{start_id}"')
    assert marker_at > page.index(f'data-message-id="{ids[1]}"')


def test_an_abandoned_reply_is_shown_as_interrupted_and_can_be_retried(
    signed_in: Browser, db_api: DbApiServer
) -> None:
    chat_id = signed_in.new_chat()
    user_id = user_id_of(db_api, signed_in)
    with httpx.Client(base_url=db_api.url, headers=auth_headers(db_api.service_token)) as client:
        add_message(client, user_id=user_id, chat_id=chat_id, content="Reply with just: hi.")
        # A reply whose writer died (a crash, a restart) mid-way.
        orphan = add_message(
            client,
            user_id=user_id,
            chat_id=chat_id,
            role="assistant",
            content="Half",
            status="generating",
        )

    # While its writer holds the lease, it is live somewhere: a new message must wait.
    assert send_json(signed_in, chat_id, "Hello?").status_code == 409

    cut_off_writer(db_api, orphan["id"])
    page = signed_in.get(f"/chats/{chat_id}").text
    assert "The reply was interrupted" in page
    assert f'action="/chats/{chat_id}/retry"' in page
    assert 'http-equiv="refresh"' not in page

    stream_url = f"/chats/{chat_id}/messages/{orphan['id']}/stream"
    done = read_until_done(signed_in, stream_url)[-1]
    assert done[0] == "done" and done[1]["status"] == "error"
    assert stored_chat(db_api, signed_in, chat_id)["messages"][-1]["status"] == "error"

    retried = post_json(signed_in, f"/chats/{chat_id}/retry")
    assert retried.status_code == 202, retried.text
    assert read_until_done(signed_in, retried.json()["stream_url"])[-1][1]["status"] == "complete"


def test_a_reply_written_elsewhere_is_followed_from_the_database(
    signed_in: Browser, db_api: DbApiServer
) -> None:
    chat_id = signed_in.new_chat()
    user_id = user_id_of(db_api, signed_in)
    headers = auth_headers(db_api.service_token, user_id)
    with httpx.Client(base_url=db_api.url, headers=headers) as client:
        add_message(client, user_id=user_id, chat_id=chat_id, content="Hi")
        reply = add_message(
            client,
            user_id=user_id,
            chat_id=chat_id,
            role="assistant",
            content="",
            status="generating",
        )
        path = f"/chats/{chat_id}/messages/{reply['id']}"
        with signed_in.http.stream("GET", f"{path}/stream") as response:
            lines = response.iter_lines()
            first = next(line for line in lines if line.startswith("event:"))
            assert first == "event: update"
            # "Another replica" writes progress, then finishes.
            assert client.patch(path, json={"content": "Hello there"}).status_code == 200
            assert client.patch(path, json={"status": "complete"}).status_code == 200
            rest = "\n".join(lines)
    assert "Hello there" in rest
    assert re.search(r"event: done\ndata: \{\"status\":\"complete\"", rest)


def test_first_message_from_the_empty_state_streams(
    signed_in: Browser, db_api: DbApiServer
) -> None:
    answer = post_json(signed_in, "/chats", content="Reply with just one word: hello.")
    assert answer.status_code == 202
    page = signed_in.get(answer.json()["chat_url"])
    chat_id = chat_id_of(page)
    read_until_done(signed_in, answer.json()["stream_url"])
    assert stored_chat(db_api, signed_in, chat_id)["messages"][-1]["status"] == "complete"


def test_shutting_down_mid_reply_saves_the_text_as_stopped(
    db_api: DbApiServer, llama_server: LlamaServer
) -> None:
    """SIGTERM while a reply streams to an open page: the text so far is saved, not lost."""
    port = free_port()
    process = start_chat_ui(
        port=port,
        db_api_url=db_api.url,
        lm_api_url=llama_server.url,
        service_token=db_api.service_token,
    )
    browser = Browser(f"http://127.0.0.1:{port}")
    try:
        browser.sign_up()
        chat_id = chat_id_of(browser.submit("/chats"))
        answer = send_json(browser, chat_id, LONG_REPLY_QUESTION)
        assert answer.status_code == 202, answer.text
        with browser.http.stream("GET", answer.json()["stream_url"]) as stream:
            lines = stream.iter_lines()
            while '"tokens":0' in next(line for line in lines if line.startswith("data:")):
                pass
            # The page is still reading the stream when the service is told to stop.
            process.stop()
    finally:
        browser.close()
        process.stop()
    reply = stored_chat(db_api, browser, chat_id)["messages"][-1]
    # Stopped at shutdown; "complete" only if the model finished within the grace period.
    assert reply["status"] in {"stopped", "complete"}
    assert reply["content"].strip()

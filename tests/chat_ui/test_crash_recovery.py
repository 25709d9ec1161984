"""A chat-ui process killed without warning (kill -9: a crash, the OOM killer) mid-reply.

Real db-api, llama.cpp server and chat-ui processes; the killed one is restarted on the
same port, as a supervisor would, and the page carries on against it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from harness.chat_ui import ChatUiServer, start_chat_ui
from harness.db_api import DbApiServer
from harness.forms import Browser, chat_id_of, stored_chat
from harness.llama import LlamaServer
from harness.processes import ServiceProcess, free_port
from tests.support.questions import LONG_REPLY_QUESTION
from tests.support.sse import post_json, read_until_done, send_json, sse_events

# Hundreds of tokens: still being written when the process is killed.
SHORT_QUESTION = "Reply with just one word: hello."


@contextmanager
def own_chat_ui(
    db_api: DbApiServer, llama_server: LlamaServer, port: int
) -> Iterator[ServiceProcess]:
    process = start_chat_ui(
        port=port,
        db_api_url=db_api.url,
        lm_api_url=llama_server.url,
        service_token=db_api.service_token,
    )
    try:
        yield process
    finally:
        process.stop()


def _wait_for_saved_text(db_api: DbApiServer, browser: Browser, chat_id: str) -> str:
    """The reply's text once a progress save has stored some (every 2 s while it streams)."""
    while True:
        reply = stored_chat(db_api, browser, chat_id)["messages"][-1]
        if reply["content"].strip():
            content: str = reply["content"]
            return content
        time.sleep(0.2)


def test_a_reply_whose_process_was_killed_is_shown_interrupted_and_the_chat_is_free(
    db_api: DbApiServer, llama_server: LlamaServer
) -> None:
    port = free_port()
    browser = Browser(f"http://127.0.0.1:{port}")
    try:
        with own_chat_ui(db_api, llama_server, port) as process:
            browser.sign_up()
            # A sampled model is sometimes brief: ask again until a reply is still being
            # written once some of it was saved.
            for _attempt in range(3):
                chat_id = chat_id_of(browser.submit("/chats"))
                answer = send_json(browser, chat_id, LONG_REPLY_QUESTION)
                assert answer.status_code == 202, answer.text
                saved = _wait_for_saved_text(db_api, browser, chat_id)
                if stored_chat(db_api, browser, chat_id)["messages"][-1]["status"] == "generating":
                    break
            else:
                pytest.fail("the model never wrote a reply long enough to be cut off")
            process.kill()
            killed_at = time.monotonic()
        with own_chat_ui(db_api, llama_server, port):
            # The page picks the reply up again (EventSource reconnects to the new process).
            done = read_until_done(browser, answer.json()["stream_url"])[-1]
            shown_after = time.monotonic() - killed_at
            assert done[0] == "done"
            assert done[1]["status"] == "error"
            assert "interrupted" in done[1]["error"]
            assert done[1]["html"].strip()  # the text saved before the kill
            reply = stored_chat(db_api, browser, chat_id)["messages"][-1]
            assert reply["status"] == "error" and reply["content"].startswith(saved)
            page = browser.get(f"/chats/{chat_id}").text
            assert "The reply was interrupted" in page

            # A new message starts a reply at once: nobody had to press Stop.
            again = send_json(browser, chat_id, SHORT_QUESTION)
            assert again.status_code == 202, again.text
            assert read_until_done(browser, again.json()["stream_url"])[-1][1]["status"] == (
                "complete"
            )
        print(f"killed mid-reply: shown interrupted {shown_after:.1f} s after the kill")
    finally:
        browser.close()


def test_a_queued_reply_survives_the_loss_of_the_process_that_queued_it(
    db_api: DbApiServer, llama_server: LlamaServer, chat_ui: ChatUiServer
) -> None:
    # Other users' long replies take every slot of the model (2 in the test server).
    hogs: list[tuple[Browser, str]] = []
    port = free_port()
    browser = Browser(f"http://127.0.0.1:{port}")
    try:
        for _ in range(2):
            hog = Browser(chat_ui.url)
            hog.sign_up()
            for _attempt in range(3):  # until its reply is still being written
                hog_chat = chat_id_of(hog.submit("/chats"))
                assert send_json(hog, hog_chat, LONG_REPLY_QUESTION).status_code == 202
                _wait_for_saved_text(db_api, hog, hog_chat)
                reply = stored_chat(db_api, hog, hog_chat)["messages"][-1]
                if reply["status"] == "generating":
                    break
            hogs.append((hog, hog_chat))
        with own_chat_ui(db_api, llama_server, port) as process:
            browser.sign_up()
            chat_id = chat_id_of(browser.submit("/chats"))
            answer = send_json(browser, chat_id, SHORT_QUESTION)
            assert answer.status_code == 202, answer.text
            with browser.http.stream("GET", answer.json()["stream_url"]) as stream:
                events = sse_events(stream)
                first = next(events)
                if "position" not in first[1]:  # connected before its first turn at the queue
                    first = next(events)
            assert first[0] == "update" and first[1]["position"] == 1, first
            process.kill()
        for hog, hog_chat in hogs:
            assert post_json(hog, f"/chats/{hog_chat}/stop").status_code == 204
        with own_chat_ui(db_api, llama_server, port):
            # Taken over (by this process or the other one) and written in full.
            done = read_until_done(browser, answer.json()["stream_url"])[-1]
            assert done[1]["status"] == "complete", done
            reply = stored_chat(db_api, browser, chat_id)["messages"][-1]
            assert reply["status"] == "complete" and reply["content"].strip()
    finally:
        browser.close()
        for hog, _chat in hogs:
            hog.close()

"""Replies written server-side and streamed (SSE), against the real db-api and llama.cpp server.

A fake model server appears only to inject a fault the real one cannot produce
(a stream that breaks off mid-reply); it listens on loopback.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import markupsafe
import pytest

from chat_ui.context import ChatMessage
from chat_ui.lm_client import LmClient
from chat_ui.markdown import render_markdown
from harness.chat_ui import ChatUiServer, running_chat_ui
from harness.db_api import DbApiServer
from harness.forms import Browser, stored_chat, textarea_text
from harness.llama import LlamaServer
from tests.support.breaking_model import PARTIAL_TEXT, serve_breaking_model
from tests.support.sse import JSON, post_json, read_until_done, send_json, sse_events

SHORT_QUESTION = "Name three colours, one per line."
REPLY_ELSEWHERE = "Your reply in another chat is still being written."
# Long enough (dozens of tokens) to span several update intervals.
PARAGRAPH_QUESTION = "Write three sentences about the sea."
LONG_QUESTION = "Count from 1 to 300, one number per line."
# Generous: the slot is normally idle well within a second (printed by the test).
SLOT_IDLE_DEADLINE = 5.0


def text_of(html: str) -> str:
    return re.sub(r"<[^>]+>", "", html)


def slots_idle(llama_url: str) -> bool:
    slots = httpx.get(f"{llama_url}/slots", timeout=5).json()
    return all(not slot["is_processing"] for slot in slots)


def tokens_predicted_total(llama_url: str) -> float:
    metrics = httpx.get(f"{llama_url}/metrics", timeout=5).text
    match = re.search(r"^llamacpp:tokens_predicted_total\s+(\S+)$", metrics, re.MULTILINE)
    assert match is not None, metrics[:500]
    return float(match.group(1))


def wait_for_idle_slots(llama_url: str) -> float:
    """Seconds until every slot is idle; fails after SLOT_IDLE_DEADLINE."""
    started = time.monotonic()
    while time.monotonic() - started < SLOT_IDLE_DEADLINE:
        if slots_idle(llama_url):
            return time.monotonic() - started
        time.sleep(0.02)
    pytest.fail(f"llama.cpp slots still busy {SLOT_IDLE_DEADLINE} s after the stop")


def start_long_reply(browser: Browser, chat_id: str, *, min_tokens: int = 8) -> tuple[str, str]:
    """Send the long question; answer (stream URL, text so far) once some tokens arrived."""
    answer = send_json(browser, chat_id, LONG_QUESTION)
    assert answer.status_code == 202, answer.text
    stream_url = answer.json()["stream_url"]
    with browser.http.stream("GET", stream_url) as response:
        for event, data in sse_events(response):
            assert event == "update", data
            if data["tokens"] >= min_tokens:
                return stream_url, text_of(data["html"])
    pytest.fail("the stream ended before the reply grew")


# --- a second chat-ui whose model breaks off mid-reply ----------------------------------


@pytest.fixture(scope="module")
def breaking_model() -> Iterator[str]:
    with serve_breaking_model() as url:
        yield url


@pytest.fixture(scope="module")
def second_chat_ui(db_api: DbApiServer, breaking_model: str) -> Iterator[ChatUiServer]:
    """Another chat-ui process on the same db-api and session key; its model breaks off."""
    with running_chat_ui(db_api, breaking_model) as server:
        yield server


# --- tests -------------------------------------------------------------------------------


def test_stream_sends_updates_then_done_and_stores_the_streamed_text(
    signed_in: Browser, db_api: DbApiServer
) -> None:
    chat_id = signed_in.new_chat()
    answer = send_json(signed_in, chat_id, PARAGRAPH_QUESTION)
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["stream_url"] == f"/chats/{chat_id}/messages/{body['reply_id']}/stream"
    assert isinstance(body["user_message_id"], int)

    with signed_in.http.stream("GET", body["stream_url"]) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        events = []
        for event in sse_events(response):
            events.append(event)
            if event[0] == "done":
                break

    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "done" and set(kinds[:-1]) == {"update"}
    assert len([1 for kind, data in events if kind == "update" and data["tokens"] > 0]) >= 2
    tokens = [data["tokens"] for kind, data in events if kind == "update"]
    assert tokens == sorted(tokens)
    done = events[-1][1]
    assert done["status"] == "complete" and done["error"] is None

    chat = stored_chat(db_api, signed_in, chat_id)
    reply = chat["messages"][-1]
    assert (reply["id"], reply["status"], reply["context_start_id"]) == (
        body["reply_id"],
        "complete",
        None,
    )
    # What was streamed is what was stored (the page renders the stored text the same way).
    page = signed_in.get(f"/chats/{chat_id}").text
    assert done["html"] in page
    assert str(render_markdown(reply["content"])) == done["html"]


def test_a_second_stream_starts_from_the_text_so_far(signed_in: Browser) -> None:
    chat_id = signed_in.new_chat()
    stream_url, text_so_far = start_long_reply(signed_in, chat_id)
    with signed_in.http.stream("GET", stream_url) as response:
        kind, first = next(sse_events(response))
    assert kind == "update"
    assert first["tokens"] >= 8
    assert text_of(first["html"]).startswith(text_so_far.strip()[:5])
    assert post_json(signed_in, f"/chats/{chat_id}/stop").status_code == 204


def test_stop_frees_the_llama_slot_and_keeps_the_text(
    signed_in: Browser, db_api: DbApiServer, llama_server: LlamaServer
) -> None:
    chat_id = signed_in.new_chat()
    stream_url, _ = start_long_reply(signed_in, chat_id, min_tokens=10)
    assert not slots_idle(llama_server.url)

    stopped_at = time.monotonic()
    assert post_json(signed_in, f"/chats/{chat_id}/stop").status_code == 204
    idle_after = wait_for_idle_slots(llama_server.url)
    print(f"stop -> all llama.cpp slots idle: {(time.monotonic() - stopped_at) * 1000:.0f} ms")
    assert idle_after < 1.0 + 0.5  # "within ~1 s", with polling slack

    predicted = tokens_predicted_total(llama_server.url)
    time.sleep(0.5)
    assert tokens_predicted_total(llama_server.url) == predicted
    assert slots_idle(llama_server.url)

    events = read_until_done(signed_in, stream_url)
    assert events[-1][0] == "done" and events[-1][1]["status"] == "stopped"
    reply = stored_chat(db_api, signed_in, chat_id)["messages"][-1]
    assert reply["status"] == "stopped"
    assert reply["content"].strip()
    page = signed_in.get(f"/chats/{chat_id}").text
    assert "Stopped" in page


def test_a_second_reply_in_the_same_chat_waits(signed_in: Browser) -> None:
    chat_id = signed_in.new_chat()
    start_long_reply(signed_in, chat_id, min_tokens=1)
    refused = send_json(signed_in, chat_id, "And another thing")
    assert refused.status_code == 409
    assert refused.json() == {"error": "Wait for the current reply to finish or stop it first."}
    # Without script: the page comes back with the typed text kept.
    page = signed_in.submit(f"/chats/{chat_id}/messages", {"content": "And another thing"})
    assert page.status_code == 409
    assert "And another thing" in page.text
    # The page shows the stop button and refreshes itself while the reply is written.
    assert 'formaction="/chats/' in page.text and 'http-equiv="refresh"' in page.text
    # The reply is no live region (it changes many times a second); its end is announced.
    assert "Thinking…" in page.text and 'role="status" data-announcer' in page.text
    stop = signed_in.submit(f"/chats/{chat_id}/stop")
    assert stop.status_code == 200 and stop.url.path == f"/chats/{chat_id}"


def test_regenerate_and_edit_reply_again(signed_in: Browser, db_api: DbApiServer) -> None:
    chat_id = signed_in.new_chat()
    first = send_json(signed_in, chat_id, "Reply with just one word: hello.").json()
    read_until_done(signed_in, first["stream_url"])

    again = post_json(signed_in, f"/chats/{chat_id}/regenerate")
    assert again.status_code == 202, again.text
    assert read_until_done(signed_in, again.json()["stream_url"])[-1][1]["status"] == "complete"
    messages = stored_chat(db_api, signed_in, chat_id)["messages"]
    assert [(m["role"], m["status"]) for m in messages] == [
        ("user", "complete"),
        ("assistant", "complete"),
    ]

    edited = post_json(signed_in, f"/chats/{chat_id}/edit", content="Reply with just: goodbye.")
    assert edited.status_code == 202, edited.text
    assert read_until_done(signed_in, edited.json()["stream_url"])[-1][1]["status"] == "complete"
    messages = stored_chat(db_api, signed_in, chat_id)["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[0]["content"] == "Reply with just: goodbye."
    assert messages[1]["status"] == "complete" and messages[1]["content"].strip()

    # The plain-form version redirects to the chat, which refreshes itself until it is done.
    no_js = signed_in.http.post(
        f"/chats/{chat_id}/regenerate",
        data={"csrf_token": signed_in.csrf_token()},
        follow_redirects=False,
    )
    assert no_js.status_code == 303
    assert no_js.headers["location"] == f"/chats/{chat_id}#latest"
    signed_in.until_written(signed_in.get(f"/chats/{chat_id}"))
    assert stored_chat(db_api, signed_in, chat_id)["messages"][-1]["status"] == "complete"


def test_plain_form_send_redirects_at_once_to_a_page_that_refreshes_and_stops(
    signed_in: Browser, db_api: DbApiServer
) -> None:
    chat_id = signed_in.new_chat()
    response = signed_in.http.post(
        f"/chats/{chat_id}/messages",
        data={"csrf_token": signed_in.csrf_token(), "content": LONG_QUESTION},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/chats/{chat_id}#latest"
    # Back before the reply is written: the page refreshes itself and offers Stop.
    page = signed_in.get(f"/chats/{chat_id}")
    assert stored_chat(db_api, signed_in, chat_id)["messages"][-1]["status"] == "generating"
    # Each refresh names another URL than the page's: the same one with #latest would
    # only scroll.
    assert f'content="2; url=/chats/{chat_id}?refresh=1#latest"' in page.text
    again = signed_in.get(f"/chats/{chat_id}?refresh=1").text
    assert f'content="2; url=/chats/{chat_id}?refresh=2#latest"' in again
    assert f'formaction="/chats/{chat_id}/stop"' in page.text
    stopped = signed_in.submit(f"/chats/{chat_id}/stop", form_page=f"/chats/{chat_id}")
    assert stopped.status_code == 200 and stopped.url.path == f"/chats/{chat_id}"
    page = signed_in.until_written(stopped)
    assert "Stopped" in page.text
    assert stored_chat(db_api, signed_in, chat_id)["messages"][-1]["status"] == "stopped"


def test_plain_form_send_ends_on_the_written_reply(signed_in: Browser, db_api: DbApiServer) -> None:
    chat_id = signed_in.new_chat()
    sent = signed_in.submit(f"/chats/{chat_id}/messages", {"content": "Reply with just: hi."})
    page = signed_in.until_written(sent)
    reply = stored_chat(db_api, signed_in, chat_id)["messages"][-1]
    assert reply["status"] == "complete"
    first_word = reply["content"].split()[0].strip("*_`#.,!")
    assert str(markupsafe.escape(first_word)) in page.text


def test_new_chat_with_a_message_answers_its_url(signed_in: Browser, db_api: DbApiServer) -> None:
    answer = post_json(signed_in, "/chats", content=SHORT_QUESTION)
    assert answer.status_code == 202, answer.text
    chat_url = answer.json()["chat_url"]
    assert re.fullmatch(r"/chats/[0-9a-f-]{36}", chat_url)
    page = signed_in.get(chat_url).text
    assert answer.json()["stream_url"] in page or "message--complete" in page
    read_until_done(signed_in, answer.json()["stream_url"])
    chat = stored_chat(db_api, signed_in, chat_url.rsplit("/", 1)[1])
    assert chat["title"] == SHORT_QUESTION


def test_stop_through_another_replica_stops_the_owner(
    signed_in: Browser, second_chat_ui: ChatUiServer, db_api: DbApiServer, llama_server: LlamaServer
) -> None:
    chat_id = signed_in.new_chat()
    stream_url, _ = start_long_reply(signed_in, chat_id, min_tokens=5)
    other = Browser(
        http=httpx.Client(
            base_url=second_chat_ui.url, cookies=signed_in.http.cookies, follow_redirects=True
        )
    )
    following = threading.Event()

    def follow_on_the_other_replica() -> list[tuple[str, Any]]:
        """A tab on the second chat-ui, which follows the reply by polling db-api."""
        with other.http.stream("GET", stream_url, timeout=120) as response:
            events = []
            for event in sse_events(response):
                events.append(event)
                following.set()
                if event[0] == "done":
                    return events
        return events

    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            followed = pool.submit(follow_on_the_other_replica)
            assert following.wait(30)
            stop = other.http.post(
                f"/chats/{chat_id}/stop", data={"csrf_token": signed_in.csrf_token()}, headers=JSON
            )
            assert stop.status_code == 204
            # The stop answers once the owner has saved its last text: shown from here on.
            page = other.get(f"/chats/{chat_id}").text
            follower_done = followed.result(timeout=60)[-1]
    finally:
        other.close()
    # The owner sees the conflict on its next progress save and stops.
    owner_done = read_until_done(signed_in, stream_url)[-1]
    assert owner_done[1]["status"] == follower_done[1]["status"] == "stopped"
    idle_after = wait_for_idle_slots(llama_server.url)
    print(f"stop elsewhere -> all llama.cpp slots idle after the done event: {idle_after:.3f} s")
    reply = stored_chat(db_api, signed_in, chat_id)["messages"][-1]
    assert reply["status"] == "stopped" and reply["content"].strip()
    # Every view ends on the whole stored text, the other replica's too.
    stored_html = str(render_markdown(reply["content"]))
    assert owner_done[1]["html"] == follower_done[1]["html"] == stored_html
    assert stored_html in page


def test_one_reply_per_user_holds_across_replicas(
    signed_in: Browser, second_chat_ui: ChatUiServer, db_api: DbApiServer
) -> None:
    """A reply written through one chat-ui refuses the same user's send through another."""
    writing = signed_in.new_chat()
    other_chat = signed_in.new_chat()
    start_long_reply(signed_in, writing, min_tokens=1)
    other = Browser(
        http=httpx.Client(
            base_url=second_chat_ui.url, cookies=signed_in.http.cookies, follow_redirects=True
        )
    )
    try:
        refused = send_json(other, other_chat, "Meanwhile, a second question?")
        assert refused.status_code == 409
        assert refused.json()["error"].startswith(REPLY_ELSEWHERE)
        page = other.submit(
            f"/chats/{other_chat}/messages", {"content": "Meanwhile, a second question?"}
        )
        assert page.status_code == 409
        assert REPLY_ELSEWHERE in page.text
        assert textarea_text(page.text) == "Meanwhile, a second question?"
        assert stored_chat(db_api, signed_in, other_chat)["messages"] == []
    finally:
        other.close()
    assert post_json(signed_in, f"/chats/{writing}/stop").status_code == 204
    # The user's reply is over: the other chat takes the question now.
    sent = send_json(signed_in, other_chat, "Meanwhile, a second question?")
    assert sent.status_code == 202, sent.text
    assert post_json(signed_in, f"/chats/{other_chat}/stop").status_code == 204


@pytest.fixture
async def lm_client(llama_server: LlamaServer) -> Any:
    client = LmClient(llama_server.url, timeout_seconds=60)
    try:
        yield client
    finally:
        await client.aclose()


NASTY_TEXTS = [
    "plain ascii text with numbers 12345",
    "émoji 🎉🎉🎉 and flags 🇫🇷🇯🇵 and a family 👨‍👩‍👧‍👦",
    "中文字符和日本語のテキスト、한국어도",
    "combining a\u0301e\u0301i\u0301 and zero\u200bwidth and rtl \u202ehello",
    "<|im_start|>user\nfake special tokens<|im_end|>",
    "    lots\n\n\n   of\twhitespace   \n",
    "".join(chr(c) for c in range(0x20, 0x250)),
]


async def test_the_cheap_bound_is_never_below_the_real_token_count(lm_client: LmClient) -> None:
    bound = await lm_client.prompt_size_bound()
    for text in NASTY_TEXTS:
        messages: list[ChatMessage] = [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": text},
            {"role": "assistant", "content": text[::-1]},
            {"role": "user", "content": text * 3},
        ]
        exact = await lm_client.count_tokens(messages)
        assert bound(messages) >= exact, text


def test_a_stop_right_after_sending_leaves_the_chat_usable(
    signed_in: Browser, db_api: DbApiServer, llama_server: LlamaServer
) -> None:
    chat_id = signed_in.new_chat()
    first = send_json(signed_in, chat_id, LONG_QUESTION)
    assert first.status_code == 202, first.text
    assert post_json(signed_in, f"/chats/{chat_id}/stop").status_code == 204
    assert read_until_done(signed_in, first.json()["stream_url"])[-1][1]["status"] == "stopped"
    wait_for_idle_slots(llama_server.url)

    second = send_json(signed_in, chat_id, "Reply with just one word: hello.")
    assert second.status_code == 202, second.text
    events = read_until_done(signed_in, second.json()["stream_url"])
    assert events[-1][1]["status"] == "complete"
    assert stored_chat(db_api, signed_in, chat_id)["messages"][-1]["status"] == "complete"


def test_a_reply_waits_for_a_free_slot_when_the_model_is_busy(
    signed_in: Browser, llama_server: LlamaServer
) -> None:
    """With every slot busy the next reply waits in db-api's queue, and the page is told
    its place; it starts once a slot frees."""
    slots = httpx.get(f"{llama_server.url}/slots", timeout=5).json()
    # Other people's replies fill the slots (each person has one reply at a time).
    others = [Browser(str(signed_in.http.base_url)) for _ in slots]
    try:
        busy = []
        for other in others:
            other.sign_up()
            busy.append((other, other.new_chat()))
        for other, chat_id in busy:
            start_long_reply(other, chat_id, min_tokens=2)
        slots = httpx.get(f"{llama_server.url}/slots", timeout=5).json()
        assert all(slot["is_processing"] for slot in slots)

        queued_chat = signed_in.new_chat()
        answer = send_json(signed_in, queued_chat, SHORT_QUESTION)
        assert answer.status_code == 202, answer.text
        with signed_in.http.stream("GET", answer.json()["stream_url"]) as response:
            events = sse_events(response)
            first_kind, first = next(events)
            # Queued, not failed: the reply is generating, has no token yet, and is next.
            assert (first_kind, first["status"], first["tokens"]) == ("update", "generating", 0)
            if "position" not in first:  # connected before its first turn at the queue
                first_kind, first = next(events)
            assert (first_kind, first["tokens"], first["position"]) == ("update", 0, 1)
            # The page says so too, for a browser without script.
            page = signed_in.get(f"/chats/{queued_chat}").text
            assert "Queued, position 1: the model is writing other replies first…" in page
            for other, chat_id in busy:
                assert post_json(other, f"/chats/{chat_id}/stop").status_code == 204
            final = [data for kind, data in events if kind == "done"]
    finally:
        for other in others:
            other.close()
    assert final and final[0]["status"] == "complete", final
    assert text_of(final[0]["html"]).strip()


def test_a_model_that_hangs_mid_reply_times_out_and_keeps_the_partial_text(
    signed_in: Browser, db_api: DbApiServer
) -> None:
    """A silent model ends the reply as an error after LM_TIMEOUT_SECONDS, text kept."""
    with (
        serve_breaking_model(stall=True) as stalling_model,
        running_chat_ui(db_api, stalling_model, extra_env={"LM_TIMEOUT_SECONDS": "2"}) as hung_ui,
    ):
        hung = Browser(hung_ui.url)
        hung.http.cookies = signed_in.http.cookies
        try:
            chat_id = signed_in.new_chat()
            answer = send_json(hung, chat_id, SHORT_QUESTION)
            assert answer.status_code == 202, answer.text
            kind, done = read_until_done(hung, answer.json()["stream_url"])[-1]
        finally:
            hung.close()
    assert (kind, done["status"]) == ("done", "error")
    assert PARTIAL_TEXT in text_of(done["html"])
    reply = stored_chat(db_api, signed_in, chat_id)["messages"][-1]
    assert (reply["status"], reply["content"].strip()) == ("error", PARTIAL_TEXT)

"""db-api's per-user rate limits as a person meets them: when to try again, nothing lost.

The fake db-api limits like db-api once a test sets `reply_limit` or `chat_limit`; what
db-api itself counts (refills, replicas, rollbacks) is tested in tests/db_api.
"""

from __future__ import annotations

import html
import uuid

import httpx

from db_api.config import RateLimit
from harness.forms import Browser, textarea_text
from tests.support.inprocess import InProcessApp
from tests.support.sse import post_json, read_until_done, send_json

# A token a minute: a refusal right after the burst says to wait most of that minute.
ONE_A_MINUTE = 1
REPLIES_TOO_FAST = "You're asking for replies faster than this server allows."
CHATS_TOO_FAST = "You've started a lot of chats in a short time."


def _refused(response: httpx.Response, too_fast: str) -> None:
    """429 saying, in the page's words, the same wait as its Retry-After."""
    assert response.status_code == 429, response.text
    wait = int(response.headers["Retry-After"])
    assert 30 < wait <= 60
    assert response.json() == {"error": f"{too_fast} Try again in {wait} seconds."}


def _sent(browser: Browser, chat_id: str, content: str) -> None:
    answer = send_json(browser, chat_id, content)
    assert answer.status_code == 202, answer.text
    read_until_done(browser, answer.json()["stream_url"])


def test_sending_too_fast_says_when_and_keeps_the_text(
    signed_in: Browser, inprocess: InProcessApp
) -> None:
    inprocess.db.reply_limit = RateLimit(per_minute=ONE_A_MINUTE, burst=1)
    chat_id = signed_in.new_chat()
    _sent(signed_in, chat_id, "Say hi.")
    before = inprocess.stored_chat(signed_in, chat_id)

    _refused(send_json(signed_in, chat_id, "And again?"), REPLIES_TOO_FAST)
    # Without JavaScript: the page again, saying so, with the text and its request id.
    request_id = str(uuid.uuid4())
    form = {"content": "And again?", "request_id": request_id}
    page = signed_in.submit(f"/chats/{chat_id}/messages", form)
    assert page.status_code == 429
    wait = page.headers["Retry-After"]
    assert f"{REPLIES_TOO_FAST} Try again in {wait} seconds." in html.unescape(page.text)
    assert textarea_text(page.text) == "And again?"
    assert f'name="request_id" value="{request_id}"' in page.text
    assert inprocess.stored_chat(signed_in, chat_id) == before


def test_retry_regenerate_and_edit_too_fast_change_nothing(
    signed_in: Browser, inprocess: InProcessApp
) -> None:
    inprocess.db.reply_limit = RateLimit(per_minute=ONE_A_MINUTE, burst=2)
    failed_chat, done_chat = signed_in.new_chat(), signed_in.new_chat()
    inprocess.model.stream_failure, inprocess.model.tokens_before_failure = "break", 1
    _sent(signed_in, failed_chat, "Say hi.")
    inprocess.model.stream_failure = None
    _sent(signed_in, done_chat, "Say hello.")
    before = inprocess.everything_stored(signed_in)

    _refused(post_json(signed_in, f"/chats/{failed_chat}/retry"), REPLIES_TOO_FAST)
    _refused(post_json(signed_in, f"/chats/{done_chat}/regenerate"), REPLIES_TOO_FAST)
    edit = post_json(signed_in, f"/chats/{done_chat}/edit", content="Say goodbye.")
    _refused(edit, REPLIES_TOO_FAST)
    # Without JavaScript: back on the chat, which says so.
    page = signed_in.submit(f"/chats/{done_chat}/regenerate")
    assert page.status_code == 200 and page.url.path == f"/chats/{done_chat}"
    assert REPLIES_TOO_FAST in html.unescape(page.text)
    assert inprocess.everything_stored(signed_in) == before


def test_starting_chats_too_fast_says_when_and_keeps_the_text(
    signed_in: Browser, inprocess: InProcessApp
) -> None:
    inprocess.db.chat_limit = RateLimit(per_minute=ONE_A_MINUTE, burst=1)
    first = post_json(signed_in, "/chats", content="Say hi.")
    assert first.status_code == 202, first.text
    read_until_done(signed_in, first.json()["stream_url"])
    before = inprocess.everything_stored(signed_in)

    _refused(post_json(signed_in, "/chats", content="A new topic?"), CHATS_TOO_FAST)
    page = signed_in.submit("/chats", {"content": "A new topic?"})
    assert page.status_code == 429
    wait = page.headers["Retry-After"]
    assert f"{CHATS_TOO_FAST} Try again in {wait} seconds." in html.unescape(page.text)
    assert textarea_text(page.text) == "A new topic?"
    assert inprocess.everything_stored(signed_in) == before


def test_a_new_chat_whose_question_is_refused_leaves_no_chat(
    signed_in: Browser, inprocess: InProcessApp
) -> None:
    """The chat was allowed, its first reply was not: no chat of only a greeting stays."""
    inprocess.db.reply_limit = RateLimit(per_minute=ONE_A_MINUTE, burst=1)
    _sent(signed_in, signed_in.new_chat(), "Say hi.")
    before = inprocess.everything_stored(signed_in)

    _refused(post_json(signed_in, "/chats", content="A new topic?"), REPLIES_TOO_FAST)
    page = signed_in.submit("/chats", {"content": "A new topic?"})
    assert page.status_code == 429
    assert textarea_text(page.text) == "A new topic?"
    assert inprocess.everything_stored(signed_in) == before


def test_a_refused_regenerate_keeps_every_reply_after_the_question(
    signed_in: Browser, inprocess: InProcessApp
) -> None:
    inprocess.db.reply_limit = RateLimit(per_minute=ONE_A_MINUTE, burst=1)
    chat_id = signed_in.new_chat()
    _sent(signed_in, chat_id, "Say hi.")
    # A second reply to the same question (another client's): regenerate replaces both.
    inprocess.call(
        inprocess.db.add_message,
        inprocess.user_id(signed_in),
        chat_id,
        role="assistant",
        content="Another reply.",
        status="complete",
    )
    before = inprocess.stored_chat(signed_in, chat_id)
    assert len(before["messages"]) == 3

    _refused(post_json(signed_in, f"/chats/{chat_id}/regenerate"), REPLIES_TOO_FAST)
    assert inprocess.stored_chat(signed_in, chat_id) == before

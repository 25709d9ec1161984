"""db-api's per-user rate limits through the real chat-ui: what a person sees, and what is kept.

A db-api of its own with one reply and two chats per user at once (then one a
minute), and a chat-ui with short replies on the session's model.
"""

from __future__ import annotations

import html
from collections.abc import Iterator

import httpx
import pytest

from harness.chat_ui import ChatUiServer, running_chat_ui
from harness.db_api import DbApiServer, running_db_api
from harness.factories import user_headers
from harness.forms import Browser, stored_chat, textarea_text, user_id_of
from harness.llama import LlamaServer
from harness.postgres import PostgresCluster
from tests.support.sse import post_json, read_until_done, send_json

LIMITS = {
    "REPLY_BURST": "1",
    "REPLIES_PER_MINUTE": "1",
    "CHAT_BURST": "2",
    "CHATS_PER_MINUTE": "1",
}
REPLIES_TOO_FAST = "You're asking for replies faster than this server allows. Try again in"
CHATS_TOO_FAST = "You've started a lot of chats in a short time. Try again in"


@pytest.fixture(scope="module")
def limited(
    postgres: PostgresCluster, llama_server: LlamaServer
) -> Iterator[tuple[DbApiServer, ChatUiServer]]:
    with (
        running_db_api(postgres, database="db_api_limited_ui", extra_env=LIMITS) as db_api,
        running_chat_ui(db_api, llama_server.url, extra_env={"MAX_REPLY_TOKENS": "8"}) as ui,
    ):
        yield db_api, ui


@pytest.fixture
def hasty(limited: tuple[DbApiServer, ChatUiServer]) -> Iterator[Browser]:
    browser = Browser(limited[1].url)
    try:
        browser.sign_up()
        yield browser
    finally:
        browser.close()


def _chat_count(db_api: DbApiServer, browser: Browser) -> int:
    response = httpx.get(
        f"{db_api.url}/chats",
        headers={
            "Authorization": f"Bearer {db_api.service_token}",
            **user_headers(user_id_of(db_api, browser)),
        },
    )
    total: int = response.json()["total"]
    return total


def test_a_second_reply_at_once_is_refused_with_the_text_kept(
    limited: tuple[DbApiServer, ChatUiServer], hasty: Browser
) -> None:
    db_api, _ui = limited
    chat_id = hasty.new_chat()
    sent = send_json(hasty, chat_id, "Reply with just one word: hello.")
    assert sent.status_code == 202, sent.text
    read_until_done(hasty, sent.json()["stream_url"])
    before = stored_chat(db_api, hasty, chat_id)

    refused = send_json(hasty, chat_id, "And once more?")
    assert refused.status_code == 429
    wait = int(refused.headers["Retry-After"])
    assert 1 <= wait <= 60
    assert refused.json()["error"] == f"{REPLIES_TOO_FAST} {wait} seconds."
    page = hasty.submit(f"/chats/{chat_id}/messages", {"content": "And once more?"})
    assert page.status_code == 429 and "Retry-After" in page.headers
    assert REPLIES_TOO_FAST in html.unescape(page.text)
    assert textarea_text(page.text) == "And once more?"
    regenerated = post_json(hasty, f"/chats/{chat_id}/regenerate")
    assert regenerated.status_code == 429
    assert stored_chat(db_api, hasty, chat_id) == before


def test_a_third_chat_at_once_is_refused_with_the_text_kept(
    limited: tuple[DbApiServer, ChatUiServer], hasty: Browser
) -> None:
    db_api, _ui = limited
    hasty.new_chat()
    hasty.new_chat()

    page = hasty.submit("/chats", {"content": "A third topic?"})
    assert page.status_code == 429 and "Retry-After" in page.headers
    assert CHATS_TOO_FAST in html.unescape(page.text)
    assert textarea_text(page.text) == "A third topic?"
    assert _chat_count(db_api, hasty) == 2

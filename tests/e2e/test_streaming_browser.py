"""Streaming replies in headless Chromium, through nginx: growth, stop, resume, keys, failure."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from harness.chat_ui import ChatUiServer, running_chat_ui
from harness.db_api import DbApiServer, running_db_api
from harness.factories import unique_username
from harness.llama import LlamaServer
from harness.nginx import NginxServer, start_nginx
from harness.postgres import PostgresCluster
from harness.processes import free_port
from native.stack import UNLIMITED
from tests.support.breaking_model import PARTIAL_TEXT, serve_breaking_model
from tests.support.browser import BrowserTab, OpenTab, save_screenshot
from tests.support.pages import chat_url, latest_reply, new_chat, send, sign_in, sign_up
from tests.support.questions import LONG_REPLY_QUESTION

LONG_QUESTION = "Count from 1 to 300, one number per line."
# Prose: a count sometimes comes back as three numbers, too short to see it grow.
MEDIUM_QUESTION = "Write a short story about a lighthouse keeper."
# Prose fills lines whatever layout the model picks (a count may come as one line).
WINDOW_HEIGHT = 400
# Polling the page, not timing it: each look is this far apart, up to the deadline.
LOOK_EVERY_MS = 100


@pytest.fixture(scope="module")
def breaking_chat_ui(db_api: DbApiServer) -> Iterator[str]:
    """A chat-ui on the same db-api and session key whose model breaks off mid-reply.

    Cookies do not depend on the port, so a tab signed in through nginx is signed in here.
    """
    with serve_breaking_model() as model_url, running_chat_ui(db_api, model_url) as server:
        yield server.url


class ReplyEndedEarlyError(AssertionError):
    """The model finished before the reply was as long as the test needs."""


def still_generating(reply: Locator) -> None:
    status = reply.get_attribute("data-status")
    if status != "generating":
        raise ReplyEndedEarlyError(
            f"the reply ended early ({status}): {reply.inner_text()[:200]!r}"
        )


def wait_for_text(page: Page, reply: Locator, *, at_least: int = 1) -> str:
    expect(reply.locator(".message__content")).not_to_be_empty()
    text = reply.locator(".message__content").inner_text()
    while len(text) < at_least:
        still_generating(reply)
        page.wait_for_timeout(LOOK_EVERY_MS)
        text = reply.locator(".message__content").inner_text()
    return text


def wait_until_taller_than(page: Page, reply: Locator, height: float) -> None:
    while (box := reply.bounding_box()) is None or box["height"] < height:
        still_generating(reply)
        page.wait_for_timeout(LOOK_EVERY_MS)


def signed_in_tab(open_tab: OpenTab, nginx: NginxServer) -> tuple[BrowserTab, str]:
    tab = open_tab()
    username = unique_username("stream")
    sign_up(tab.page, nginx.url, username)
    return tab, username


def test_reply_streams_in_with_send_disabled_then_focus_returns(
    nginx: NginxServer, open_tab: OpenTab
) -> None:
    tab, _ = signed_in_tab(open_tab, nginx)
    page = tab.page
    new_chat(page, nginx.url)
    save_screenshot(page, "empty-chat")
    reply = send(page, MEDIUM_QUESTION)
    # "Thinking…" shows until the first token, which may already have come: not asserted
    # here (a race), but the page renders it for a reply in progress (integration tests).
    expect(page.get_by_role("button", name="Send")).to_be_disabled()
    expect(page.get_by_role("button", name="Stop")).to_be_visible()

    # The bubble's text must be seen growing before the reply is done.
    seen: list[int] = []
    while reply.get_attribute("data-status") == "generating":
        length = len(reply.locator(".message__content").inner_text())
        if length and (not seen or length > seen[-1]):
            seen.append(length)
            if len(seen) == 2:
                save_screenshot(page, "streaming")
        page.wait_for_timeout(LOOK_EVERY_MS)
    assert len(seen) >= 2, f"the reply did not grow while streaming: {seen}"

    expect(reply).to_have_attribute("data-status", "complete")
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    expect(page.get_by_role("textbox", name="Message")).to_be_focused()
    expect(page.get_by_role("button", name="Regenerate")).to_be_visible()
    # The chat is named after its first message, in the header and the sidebar.
    expect(page.locator(".conversation__title")).to_have_text(MEDIUM_QUESTION)
    expect(page.locator("a[aria-current=page] .chat-list__title")).to_have_text(MEDIUM_QUESTION)
    assert tab.script_errors == []


def test_escape_and_the_stop_button_stop_the_reply(nginx: NginxServer, open_tab: OpenTab) -> None:
    tab, _ = signed_in_tab(open_tab, nginx)
    page = tab.page
    new_chat(page, nginx.url)

    wait_for_text(page, send(page, LONG_QUESTION), at_least=10)
    page.keyboard.press("Escape")
    expect(latest_reply(page)).to_have_attribute("data-status", "stopped")
    expect(latest_reply(page).get_by_text("Stopped", exact=True)).to_be_visible()
    save_screenshot(page, "stopped")

    wait_for_text(page, send(page, LONG_QUESTION), at_least=10)
    page.get_by_role("button", name="Stop").click()
    expect(latest_reply(page)).to_have_attribute("data-status", "stopped")
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    # Reloaded, the stopped reply keeps its text and its mark.
    page.reload()
    expect(latest_reply(page).get_by_text("Stopped", exact=True)).to_be_visible()
    assert latest_reply(page).locator(".message__content").inner_text().strip()
    assert tab.script_errors == []


def test_reload_resumes_and_a_second_tab_sees_the_same_reply(
    nginx: NginxServer, open_tab: OpenTab
) -> None:
    tab, username = signed_in_tab(open_tab, nginx)
    page = tab.page
    new_chat(page, nginx.url)
    before = wait_for_text(page, send(page, LONG_QUESTION), at_least=5)
    address = chat_url(page)

    page.reload()
    # Resumed: the text so far comes first, then it keeps growing.
    resumed = wait_for_text(page, latest_reply(page), at_least=len(before))
    assert resumed.startswith(before[:5])
    wait_for_text(page, latest_reply(page), at_least=len(resumed) + 1)

    second = open_tab()
    sign_in(second.page, nginx.url, username)
    second.page.goto(address)
    other_view = wait_for_text(second.page, latest_reply(second.page), at_least=len(resumed))
    assert other_view.startswith(before[:5])
    expect(second.page.get_by_role("button", name="Stop")).to_be_visible()

    # Stopped in the second tab; the first tab's stream ends too.
    second.page.get_by_role("button", name="Stop").click()
    expect(latest_reply(page)).to_have_attribute("data-status", "stopped")
    expect(latest_reply(second.page)).to_have_attribute("data-status", "stopped")
    assert tab.script_errors == [] and second.script_errors == []


def test_enter_sends_and_shift_enter_adds_a_line(nginx: NginxServer, open_tab: OpenTab) -> None:
    tab, _ = signed_in_tab(open_tab, nginx)
    page = tab.page
    new_chat(page, nginx.url)
    box = page.get_by_role("textbox", name="Message")
    box.click()
    page.keyboard.type("Reply with just one word:")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("hello.")
    assert box.input_value() == "Reply with just one word:\nhello."
    page.keyboard.press("Enter")
    expect(page.locator(".message--user").last).to_contain_text("hello.")
    expect(box).to_have_value("")
    expect(latest_reply(page)).to_have_attribute("data-status", "complete")
    assert tab.script_errors == []


def test_model_failure_shows_the_error_keeps_the_text_and_offers_retry(
    nginx: NginxServer, open_tab: OpenTab, breaking_chat_ui: str
) -> None:
    tab, _ = signed_in_tab(open_tab, nginx)
    page = tab.page
    page.goto(f"{breaking_chat_ui}/chats")
    reply = send(page, "Tell me a story.")
    expect(reply).to_have_attribute("data-status", "error")
    expect(reply.locator(".message__content")).to_contain_text(PARTIAL_TEXT)
    expect(reply.get_by_role("alert")).to_contain_text("stopped answering")
    expect(page.get_by_role("button", name="Retry")).to_be_visible()
    save_screenshot(page, "error")

    # Back through nginx (the real model), Retry answers the same message.
    page.goto(chat_url(page).replace(breaking_chat_ui, nginx.url))
    page.get_by_role("button", name="Retry").click()
    expect(latest_reply(page)).to_have_attribute("data-status", "complete")
    assert PARTIAL_TEXT not in latest_reply(page).inner_text()
    assert tab.script_errors == []


def test_stopping_before_the_first_token_leaves_the_chat_usable(
    nginx: NginxServer, open_tab: OpenTab
) -> None:
    tab, _ = signed_in_tab(open_tab, nginx)
    page = tab.page
    new_chat(page, nginx.url)
    first = send(page, LONG_QUESTION)
    expect(page.get_by_role("button", name="Stop")).to_be_visible()
    page.keyboard.press("Escape")
    expect(first).to_have_attribute("data-status", "stopped")

    second = send(page, "Reply with just one word: hello.")
    expect(second).to_have_attribute("data-status", "complete")
    assert second.locator(".message__content").inner_text().strip()
    assert tab.script_errors == []


def test_scrolling_up_pauses_auto_scroll_and_the_bottom_resumes_it(
    nginx: NginxServer, open_tab: OpenTab
) -> None:
    tab = open_tab(height=WINDOW_HEIGHT)
    page = tab.page
    sign_up(page, nginx.url, unique_username("scroll"))
    # A sampled model is sometimes brief; the behaviour needs a long reply, so ask again.
    endings = []
    for _ in range(3):
        new_chat(page, nginx.url)
        try:
            check_scrolling_while_a_reply_streams(page)
            break
        except ReplyEndedEarlyError as ended:
            endings.append(str(ended))
            # One reply at a time per person: the next try waits until this one is over.
            page.keyboard.press("Escape")
            expect(page.locator('.message--assistant[data-status="generating"]')).to_have_count(0)
    else:
        pytest.fail(f"the model never wrote a reply long enough to scroll: {endings}")
    assert tab.script_errors == []


def check_scrolling_while_a_reply_streams(page: Page) -> None:
    reply = send(page, LONG_REPLY_QUESTION)
    question = page.locator(".message--user").last
    # Taller than the window: following the reply has to scroll the question away.
    wait_until_taller_than(page, reply, WINDOW_HEIGHT + 150)
    expect(question).not_to_be_in_viewport()

    page.mouse.move(400, 240)
    page.mouse.wheel(0, -5000)
    expect(question).to_be_in_viewport()
    wait_for_text(page, reply, at_least=len(reply.inner_text()) + 40)
    # New text arrived, yet the view stayed where the reader put it.
    expect(question).to_be_in_viewport()

    page.mouse.wheel(0, 50_000)
    wait_for_text(page, reply, at_least=len(reply.inner_text()) + 40)
    expect(question).not_to_be_in_viewport()
    expect(page.get_by_role("button", name="Send")).to_be_disabled()
    page.keyboard.press("Escape")
    expect(reply).to_have_attribute("data-status", "stopped")


def test_a_send_refused_by_nginx_keeps_the_text_and_says_why(
    nginx: NginxServer, open_tab: OpenTab, chat_ui: ChatUiServer, tmp_path: Path
) -> None:
    """Over the per-address request limit, nginx answers 429 before chat-ui sees anything."""
    tab, _ = signed_in_tab(open_tab, nginx)
    page = tab.page
    port = free_port()
    limited = start_nginx(
        config_dir=tmp_path,
        chat_ui_upstream=chat_ui.url.removeprefix("http://"),
        port=port,
        limits=replace(UNLIMITED, REQUESTS_PER_SECOND=1, REQUEST_BURST=3),
    )
    try:
        # Cookies do not depend on the port: the tab is signed in there too.
        page.goto(f"http://127.0.0.1:{port}/chats")
        # Use up the address's burst, as a busy household might.
        page.evaluate("Promise.all([1, 2, 3, 4, 5, 6].map(() => fetch('/login')))")
        page.get_by_role("textbox", name="Message").fill("Will this get through?")
        page.get_by_role("button", name="Send").click()
        expect(page.get_by_role("alert")).to_contain_text("Too many requests")
        expect(page.get_by_role("textbox", name="Message")).to_have_value("Will this get through?")
        expect(page.get_by_role("button", name="Send")).to_be_enabled()
        # Chromium logs each refused request; nothing else went wrong in the page.
        assert [error for error in tab.script_errors if "(Too Many Requests)" not in error] == []
    finally:
        limited.stop()


@pytest.fixture(scope="module")
def reply_limited_url(
    postgres: PostgresCluster, llama_server: LlamaServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """nginx in front of a chat-ui whose db-api lets each user start one reply a minute."""
    limits = {"REPLY_BURST": "1", "REPLIES_PER_MINUTE": "1"}
    with (
        running_db_api(postgres, database="e2e_reply_limits", extra_env=limits) as db_api,
        running_chat_ui(db_api, llama_server.url, extra_env={"MAX_REPLY_TOKENS": "8"}) as ui,
    ):
        port = free_port()
        proxy = start_nginx(
            config_dir=tmp_path_factory.mktemp("reply-limited-nginx"),
            chat_ui_upstream=ui.url.removeprefix("http://"),
            port=port,
        )
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            proxy.stop()


def test_a_send_over_the_users_reply_limit_says_when_and_keeps_the_text(
    reply_limited_url: str, open_tab: OpenTab
) -> None:
    tab = open_tab()
    page = tab.page
    sign_up(page, reply_limited_url, unique_username("hasty"))
    new_chat(page, reply_limited_url)
    expect(send(page, "Reply with just one word: hello.")).to_have_attribute(
        "data-status", "complete"
    )

    page.get_by_role("textbox", name="Message").fill("And once more, please?")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_role("alert")).to_contain_text(
        re.compile(r"faster than this server allows\. Try again in \d+ seconds?\.")
    )
    expect(page.get_by_role("textbox", name="Message")).to_have_value("And once more, please?")
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    expect(page.locator(".message--user")).to_have_count(1)
    # Chromium logs the refused request; nothing else went wrong in the page.
    assert [error for error in tab.script_errors if "(Too Many Requests)" not in error] == []

"""Streaming replies in headless Chromium, through nginx: growth, stop, resume, keys, failure."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.support.breaking_model import PARTIAL_TEXT, serve_breaking_model
from tests.support.browser import BrowserTab, OpenTab, save_screenshot
from tests.support.chat_ui import start_chat_ui
from tests.support.db_api import DbApiServer
from tests.support.factories import unique_username
from tests.support.nginx import NginxServer
from tests.support.processes import free_port

PASSWORD = "correct horse battery staple"
LONG_QUESTION = "Count from 1 to 300, one number per line."
MEDIUM_QUESTION = "Count from 1 to 30, one number per line."
# Polling the page, not timing it: each look is this far apart, up to the deadline.
LOOK_EVERY_MS = 100


@pytest.fixture(scope="module")
def breaking_chat_ui(db_api: DbApiServer) -> Iterator[str]:
    """A chat-ui on the same db-api and session key whose model breaks off mid-reply.

    Cookies do not depend on the port, so a tab signed in through nginx is signed in here.
    """
    with serve_breaking_model() as model_url:
        port = free_port()
        process = start_chat_ui(
            port=port,
            db_api_url=db_api.url,
            lm_api_url=model_url,
            service_token=db_api.service_token,
        )
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            process.stop()


def sign_up(page: Page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/signup")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Repeat password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page).to_have_url(re.compile(r"/chats"))


def sign_in(page: Page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/chats"))


def new_chat(page: Page, base_url: str) -> str:
    page.goto(f"{base_url}/chats")
    page.get_by_role("button", name="New chat").click()
    expect(page).to_have_url(re.compile(r"/chats/[0-9a-f-]{36}"))
    return page.url.split("#")[0]


def send(page: Page, text: str) -> Locator:
    """Send `text`; answers the reply's bubble (not whichever reply happens to be last)."""
    replies = page.locator(".message--assistant")
    before = replies.count()
    page.get_by_role("textbox", name="Message").fill(text)
    page.get_by_role("button", name="Send").click()
    return replies.nth(before)


def latest_reply(page: Page) -> Locator:
    return page.locator(".message--assistant").last


def wait_for_text(page: Page, reply: Locator, *, at_least: int = 1) -> str:
    expect(reply.locator(".message__content")).not_to_be_empty()
    text = reply.locator(".message__content").inner_text()
    while len(text) < at_least:
        page.wait_for_timeout(LOOK_EVERY_MS)
        text = reply.locator(".message__content").inner_text()
    return text


def wait_until_taller_than(page: Page, reply: Locator, height: float) -> None:
    while (box := reply.bounding_box()) is None or box["height"] < height:
        assert reply.get_attribute("data-status") == "generating", "the reply ended too soon"
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
    chat_url = new_chat(page, nginx.url)
    before = wait_for_text(page, send(page, LONG_QUESTION), at_least=5)

    page.reload()
    # Resumed: the text so far comes first, then it keeps growing.
    resumed = wait_for_text(page, latest_reply(page), at_least=len(before))
    assert resumed.startswith(before[:5])
    wait_for_text(page, latest_reply(page), at_least=len(resumed) + 1)

    second = open_tab()
    sign_in(second.page, nginx.url, username)
    second.page.goto(chat_url)
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
    chat_url = new_chat(page, nginx.url)
    page.goto(chat_url.replace(nginx.url, breaking_chat_ui))
    reply = send(page, "Tell me a story.")
    expect(reply).to_have_attribute("data-status", "error")
    expect(reply.locator(".message__content")).to_contain_text(PARTIAL_TEXT)
    expect(reply.get_by_role("alert")).to_contain_text("stopped answering")
    expect(page.get_by_role("button", name="Retry")).to_be_visible()
    save_screenshot(page, "error")

    # Back through nginx (the real model), Retry answers the same message.
    page.goto(chat_url)
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
    tab = open_tab(height=480)
    page = tab.page
    sign_up(page, nginx.url, unique_username("scroll"))
    new_chat(page, nginx.url)
    reply = send(page, LONG_QUESTION)
    question = page.locator(".message--user").last
    # Twice the window's height: following the reply has to scroll the question away.
    wait_until_taller_than(page, reply, 2 * 480)
    expect(question).not_to_be_in_viewport()

    page.mouse.move(400, 240)
    page.mouse.wheel(0, -5000)
    expect(question).to_be_in_viewport()
    grown = wait_for_text(page, reply, at_least=len(reply.inner_text()) + 40)
    # New text arrived, yet the view stayed where the reader put it.
    assert grown
    expect(question).to_be_in_viewport()

    page.mouse.wheel(0, 50_000)
    wait_for_text(page, reply, at_least=len(reply.inner_text()) + 40)
    expect(question).not_to_be_in_viewport()
    expect(page.get_by_role("button", name="Send")).to_be_disabled()
    page.keyboard.press("Escape")
    expect(reply).to_have_attribute("data-status", "stopped")
    assert tab.script_errors == []

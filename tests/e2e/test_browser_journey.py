"""The whole stack through nginx, driven by headless Chromium like a person would."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from harness.factories import unique_username
from harness.nginx import NginxServer
from tests.support.browser import OpenTab, save_screenshot
from tests.support.pages import chat_url, new_chat, send, sign_in, sign_up

QUESTION = "What is the capital of France? Answer in one short sentence."


def send_message(page: Page, text: str) -> None:
    page.get_by_role("textbox", name="Message").fill(text)
    page.get_by_role("button", name="Send").click()


def assistant_messages(page: Page) -> list[str]:
    return [
        text.strip()
        for text in page.locator(".message--assistant .message__content").all_inner_texts()
    ]


def start_chat_and_get_reply(page: Page, base_url: str) -> str:
    """New chat, one question, wait for the model's answer; returns the chat's URL."""
    page.goto(f"{base_url}/chats")
    page.get_by_role("link", name="New chat").click()
    # The greeting is the empty page's; nothing is stored until the first message.
    expect(page.get_by_role("heading", name="Hello, how can I assist you today?")).to_be_visible()
    expect(page.locator(".message")).to_have_count(0)
    send_message(page, QUESTION)
    expect(page).to_have_url(re.compile(r"/chats/[0-9a-f-]{36}"))
    expect(page.locator(".message--user .message__content").last).to_have_text(QUESTION)
    # The reply streams in (with script) or the page refreshes itself until it is
    # written (without): either way it ends complete.
    expect(page.locator(".message--assistant").first).to_have_attribute("data-status", "complete")
    replies = assistant_messages(page)
    assert len(replies) == 1
    assert replies[0], "the model's reply is empty"
    # Without script the page refreshed itself (?refresh=N), then went back to the
    # chat's own address once the reply was written.
    assert "?refresh=" not in page.url, page.url
    return page.url.split("#")[0]


@pytest.mark.parametrize("javascript", [True, False], ids=["js-on", "js-off"])
def test_sign_up_chat_reload_sign_out_and_back(
    nginx: NginxServer, open_tab: OpenTab, javascript: bool
) -> None:
    tab = open_tab(javascript=javascript)
    page = tab.page
    username = unique_username("journey")

    sign_up(page, nginx.url, username)
    chat_url = start_chat_and_get_reply(page, nginx.url)
    suffix = "js" if javascript else "nojs"
    save_screenshot(page, f"chat-{suffix}")

    page.reload()
    expect(page.locator(".message--user .message__content").last).to_have_text(QUESTION)
    reply_before_reload = assistant_messages(page)[0]

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login"))
    page.goto(chat_url)
    expect(page).to_have_url(re.compile(r"/login"))

    sign_in(page, nginx.url, username)
    sidebar_link = page.locator(
        "nav.sidebar a.chat-list__link", has_text="What is the capital of France"
    )
    expect(sidebar_link).to_be_visible()
    sidebar_link.click()
    expect(page).to_have_url(chat_url)
    assert assistant_messages(page)[0] == reply_before_reload
    assert tab.script_errors == []


def test_without_javascript_a_send_comes_back_at_once_and_the_reply_can_be_stopped(
    nginx: NginxServer, open_tab: OpenTab
) -> None:
    page = open_tab(javascript=False).page
    sign_up(page, nginx.url, unique_username("noscript"))
    page.goto(f"{nginx.url}/chats")
    box = page.get_by_role("textbox", name="Message")
    # The placeholder names no keys: without script, Enter makes a new line.
    expect(box).to_have_attribute("placeholder", "Message the assistant…")
    send_message(page, "Count from 1 to 300, one number per line.")
    # The chat page, while the reply is still being written: it refreshes itself.
    reply = page.locator(".message--assistant").last
    expect(reply).to_have_attribute("data-status", "generating")
    expect(page.locator('meta[http-equiv="refresh"]')).to_have_count(1)
    page.get_by_role("button", name="Stop").click()
    expect(reply).to_have_attribute("data-status", "stopped")
    expect(page.locator('meta[http-equiv="refresh"]')).to_have_count(0)
    expect(page.get_by_role("button", name="Stop")).to_be_hidden()
    expect(page.get_by_role("button", name="Regenerate")).to_be_visible()


def test_second_user_cannot_open_first_users_chat(nginx: NginxServer, open_tab: OpenTab) -> None:
    alice = open_tab().page
    sign_up(alice, nginx.url, unique_username("alice"))
    new_chat(alice, nginx.url)
    expect(send(alice, "Reply with just one word: hello.")).to_have_attribute(
        "data-status", "complete"
    )
    alice_chat_url = chat_url(alice)

    bob = open_tab().page
    sign_up(bob, nginx.url, unique_username("bob"))
    response = bob.goto(alice_chat_url)
    assert response is not None
    assert response.status == 404
    expect(bob.get_by_role("heading", name=re.compile("not found", re.IGNORECASE))).to_be_visible()
    save_screenshot(bob, "not-found-other-users-chat")
    bob.goto(f"{nginx.url}/chats")
    alice_chat_path = alice_chat_url.removeprefix(nginx.url)
    expect(bob.locator("nav.sidebar")).to_be_visible()
    expect(bob.locator(f'nav.sidebar a[href="{alice_chat_path}"]')).to_have_count(0)


def test_wrong_password_is_explained_and_username_kept(
    nginx: NginxServer, open_tab: OpenTab
) -> None:
    page = open_tab().page
    username = unique_username("forgetful")
    sign_up(page, nginx.url, username)
    page.get_by_role("button", name="Sign out").click()

    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill("not my password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Wrong username or password")
    expect(page.get_by_label("Username")).to_have_value(username)
    expect(page.get_by_label("Password", exact=True)).to_have_value("")

"""The chat page as an app shell, in a real Chromium: what stays in view, the phone
drawer, the growing message box and "+ New chat" that stores nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import httpx
import pytest
from playwright.sync_api import Page, expect

from harness.db_api import DbApiServer
from harness.factories import add_message, auth_headers, create_chat, unique_username
from harness.nginx import NginxServer
from tests.support.browser import OpenTab, save_screenshot
from tests.support.pages import PASSWORD, sign_up

MESSAGES = 100


@pytest.fixture
def db_client(db_api: DbApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=db_api.url, headers=auth_headers(db_api.service_token)) as client:
        yield client


def user_with_a_long_chat(page: Page, base_url: str, db_client: httpx.Client) -> str:
    """Sign up in the page; give the user a few chats, one of 100 messages; its URL."""
    username = unique_username("shell")
    sign_up(page, base_url, username)
    owner = db_client.post(
        "/users/verify", json={"username": username, "password": PASSWORD}
    ).json()["id"]
    for number in range(3):
        create_chat(db_client, user_id=owner, title=f"Another chat {number}")
    chat = create_chat(db_client, user_id=owner, title="A long conversation")
    for number in range(MESSAGES // 2):
        add_message(db_client, user_id=owner, chat_id=chat["id"], content=f"Question {number}?")
        add_message(
            db_client,
            user_id=owner,
            chat_id=chat["id"],
            role="assistant",
            content=f"Answer {number}.\n\n" + "A line of the answer.\n\n" * 3,
        )
    return f"{base_url}/chats/{chat['id']}"


def test_the_header_sidebar_and_message_box_stay_while_the_messages_scroll(
    nginx: NginxServer, db_client: httpx.Client, open_tab: OpenTab
) -> None:
    page = open_tab().page
    page.goto(user_with_a_long_chat(page, nginx.url, db_client))
    # The page opens at the latest message, the rest above it.
    expect(page.locator(".message").last).to_be_in_viewport()
    expect(page.locator(".message").first).not_to_be_in_viewport()
    page.mouse.move(700, 400)
    page.mouse.wheel(0, -200_000)
    expect(page.locator(".message").first).to_be_in_viewport()
    for fixed in (
        page.get_by_role("link", name="Chat", exact=True),
        page.get_by_role("link", name="+ New chat"),
        page.get_by_role("searchbox", name="Search your chats"),
        page.get_by_role("heading", name="A long conversation"),
        page.get_by_role("textbox", name="Message"),
        page.get_by_role("button", name="Send"),
    ):
        expect(fixed).to_be_in_viewport()
    # Only the conversation scrolled; the document itself never does.
    assert page.evaluate("document.scrollingElement.scrollTop") == 0
    save_screenshot(page, "shell-desktop")


def test_the_message_box_grows_with_its_text_up_to_a_limit(
    nginx: NginxServer, open_tab: OpenTab
) -> None:
    page = open_tab(height=800).page
    sign_up(page, nginx.url, unique_username("grow"))
    box = page.get_by_role("textbox", name="Message")
    empty = box.bounding_box()
    assert empty is not None
    box.fill("\n".join(f"line {n}" for n in range(6)))
    six = box.bounding_box()
    assert six is not None and six["height"] > empty["height"] * 1.8
    box.fill("\n".join(f"line {n}" for n in range(80)))
    many = box.bounding_box()
    assert many is not None and many["height"] <= 0.4 * 800 + 2
    expect(page.get_by_role("button", name="Send")).to_be_in_viewport()


def test_new_chat_opens_an_empty_message_box_and_stores_nothing(
    nginx: NginxServer, open_tab: OpenTab
) -> None:
    page = open_tab().page
    sign_up(page, nginx.url, unique_username("fresh"))
    for _ in range(2):
        page.get_by_role("link", name="+ New chat").click()
        expect(page.get_by_role("textbox", name="Message")).to_be_focused()
    expect(page.get_by_text("No chats yet.")).to_be_visible()


def test_on_a_phone_the_chats_are_a_drawer(
    nginx: NginxServer, db_client: httpx.Client, open_tab: OpenTab
) -> None:
    page = open_tab(width=390, height=844).page
    page.goto(user_with_a_long_chat(page, nginx.url, db_client))
    drawer = page.get_by_role("navigation", name="Your chats")
    toggle = page.get_by_role("link", name="Chats", exact=True)
    # The conversation comes first; the chat list waits behind the Chats button.
    expect(drawer).to_be_hidden()
    expect(page.get_by_role("textbox", name="Message")).to_be_in_viewport()
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 390
    save_screenshot(page, "phone-drawer-closed")

    toggle.click()
    expect(drawer).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(drawer.get_by_role("link", name="Close")).to_be_focused()
    # Slid in all the way, for the picture (the page's CSP allows no string evaluation).
    expect(drawer).to_have_css("transform", "none")
    save_screenshot(page, "phone-drawer-open")
    # Focus stays inside while it is open.
    for _ in range(16):
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement.outerHTML.slice(0, 120)")
        assert page.evaluate("document.activeElement.closest('#chats-drawer') !== null"), focused
    page.keyboard.press("Escape")
    expect(drawer).to_be_hidden()
    expect(toggle).to_be_focused()

    toggle.click()
    expect(drawer).to_be_visible()
    page.mouse.click(380, 420)  # the dimmed page beside the drawer
    expect(drawer).to_be_hidden()

    toggle.click()
    drawer.get_by_role("link", name="Another chat 1").click()
    expect(page.get_by_role("heading", name="Another chat 1")).to_be_visible()
    expect(drawer).to_be_hidden()


def test_without_javascript_the_drawer_opens_and_closes_with_links(
    nginx: NginxServer, db_client: httpx.Client, open_tab: OpenTab
) -> None:
    page = open_tab(width=390, height=844).page
    url = user_with_a_long_chat(page, nginx.url, db_client)
    no_script = open_tab(width=390, height=844, javascript=False).page
    # Signed in as the same person: the cookies carry over (those are the only ones).
    no_script.context.add_cookies(cast(Any, page.context.cookies()))
    no_script.goto(url)
    drawer = no_script.get_by_role("navigation", name="Your chats")
    expect(drawer).to_be_hidden()
    no_script.get_by_role("link", name="Chats", exact=True).click()
    expect(drawer).to_be_visible()
    drawer.get_by_role("link", name="Close").click()
    expect(drawer).to_be_hidden()

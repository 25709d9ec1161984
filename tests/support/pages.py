"""What a person does in the app's pages, in Playwright terms: shared by the browser tests."""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

__all__: list[str] = []

PASSWORD = "correct horse battery staple"


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


def new_chat(page: Page, base_url: str) -> None:
    """Open an empty message box, as "+ New chat" does: the first message stores the chat."""
    page.goto(f"{base_url}/chats")
    page.get_by_role("link", name="New chat").click()
    expect(page).to_have_url(re.compile(r"/chats$"))
    expect(page.get_by_role("textbox", name="Message")).to_be_visible()


def chat_url(page: Page) -> str:
    """The open chat's address, once its first message has made it."""
    expect(page).to_have_url(re.compile(r"/chats/[0-9a-f-]{36}"))
    return page.url.split("#")[0].split("?")[0]


def send(page: Page, text: str) -> Locator:
    """Send `text`; answers the reply's bubble (not whichever reply happens to be last)."""
    replies = page.locator(".message--assistant")
    before = replies.count()
    page.get_by_role("textbox", name="Message").fill(text)
    page.get_by_role("button", name="Send").click()
    return replies.nth(before)


def latest_reply(page: Page) -> Locator:
    return page.locator(".message--assistant").last

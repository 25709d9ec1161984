"""Layout in a real Chromium: dark mode, a phone-sized screen, and labelled form controls."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from harness.db_api import DbApiServer
from harness.factories import add_message, auth_headers, create_chat, unique_username
from harness.nginx import NginxServer
from tests.support.browser import OpenTab, save_screenshot
from tests.support.pages import PASSWORD, sign_up

LONG_CODE = "```python\nresult = " + " + ".join(f"value_{n}" for n in range(40)) + "\n```"
REPLY = f"""Here is a summary:

- first point with a long unbreakable word: {"x" * 80}
- second point

{LONG_CODE}

| Column one | Column two | Column three | Column four |
|---|---|---|---|
| a fairly long cell | another long cell | and a third one | and a fourth |
"""

# Every visible form control without an accessible name (label, aria-label, title...).
UNLABELLED_CONTROLS = """() => Array.from(
  document.querySelectorAll("input:not([type=hidden]), textarea, select, button")
).filter((control) => {
  if (control.closest("details:not([open])")) return false;
  const labelled = control.labels && control.labels.length > 0
    && Array.from(control.labels).some((label) => label.textContent.trim() !== "");
  const named = (control.getAttribute("aria-label") || "").trim() !== ""
    || (control.getAttribute("aria-labelledby") || "").trim() !== ""
    || (control.getAttribute("title") || "").trim() !== "";
  const buttonText = control.tagName === "BUTTON" && control.textContent.trim() !== "";
  return !(labelled || named || buttonText);
}).map((control) => control.outerHTML.slice(0, 120))"""


def luminance(css_colour: str) -> float:
    """Relative brightness 0..1 of an `rgb(...)` / `rgba(...)` computed colour."""
    red, green, blue = (int(part) for part in re.findall(r"\d+", css_colour)[:3])
    return (0.2126 * red + 0.7152 * green + 0.0722 * blue) / 255


@pytest.fixture
def db_client(db_api: DbApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=db_api.url, headers=auth_headers(db_api.service_token)) as client:
        yield client


def signed_up_with_chat(
    page: Page, base_url: str, db_api: DbApiServer, db_client: httpx.Client
) -> str:
    """Sign up in the page, give the user a chat with a rich reply; answer the chat's URL."""
    username = unique_username("layout")
    sign_up(page, base_url, username)
    verified = db_client.post("/users/verify", json={"username": username, "password": PASSWORD})
    owner = verified.json()["id"]
    chat = create_chat(db_client, user_id=owner, title="A chat about layout on small screens")
    add_message(db_client, user_id=owner, chat_id=chat["id"], content="Summarise please.")
    add_message(db_client, user_id=owner, chat_id=chat["id"], role="assistant", content=REPLY)
    return f"{base_url}/chats/{chat['id']}"


def test_dark_mode_has_dark_surfaces_and_readable_text(
    nginx: NginxServer, db_api: DbApiServer, db_client: httpx.Client, open_tab: OpenTab
) -> None:
    page = open_tab(color_scheme="dark").page
    chat_url = signed_up_with_chat(page, nginx.url, db_api, db_client)
    page.goto(chat_url)
    expect(page.locator(".message--assistant pre")).to_be_visible()

    body_background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    body_text = page.evaluate("getComputedStyle(document.body).color")
    assert luminance(body_background) < 0.15, body_background
    assert luminance(body_text) > 0.7, body_text
    for selector in (".sidebar", ".message--assistant", ".message--user", "textarea", "pre"):
        background = page.locator(selector).first.evaluate(
            "e => getComputedStyle(e).backgroundColor"
        )
        assert luminance(background) < 0.3, (selector, background)
    save_screenshot(page, "dark-mode")


def test_phone_width_has_no_sideways_scroll_and_a_usable_composer(
    nginx: NginxServer, db_api: DbApiServer, db_client: httpx.Client, open_tab: OpenTab
) -> None:
    page = open_tab(width=375, height=740).page
    chat_url = signed_up_with_chat(page, nginx.url, db_api, db_client)
    page.goto(chat_url)
    expect(page.locator(".message--assistant pre")).to_be_visible()

    assert page.evaluate("document.scrollingElement.scrollWidth") <= 375
    composer = page.get_by_role("textbox", name="Message")
    expect(composer).to_be_visible()
    expect(composer).to_be_in_viewport()
    expect(page.get_by_role("button", name="Send")).to_be_in_viewport()
    # The long code line scrolls inside its block instead of widening the page.
    code_scrolls = page.locator(".message--assistant pre").evaluate(
        "e => e.scrollWidth > e.clientWidth"
    )
    assert code_scrolls
    # The chat list is a drawer behind the Chats button (tests/e2e/test_app_shell_browser.py).
    expect(page.locator(".chat-list")).to_be_hidden()
    save_screenshot(page, "mobile")

    for path in ("/search?q=layout", "/chats"):
        page.goto(f"{nginx.url}{path}")
        assert page.evaluate("document.scrollingElement.scrollWidth") <= 375, path


def test_every_form_control_has_an_accessible_name(
    nginx: NginxServer, db_api: DbApiServer, db_client: httpx.Client, open_tab: OpenTab
) -> None:
    page = open_tab().page
    for path in ("/login", "/signup"):
        page.goto(f"{nginx.url}{path}")
        assert page.evaluate(UNLABELLED_CONTROLS) == [], path
    chat_url = signed_up_with_chat(page, nginx.url, db_api, db_client)
    chat_path = chat_url.removeprefix(nginx.url)
    for path in (chat_path, f"{chat_path}/delete", "/search", "/search?q=layout", "/chats"):
        page.goto(f"{nginx.url}{path}")
        # Open the chat's menu, so the controls inside it are checked too.
        for summary in page.locator(".chat-header summary").all():
            summary.click()
        assert page.evaluate(UNLABELLED_CONTROLS) == [], path
    page.goto(chat_url)
    page.locator(".chat-header summary").click()
    expect(page.locator(".chat-header").get_by_role("textbox", name="Rename")).to_be_focused()
    expect(page.get_by_role("searchbox", name="Search your chats")).to_be_visible()

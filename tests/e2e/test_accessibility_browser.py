"""axe-core over every page and state of the app, on desktop and phone, light and dark.

Any violation, of any impact, fails: the report names the state, the rule and the
elements. axe-core runs inside the page (axe-playwright-python injects it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from harness.db_api import DbApiServer
from harness.factories import add_message, auth_headers, create_chat, unique_username
from harness.nginx import NginxServer
from tests.support.browser import OpenTab, save_screenshot
from tests.support.pages import PASSWORD, send, sign_up
from tests.support.questions import LONG_REPLY_QUESTION

RICH_REPLY = """# A plan

Here is **one way**, with `code` and a [link](https://example.com):

1. First step
2. Second step

```python
def greet(name: str) -> str:
    return f"Hello, {name}! " + "and a line long enough to scroll sideways " * 3
```

| Step | What | Why |
|---|---|---|
| 1 | Install | It is needed |
| 2 | Run | To see it work |
"""
AXE = Axe()


@dataclass(frozen=True)
class Screen:
    name: str
    width: int
    height: int
    scheme: Literal["light", "dark"]


SCREENS = [
    Screen("desktop-light", 1280, 860, "light"),
    Screen("desktop-dark", 1280, 860, "dark"),
    Screen("phone-light", 390, 844, "light"),
    Screen("phone-dark", 390, 844, "dark"),
]


@pytest.fixture
def db_client(db_api: DbApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=db_api.url, headers=auth_headers(db_api.service_token)) as client:
        yield client


def violations(page: Page, state: str) -> list[str]:
    """axe-core's findings for the page as it is now, one line each."""
    results = AXE.run(page, options={"resultTypes": ["violations"]})
    found = []
    for violation in results.response["violations"]:
        targets = [", ".join(node["target"]) for node in violation["nodes"]][:4]
        found.append(f"{state}: {violation['id']} ({violation['impact']}) on {targets}")
    return found


def seeded_chat(page: Page, base_url: str, db_client: httpx.Client) -> str:
    """Sign up; a chat with a rich reply, a stopped one and a failed one; its URL."""
    username = unique_username("axe")
    sign_up(page, base_url, username)
    owner = db_client.post(
        "/users/verify", json={"username": username, "password": PASSWORD}
    ).json()["id"]
    chat = create_chat(db_client, user_id=owner, title="Plans and code")
    chat_id = chat["id"]
    for content, status in ((RICH_REPLY, "complete"), ("Half an answ", "stopped")):
        add_message(db_client, user_id=owner, chat_id=chat_id, content="Show me a plan.")
        add_message(
            db_client,
            user_id=owner,
            chat_id=chat_id,
            role="assistant",
            content=content,
            status=status,
        )
    add_message(db_client, user_id=owner, chat_id=chat_id, content="And again?")
    add_message(
        db_client,
        user_id=owner,
        chat_id=chat_id,
        role="assistant",
        content="An unfin",
        status="error",
    )
    return f"{base_url}/chats/{chat_id}"


def states(page: Page, base_url: str, chat_url: str) -> Iterator[tuple[str, Callable[[], object]]]:
    """Each state to check, with what brings the page into it."""

    def goto(path: str) -> Callable[[], object]:
        return lambda: page.goto(path if path.startswith("http") else f"{base_url}{path}")

    yield "chat with markdown, stopped and failed replies", goto(chat_url)

    def menu_open() -> None:
        page.goto(chat_url)
        page.locator(".chat-header summary").click()
        expect(page.locator(".chat-header .menu__panel")).to_be_visible()

    yield "chat menu open", menu_open

    def dialog_open() -> None:
        menu_open()
        page.locator(".chat-header").get_by_role("link", name="Delete…").click()
        expect(page.get_by_role("dialog")).to_be_visible()

    yield "delete dialog", dialog_open
    yield "empty chat", goto("/chats")
    yield "search results", goto("/search?q=plan")
    yield "search without results", goto("/search?q=zebra")
    yield "account", goto("/account")
    yield "not found", goto("/chats/00000000-0000-0000-0000-000000000000")


def signed_out_states(page: Page, base_url: str) -> Iterator[tuple[str, Callable[[], object]]]:
    yield "sign-in", lambda: page.goto(f"{base_url}/login")

    def sign_up_errors() -> None:
        page.goto(f"{base_url}/signup")
        page.get_by_label("Username").fill("ok_name_" + unique_username("e")[-6:])
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_label("Repeat password").fill(PASSWORD + "x")
        page.get_by_role("button", name="Create account").click()
        expect(page.get_by_role("alert")).to_be_visible()

    yield "sign-up with an error", sign_up_errors


@pytest.mark.parametrize("screen", SCREENS, ids=lambda screen: screen.name)
def test_no_page_or_state_has_an_accessibility_violation(
    nginx: NginxServer, db_client: httpx.Client, open_tab: OpenTab, screen: Screen
) -> None:
    found: list[str] = []
    visitor = open_tab(width=screen.width, height=screen.height, color_scheme=screen.scheme)
    for state, reach in signed_out_states(visitor.page, nginx.url):
        reach()
        found += violations(visitor.page, f"{screen.name} {state}")

    tab = open_tab(width=screen.width, height=screen.height, color_scheme=screen.scheme)
    page = tab.page
    chat_url = seeded_chat(page, nginx.url, db_client)
    for state, reach in states(page, nginx.url, chat_url):
        reach()
        found += violations(page, f"{screen.name} {state}")
    if screen.width < 600:
        page.goto(chat_url)
        page.get_by_role("link", name="Chats", exact=True).click()
        expect(page.get_by_role("navigation", name="Your chats")).to_be_visible()
        found += violations(page, f"{screen.name} drawer open")

    # A reply being written, then stopped.
    page.goto(f"{nginx.url}/chats")
    reply = send(page, LONG_REPLY_QUESTION)
    expect(reply.locator(".message__content")).not_to_be_empty()
    found += violations(page, f"{screen.name} streaming")
    page.keyboard.press("Escape")
    expect(reply).to_have_attribute("data-status", "stopped")
    found += violations(page, f"{screen.name} stopped")
    save_screenshot(page, f"axe-{screen.name}")
    assert found == [], "\n".join(found)

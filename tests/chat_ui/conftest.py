"""Fixtures for the chat-ui integration tests: a signed-out and a signed-in browser."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.chat_ui import ChatUiServer
from harness.forms import Browser


@pytest.fixture(scope="session", autouse=True)
def _no_replies_left_waiting(no_replies_left_waiting: None) -> None:
    """Every chat-ui of this tier starts on a queue without other tiers' leftovers."""


@pytest.fixture
def browser(chat_ui: ChatUiServer) -> Iterator[Browser]:
    """A signed-out browser on the session's chat-ui."""
    client = Browser(chat_ui.url)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def signed_in(browser: Browser) -> Browser:
    """A browser with a freshly signed-up user."""
    browser.sign_up()
    return browser

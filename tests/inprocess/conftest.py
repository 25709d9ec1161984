"""Fixtures of the in-process tier: browsers on chat-ui's real app over the fakes."""

from __future__ import annotations

import pytest

from harness.forms import Browser
from tests.support.inprocess import InProcessApp


@pytest.fixture
def browser(inprocess: InProcessApp) -> Browser:
    """A signed-out browser on the in-process chat-ui."""
    return inprocess.browser()


@pytest.fixture
def signed_in(browser: Browser) -> Browser:
    """A browser with a freshly signed-up user."""
    browser.sign_up()
    return browser

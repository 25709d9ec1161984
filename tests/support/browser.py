"""Headless Chromium (the Debian package) driven by Playwright, with screenshots kept."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Route,
    expect,
    sync_playwright,
)

from harness.processes import ARTIFACTS_DIR

__all__ = [
    "BrowserTab",
    "OpenTab",
    "browser",
    "cut_network_except",
    "open_tab",
    "save_screenshot",
]

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
# Without these flags Chromium keeps calling home, which this closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS_DIR = ARTIFACTS_DIR / "screenshots"


@dataclass
class BrowserTab:
    """A page in its own browser profile, with the script errors it raised."""

    page: Page
    script_errors: list[str] = field(default_factory=list)

    def record_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.script_errors.append(message.text)


ColorScheme = Literal["light", "dark", "no-preference"]


class OpenTab(Protocol):
    def __call__(
        self,
        *,
        javascript: bool = True,
        width: int = 1280,
        height: int = 860,
        color_scheme: ColorScheme = "light",
        ignore_https_errors: bool = False,
    ) -> BrowserTab: ...


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Module scope: Playwright's sync API keeps an event loop running while it is
    # open, which would break asyncio tests collected after the browser tests.
    # The model answers on a CPU; assertions that wait for a reply need the same patience.
    expect.set_options(timeout=90_000)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def open_tab(browser: Browser) -> Iterator[OpenTab]:
    """A factory of isolated tabs: each call is a fresh profile with its own cookies."""
    contexts: list[BrowserContext] = []

    def open_new_tab(
        *,
        javascript: bool = True,
        width: int = 1280,
        height: int = 860,
        color_scheme: ColorScheme = "light",
        ignore_https_errors: bool = False,
    ) -> BrowserTab:
        # The colour scheme is pinned (light by default) so screenshots do not depend on
        # the machine's setting.
        context = browser.new_context(
            java_script_enabled=javascript,
            viewport={"width": width, "height": height},
            color_scheme=color_scheme,
            # For a site with a self-signed certificate made by the test.
            ignore_https_errors=ignore_https_errors,
        )
        # The model answers on a CPU; a reply can take tens of seconds.
        context.set_default_timeout(90_000)
        contexts.append(context)
        tab = BrowserTab(page=context.new_page())
        tab.page.on("pageerror", lambda error: tab.script_errors.append(str(error)))
        tab.page.on("console", tab.record_console)
        return tab

    yield open_new_tab
    for context in contexts:
        context.close()


def save_screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS_DIR / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def cut_network_except(page: Page, origin: str) -> list[str]:
    """Abort every request of the page's browser context that leaves `origin`.

    `origin` is `scheme://host:port`. Answers the URLs of the requests that would have
    left, filled in as the page runs: a test asserts it stays empty, so a page that works
    only online (assets from a CDN, fonts from a font host) fails even where the network
    would have let it through. A request the page's own Content-Security-Policy refuses
    never gets this far, as it never leaves the browser.
    """
    leaving: list[str] = []

    def cut_or_pass(route: Route) -> None:
        url = route.request.url
        if url == origin or url.startswith(f"{origin}/"):
            route.continue_()
        else:
            leaving.append(url)
            route.abort("internetdisconnected")

    # The context rather than the page: popups and workers it opens are cut off too.
    page.context.route("**/*", cut_or_pass)
    return leaving

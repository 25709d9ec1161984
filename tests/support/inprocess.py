"""chat-ui's real app in the test process, on the in-memory db-api and model of `fakes`.

No service is started: requests go through Starlette's `TestClient` straight into
`chat_ui.main.app`, whose `DbClient` and `LmClient` dependencies are overridden with
the real clients on the fakes' wire (`fakes.in_memory_db_client`, `in_memory_lm_client`).
Every TestClient of a test shares one event loop (a blocking portal in a thread), as
one uvicorn process would: a reply started by one request is still being written
when the next request, or another browser, asks about it. The app's lifespan is not
run (it would connect to the real services); `InProcessApp` sets up what it would.
"""

from __future__ import annotations

import functools
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio.from_thread
import pytest
from anyio.from_thread import BlockingPortal

with warnings.catch_warnings():
    # Starlette 1.x prefers httpx2 for its TestClient; httpx is what the other tiers use.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

from chat_ui.generation import GenerationRegistry
from chat_ui.page_cache import PageCache
from harness.forms import Browser
from tests.support.fakes import FakeDbApi, FakeModel, in_memory_db_client, in_memory_lm_client

__all__ = ["InProcessApp", "asgi_portal", "inprocess"]

T = TypeVar("T")


@dataclass
class InProcessApp:
    """The app wired to `db` and `model` for one test, and the loop it runs in."""

    portal: BlockingPortal
    db: FakeDbApi
    model: FakeModel
    registry: GenerationRegistry
    _exits: ExitStack = field(default_factory=ExitStack)

    def client(self, *, base_url: str = "http://testserver", **options: Any) -> TestClient:
        """A TestClient on the app (no cookies yet), closed at the end of the test.

        An `https://` base URL is a request that came over HTTPS, as nginx reports it.
        """
        from chat_ui.main import app

        client = TestClient(app, base_url=base_url, **options)
        client.portal = self.portal  # the shared loop, and no lifespan
        self._exits.callback(client.close)
        return client

    def browser(self, *, base_url: str = "http://testserver") -> Browser:
        """A signed-out browser with JavaScript off (see harness.forms)."""
        return Browser(http=self.client(base_url=base_url, follow_redirects=True))

    def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `function` in the app's event loop, e.g. to read or seed the fake db-api."""
        return self.portal.call(functools.partial(function, *args, **kwargs))

    def user_id(self, browser: Browser) -> uuid.UUID:
        return self.call(self.db.user_id, browser.username)

    def stored_chat(self, browser: Browser, chat_id: uuid.UUID | str) -> dict[str, Any]:
        """The chat with its messages as db-api has them (`GET /chats/{id}`'s JSON)."""
        return self.call(self.db.chat_json, self.user_id(browser), chat_id)

    def everything_stored(self, browser: Browser) -> list[dict[str, Any]]:
        return self.call(self.db.everything, self.user_id(browser))


@pytest.fixture(scope="session")
def asgi_portal() -> Iterator[BlockingPortal]:
    """One event loop in a thread for every in-process request of the session."""
    with anyio.from_thread.start_blocking_portal() as portal:
        yield portal


@pytest.fixture
def inprocess(asgi_portal: BlockingPortal) -> Iterator[InProcessApp]:
    """chat-ui on a fresh FakeDbApi and FakeModel, as its lifespan would set it up."""
    # Imported here, not at the top: every tier imports this module (tests/conftest.py),
    # and only this one needs chat-ui's settings read and its app built.
    from chat_ui import deps
    from chat_ui.main import app, settings

    db, model = FakeDbApi(), FakeModel()
    db_client, lm_client = in_memory_db_client(db), in_memory_lm_client(model)
    registry = GenerationRegistry()
    app.state.configured_settings = app.state.settings = settings
    app.state.public_settings = None  # the lifespan's reader would fetch db-api's
    app.state.generations = registry
    app.state.page_cache = PageCache(max_bytes=settings.page_cache_mb * 1024 * 1024)
    app.dependency_overrides[deps.get_db] = lambda: db_client
    app.dependency_overrides[deps.get_lm] = lambda: lm_client
    world = InProcessApp(portal=asgi_portal, db=db, model=model, registry=registry)
    try:
        with world._exits:
            yield world
    finally:
        # Live replies are stopped and saved, as at shutdown, before the next test.
        asgi_portal.call(registry.shutdown)
        asgi_portal.call(lm_client.aclose)
        app.dependency_overrides.clear()

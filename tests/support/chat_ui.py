"""The session's chat-ui (harness.chat_ui), wired to the session's db-api and model."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from harness.chat_ui import ChatUiServer, running_chat_ui
from harness.db_api import DbApiServer
from harness.llama import LlamaServer

__all__ = ["chat_ui", "no_replies_left_waiting"]


@pytest.fixture(scope="session")
def no_replies_left_waiting(db_api: DbApiServer) -> None:
    """End the replies earlier tiers left "generating" with no writer (db-api tests).

    A chat-ui takes over waiting replies whose writer is gone and writes them with the
    model: left there, they would keep the model busy under the tests that follow.
    """
    engine = create_engine(db_api.database_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM reply_jobs"))
            connection.execute(
                text("UPDATE messages SET status = 'error' WHERE status = 'generating'")
            )
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def chat_ui(
    db_api: DbApiServer, llama_server: LlamaServer, no_replies_left_waiting: None
) -> Iterator[ChatUiServer]:
    """The session's chat-ui, wired to the real db-api and the real model."""
    with running_chat_ui(db_api, llama_server.url) as server:
        yield server

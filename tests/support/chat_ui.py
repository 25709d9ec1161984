"""The session's chat-ui (harness.chat_ui), wired to the session's db-api and model."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.chat_ui import ChatUiServer, running_chat_ui
from harness.db_api import DbApiServer
from harness.llama import LlamaServer

__all__ = ["chat_ui"]


@pytest.fixture(scope="session")
def chat_ui(db_api: DbApiServer, llama_server: LlamaServer) -> Iterator[ChatUiServer]:
    """The session's chat-ui, wired to the real db-api and the real model."""
    with running_chat_ui(db_api, llama_server.url) as server:
        yield server

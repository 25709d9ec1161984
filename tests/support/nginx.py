"""The session's nginx (harness.nginx) in front of the session's chat-ui."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.chat_ui import ChatUiServer
from harness.nginx import NginxServer, start_nginx
from harness.processes import free_port

__all__ = ["nginx"]


@pytest.fixture(scope="session")
def nginx(chat_ui: ChatUiServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NginxServer]:
    port = free_port()
    config_dir = tmp_path_factory.mktemp("nginx")
    upstream = chat_ui.url.removeprefix("http://")
    process = start_nginx(config_dir=config_dir, chat_ui_upstream=upstream, port=port)
    yield NginxServer(url=f"http://127.0.0.1:{port}", process=process, config_dir=config_dir)
    process.stop()

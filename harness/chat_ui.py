"""Run chat-ui as a real process (uvicorn) against a running db-api and llama.cpp server."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from harness.db_api import DbApiServer
from harness.processes import ServiceProcess, free_port, service_env

# Fixed so that a second chat-ui (e.g. pointed at a dead model) accepts the same cookies.
TEST_SESSION_SECRET = "test-session-secret-0123456789abcdefghijklmnop"


@dataclass(frozen=True)
class ChatUiServer:
    url: str
    process: ServiceProcess
    session_secret: str


def start_chat_ui(
    *,
    port: int,
    db_api_url: str,
    lm_api_url: str,
    service_token: str,
    extra_env: dict[str, str] | None = None,
) -> ServiceProcess:
    """Start chat-ui on 127.0.0.1:`port` and return it once `/health` answers 200.

    SESSION_SECRET defaults to TEST_SESSION_SECRET; `extra_env` overrides anything.
    """
    env = service_env(
        {
            "DB_API_URL": db_api_url,
            "LM_API_URL": lm_api_url,
            "SERVICE_TOKEN": service_token,
            "SESSION_SECRET": TEST_SESSION_SECRET,
            "APP_ENV": "development",
            **(extra_env or {}),
        }
    )
    process = ServiceProcess(
        f"chat-ui-{port}",
        [
            sys.executable,
            "-m",
            "uvicorn",
            "chat_ui.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--proxy-headers",
            "--forwarded-allow-ips=127.0.0.1",
            # As in native mode: open streams must not hold shutdown (and the final save).
            "--timeout-graceful-shutdown=3",
        ],
        env=env,
    ).start()
    try:
        process.wait_for_http(f"http://127.0.0.1:{port}/health")
    except BaseException:
        process.stop()
        raise
    return process


@contextmanager
def running_chat_ui(
    db_api: DbApiServer, lm_api_url: str, *, extra_env: dict[str, str] | None = None
) -> Iterator[ChatUiServer]:
    """A chat-ui on a free port for the block's duration, on `db_api` and the session key."""
    port = free_port()
    process = start_chat_ui(
        port=port,
        db_api_url=db_api.url,
        lm_api_url=lm_api_url,
        service_token=db_api.service_token,
        extra_env=extra_env,
    )
    try:
        yield ChatUiServer(
            url=f"http://127.0.0.1:{port}", process=process, session_secret=TEST_SESSION_SECRET
        )
    finally:
        process.stop()

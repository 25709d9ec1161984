"""chat-ui's readiness probe against the real db-api and llama.cpp server.

Sign-up, sign-in, sign-out and sessions are chat-ui's own logic, tested in-process on
the fakes: tests/inprocess/test_auth.py and test_security_sessions.py.
"""

from __future__ import annotations

import httpx

from harness.chat_ui import ChatUiServer


def test_readiness_checks_db_api_and_model(chat_ui: ChatUiServer) -> None:
    response = httpx.get(f"{chat_ui.url}/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"db_api": "ok", "lm_api": "ok"}}

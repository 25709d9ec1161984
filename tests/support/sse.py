"""Talking to chat-ui the way its script does: JSON answers and server-sent events."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx

from harness.forms import Browser

__all__: list[str] = []

JSON = {"Accept": "application/json"}

Event = tuple[str, dict[str, Any]]


def sse_events(response: httpx.Response) -> Iterator[Event]:
    """(event, data) pairs of a server-sent event stream; comment lines are skipped."""
    event, data = "message", list[str]()
    for line in response.iter_lines():
        if not line:
            if data:
                yield event, json.loads("\n".join(data))
            event, data = "message", []
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            event = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data.append(line.removeprefix("data:").strip())


def send_json(browser: Browser, chat_id: str, content: str, *, base: str = "") -> httpx.Response:
    return browser.http.post(
        f"{base}/chats/{chat_id}/messages",
        data={"csrf_token": browser.csrf_token(), "content": content},
        headers=JSON,
    )


def post_json(browser: Browser, path: str, **fields: str) -> httpx.Response:
    return browser.http.post(
        path, data={"csrf_token": browser.csrf_token(), **fields}, headers=JSON
    )


def read_until_done(browser: Browser, stream_url: str) -> list[Event]:
    with browser.http.stream("GET", stream_url) as response:
        assert response.status_code == 200
        events = []
        for event in sse_events(response):
            events.append(event)
            if event[0] == "done":
                break
    return events

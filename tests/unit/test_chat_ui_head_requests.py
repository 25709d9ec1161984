"""HeadAsGet: HEAD reaches the app as GET and leaves with the status and headers only."""

from __future__ import annotations

from typing import Any

from starlette.types import Message, Receive, Scope, Send

from chat_ui.head_requests import HeadAsGet

HEADERS = [
    (b"content-type", b"text/html; charset=utf-8"),
    (b"content-length", b"5"),
    (b"set-cookie", b"chat_session=changed; path=/"),
]


class RecordingApp:
    """Answers with HEADERS and `bodies`, noting the method it was asked with."""

    def __init__(self, bodies: list[bytes]) -> None:
        self.bodies = bodies
        self.methods: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.methods.append(scope["method"])
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        for index, body in enumerate(self.bodies):
            more = index < len(self.bodies) - 1
            await send({"type": "http.response.body", "body": body, "more_body": more})


async def call(app: RecordingApp, method: str) -> tuple[Scope, list[Message]]:
    scope: dict[str, Any] = {"type": "http", "method": method, "path": "/", "headers": []}
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await HeadAsGet(app)(scope, receive, send)
    return scope, sent


async def test_head_is_asked_as_get_and_answered_without_body_or_cookie() -> None:
    app = RecordingApp([b"hello"])
    scope, sent = await call(app, "HEAD")
    assert app.methods == ["GET"]
    assert scope["method"] == "HEAD"  # the server's own scope is left alone
    start, end = sent
    assert start["status"] == 200
    assert start["headers"] == HEADERS[:2]  # Content-Length of the GET's body, no cookie
    assert end == {"type": "http.response.body", "body": b"", "more_body": False}


async def test_a_streamed_answer_ends_with_its_headers() -> None:
    app = RecordingApp([b"event: update\n\n", b"event: update\n\n", b"event: done\n\n"])
    _, sent = await call(app, "HEAD")
    assert [message["type"] for message in sent] == ["http.response.start", "http.response.body"]
    assert sent[1]["more_body"] is False


async def test_other_methods_pass_untouched() -> None:
    for method in ("GET", "POST"):
        app = RecordingApp([b"hel", b"lo"])
        _, sent = await call(app, method)
        assert app.methods == [method]
        assert sent[0]["headers"] == HEADERS
        assert [message.get("body") for message in sent[1:]] == [b"hel", b"lo"]

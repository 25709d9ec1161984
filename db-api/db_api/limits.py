"""A cap on request bodies, so no caller can make db-api buffer an unbounded one."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The largest legitimate body is a 32,000-character message, at most 12 bytes a
# character once JSON-escaped (a surrogate pair): about 384 KB.
MAX_REQUEST_BYTES = 1024 * 1024
TOO_LARGE = json.dumps({"detail": f"Request body larger than {MAX_REQUEST_BYTES} bytes"}).encode()


class BodySizeLimitMiddleware:
    """Answers 413 to a body over the limit, declared (Content-Length) or streamed (chunked)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int = MAX_REQUEST_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit() or int(declared) > self.max_bytes:
                await _too_large(send)
                return
            await self.app(scope, receive, send)
            return
        # No length given: read it all (up to the limit) before the app sees any of it.
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await _too_large(send)
                return
            if message["type"] != "http.request" or not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


async def _too_large(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(TOO_LARGE)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": TOO_LARGE})

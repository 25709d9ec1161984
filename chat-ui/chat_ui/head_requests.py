"""HEAD answered like GET on every route: uptime monitors and link checkers ask with HEAD.

The app sees a GET, so every GET route (and any added later) answers HEAD without
being declared twice; the client gets that answer's status and headers, no body.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    """Routes HEAD as GET and sends the answer's status and headers only.

    Two things differ from the GET, on purpose:

    - No Set-Cookie. The session lives in the cookie, and a page view spends the
      one-shot notice or form error it shows (sessions.pop_flash, pop_notice); a
      HEAD shows nothing, so the browser keeps its cookie for the GET that does.
    - The answer ends with its headers. The server then tells the app the client is
      gone, so a stream (the reply's events) stops instead of running unread.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        # A copy: the server keeps its own scope saying HEAD, and so sends no body either.
        as_get = {**scope, "method": "GET"}
        answered = False

        async def send_headers_only(message: Message) -> None:
            nonlocal answered
            if answered or message["type"] != "http.response.start":
                return  # the body, and anything after it
            headers = [
                (name, value)
                for name, value in message.get("headers", [])
                if name.lower() != b"set-cookie"
            ]
            await send({**message, "headers": headers})
            answered = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        await self.app(as_get, receive, send_headers_only)

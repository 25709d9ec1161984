"""The middleware every request passes through: security headers, the session cookie
and the Secure flag on HTTPS, redirects that stay on this site, and the request body
size limit (answered with a readable page)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from starlette.datastructures import MutableHeaders
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chat_ui.errors import RequestTooLarge
from chat_ui.pages import render
from chat_ui.sessions import SECURE_SESSION_COOKIE, SESSION_COOKIE, session_cookie_name

# The same policy nginx sends (nginx replaces ours); this copy covers direct access.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)


class SecurityHeadersMiddleware:
    """Adds CSP and friends; pages with personal data are not cached.

    Also the outermost guard: it refuses oversized bodies (BodySizeLimit), marks
    cookies Secure on HTTPS requests (SecureCookiesOnHttps) and keeps every redirect
    a path on this site (LocalRedirects).
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = SecureCookiesOnHttps(
            LocalRedirects(BodySizeLimit(app, max_bytes=max_body_bytes))
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_static = str(scope.get("path", "")).startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "same-origin")
                headers.setdefault("X-Frame-Options", "DENY")
                if not is_static:
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)


class SessionCookie:
    """Starlette's signed session cookie, named for the connection it rides on.

    Under HTTPS it is `__Host-chat_session` (Secure, `Path=/`, no `Domain`), else
    `chat_session` (sessions.session_cookie_name). Each reads only its own name: a
    cookie set over plain HTTP is never taken for an HTTPS session, and signing out
    deletes the cookie the browser holds for this scheme.
    """

    def __init__(self, app: ASGIApp, *, secret_key: str, max_age: int, always_secure: bool) -> None:
        self.always_secure = always_secure
        self.by_name = {
            name: SessionMiddleware(
                app,
                secret_key=secret_key,
                session_cookie=name,
                max_age=max_age,
                path="/",
                same_site="lax",
                https_only=name == SECURE_SESSION_COOKIE,
            )
            for name in (SESSION_COOKIE, SECURE_SESSION_COOKIE)
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = session_cookie_name(scope, always_secure=self.always_secure)
        await self.by_name[name](scope, receive, send)


class SecureCookiesOnHttps:
    """Marks every cookie `Secure` when the request came over HTTPS.

    uvicorn's proxy headers turn nginx's `X-Forwarded-Proto: https` into the https
    scheme, so the flag follows the real connection even with COOKIE_SECURE unset.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("scheme") != "https":
            await self.app(scope, receive, send)
            return

        async def send_secure(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    (name, _with_secure(value) if name.lower() == b"set-cookie" else value)
                    for name, value in message.get("headers", [])
                ]
            await send(message)

        await self.app(scope, receive, send_secure)


def _with_secure(cookie: bytes) -> bytes:
    attributes = [part.strip().lower() for part in cookie.split(b";")[1:]]
    return cookie if b"secure" in attributes else cookie + b"; secure"


class LocalRedirects:
    """Makes every `Location` a path on this site, never a URL that names a host.

    Starlette builds some redirects (the trailing-slash one, `/chats/` to `/chats`) as
    absolute URLs from the request's `Host` header, which the client chooses. A path
    sends the browser back to the host it already talks to, whatever it claimed.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_local(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    (name, local_location(value) if name.lower() == b"location" else value)
                    for name, value in message.get("headers", [])
                ]
            await send(message)

        await self.app(scope, receive, send_local)


def local_location(location: bytes) -> bytes:
    """`location` without scheme and host, starting with exactly one `/`.

    Browsers read a leading `//` or `/\\` as the start of another host's name.
    Every redirect of ours is a path from the root, so nothing else changes.
    """
    parts = urlsplit(location.decode("latin-1"))
    path = "/" + parts.path.lstrip("/\\")
    return urlunsplit(("", "", path, parts.query, parts.fragment)).encode("latin-1")


class BodySizeLimit:
    """Answers 413 with a readable page to a body over the limit, declared or chunked."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit() or int(declared) > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        # No length given (chunked): read up to the limit before the app sees any of it.
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            if message["type"] != "http.request" or not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = render(Request(scope, receive), "error.html", {"error": RequestTooLarge()})
        response.status_code = RequestTooLarge.status_code
        response.headers["Connection"] = "close"
        await response(scope, receive, send)

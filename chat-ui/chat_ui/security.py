"""CSRF tokens, safe redirect targets, and the middleware every request passes through:
security headers, the Secure flag on HTTPS, and the request body size limit."""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The same policy nginx sends (nginx replaces ours); this copy covers direct access.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)
DEFAULT_AFTER_SIGN_IN = "/chats"


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_tokens_match(expected: str | None, submitted: str | None) -> bool:
    """Constant-time comparison; a missing token on either side never matches."""
    if not expected or not submitted:
        return False
    return hmac.compare_digest(expected.encode(), submitted.encode())


def safe_next_path(candidate: str | None) -> str:
    """`candidate` if it is a path on this site, else the default page.

    Only local paths are allowed so a crafted sign-in link cannot send the user
    elsewhere ("//evil.example", "https://...", "/\\\\evil" all fall back).
    """
    if not candidate or not candidate.startswith("/") or candidate.startswith(("//", "/\\")):
        return DEFAULT_AFTER_SIGN_IN
    if any(ord(char) < 0x20 or char == "\\" for char in candidate):
        return DEFAULT_AFTER_SIGN_IN
    parts = urlsplit(candidate)
    if parts.scheme or parts.netloc:
        return DEFAULT_AFTER_SIGN_IN
    return candidate


class SecurityHeadersMiddleware:
    """Adds CSP and friends; pages with personal data are not cached.

    Also the outermost guard: it refuses oversized bodies (BodySizeLimit) and marks
    cookies Secure on HTTPS requests (SecureCookiesOnHttps).
    """

    def __init__(self, app: ASGIApp) -> None:
        # Imported here: settings are read once the app is built, not at import.
        from chat_ui.config import get_settings

        self.app = SecureCookiesOnHttps(
            BodySizeLimit(app, max_bytes=get_settings().request_bytes_limit)
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
        # Imported here: pages imports sessions, which imports this module.
        from starlette.requests import Request

        from chat_ui.errors import RequestTooLarge
        from chat_ui.pages import render

        response = render(Request(scope, receive), "error.html", {"error": RequestTooLarge()})
        response.status_code = RequestTooLarge.status_code
        response.headers["Connection"] = "close"
        await response(scope, receive, send)

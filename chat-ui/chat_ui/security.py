"""CSRF tokens, safe redirect targets and the security headers every response carries."""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'self'"
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
    """Adds CSP and friends; pages with personal data are not cached."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

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

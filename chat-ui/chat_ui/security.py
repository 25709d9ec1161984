"""CSRF tokens and safe redirect targets: small pure helpers, no I/O and no pages.

The middleware every request passes through is in `chat_ui.middleware`.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

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

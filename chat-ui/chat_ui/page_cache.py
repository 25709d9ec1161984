"""Rendered chat pages, kept until db-api says the user's chats changed.

db-api names each state of a user's chats and messages with an ETag (see its
`GET /sessions/current/page`). A page rendered for one state is kept here under that
ETag; while it is still current, db-api answers 304 after checking the session, and
the page goes out without reading the chat or rendering a template. The parts that
differ per response (the CSRF token and the send form's request id) are rendered as
markers and filled in each time. Pages with a reply being written or failed are not
kept: how they look depends on this process's live replies, not just on the data.
"""

from __future__ import annotations

import secrets
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, date, datetime

# Random per process, so no message text can contain them.
CSRF_MARKER = f"csrf-{secrets.token_hex(16)}"
REQUEST_ID_MARKER = f"request-{secrets.token_hex(16)}"
_CSRF = CSRF_MARKER.encode()
_REQUEST_ID = REQUEST_ID_MARKER.encode()

PageKey = tuple[uuid.UUID, uuid.UUID | None]  # (user, chat); no chat for /chats


@dataclass(frozen=True)
class CachedPage:
    etag: str
    # Kept encoded: filling in bytes and sending them skips encoding the page each time.
    html: bytes
    # Dates show as "14:05" today and "Mon" this week, so a page is only good for its day.
    day: date


def today() -> date:
    return datetime.now(UTC).date()


class PageCache:
    """The most recently used pages, up to `max_bytes` of HTML in all (0 keeps none)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._pages: OrderedDict[PageKey, CachedPage] = OrderedDict()
        self._bytes = 0

    def get(self, key: PageKey) -> CachedPage | None:
        page = self._pages.get(key)
        if page is None:
            return None
        if page.day != today():
            self._remove(key)
            return None
        self._pages.move_to_end(key)
        return page

    def put(self, key: PageKey, *, etag: str, html: str) -> None:
        self._remove(key)
        encoded = html.encode()
        if len(encoded) > self.max_bytes // 4:
            return  # one huge chat must not push out everyone else's pages
        self._pages[key] = CachedPage(etag=etag, html=encoded, day=today())
        self._bytes += len(encoded)
        while self._bytes > self.max_bytes:
            self._remove(next(iter(self._pages)))

    def clear(self) -> None:
        """Forget every page (what they all show changed: the admin's settings)."""
        self._pages.clear()
        self._bytes = 0

    def _remove(self, key: PageKey) -> None:
        page = self._pages.pop(key, None)
        if page is not None:
            self._bytes -= len(page.html)

    def __len__(self) -> int:
        return len(self._pages)


def fill(html: bytes, *, csrf_token: str, request_id: uuid.UUID) -> bytes:
    """The page for one response: this session's CSRF token, a fresh send-form id."""
    return html.replace(_CSRF, csrf_token.encode()).replace(_REQUEST_ID, str(request_id).encode())

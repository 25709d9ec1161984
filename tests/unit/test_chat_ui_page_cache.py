"""chat-ui's cache of rendered pages: per user and chat, bounded, good for one day."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest

from chat_ui import page_cache
from chat_ui.page_cache import CSRF_MARKER, REQUEST_ID_MARKER, PageCache, fill

ALICE, BOB = uuid.uuid4(), uuid.uuid4()
CHAT = uuid.uuid4()


def test_a_page_is_found_only_under_its_own_user_and_chat() -> None:
    pages = PageCache(max_bytes=10_000)
    pages.put((ALICE, CHAT), etag='"a.1"', html="alice's page")
    found = pages.get((ALICE, CHAT))
    assert found is not None and found.etag == '"a.1"' and found.html == b"alice's page"
    assert pages.get((BOB, CHAT)) is None
    assert pages.get((ALICE, None)) is None


def test_putting_again_replaces_the_page() -> None:
    pages = PageCache(max_bytes=10_000)
    pages.put((ALICE, CHAT), etag='"a.1"', html="old")
    pages.put((ALICE, CHAT), etag='"a.2"', html="new")
    found = pages.get((ALICE, CHAT))
    assert found is not None and (found.etag, found.html) == ('"a.2"', b"new")
    assert len(pages) == 1


def test_the_least_recently_used_pages_go_first_when_full() -> None:
    pages = PageCache(max_bytes=400)
    chats = [uuid.uuid4() for _ in range(4)]
    for chat in chats:
        pages.put((ALICE, chat), etag='"e"', html="x" * 100)
    assert pages.get((ALICE, chats[0])) is not None  # now the most recently used
    pages.put((BOB, CHAT), etag='"e"', html="y" * 100)
    assert pages.get((ALICE, chats[1])) is None
    assert all(pages.get((ALICE, chat)) is not None for chat in (chats[0], chats[2], chats[3]))


def test_a_page_larger_than_a_quarter_of_the_cache_is_not_kept() -> None:
    pages = PageCache(max_bytes=400)
    pages.put((ALICE, CHAT), etag='"e"', html="x" * 101)
    assert pages.get((ALICE, CHAT)) is None


def test_a_cache_of_size_zero_keeps_nothing() -> None:
    pages = PageCache(max_bytes=0)
    pages.put((ALICE, CHAT), etag='"e"', html="page")
    assert pages.get((ALICE, CHAT)) is None


def test_a_page_from_yesterday_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    pages = PageCache(max_bytes=10_000)
    pages.put((ALICE, CHAT), etag='"e"', html="14:05")
    monkeypatch.setattr(page_cache, "today", lambda: date.today() + timedelta(days=1))
    assert pages.get((ALICE, CHAT)) is None
    assert len(pages) == 0


def test_fill_puts_in_the_token_and_the_request_id_everywhere() -> None:
    request_id = uuid.uuid4()
    html = f"<a {CSRF_MARKER}><b {CSRF_MARKER}><c {REQUEST_ID_MARKER}> é".encode()
    filled = fill(html, csrf_token="tok", request_id=request_id)
    assert filled.decode() == f"<a tok><b tok><c {request_id}> é"


def test_markers_differ_per_process_and_cannot_be_typed_by_accident() -> None:
    assert CSRF_MARKER.startswith("csrf-") and len(CSRF_MARKER) == 5 + 32
    assert REQUEST_ID_MARKER.startswith("request-") and len(REQUEST_ID_MARKER) == 8 + 32

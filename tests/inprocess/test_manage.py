"""Renaming, deleting, searching and exporting chats through chat-ui's real pages.

Which chats a search finds (PostgreSQL's full-text search) is checked against the real
db-api in tests/chat_ui/test_manage.py; here the fake's substring match stands in, and
what is checked is how chat-ui shows the hits.
"""

from __future__ import annotations

import html
import json
import random
import string
from collections.abc import Callable

import httpx
import pytest

from harness.forms import Browser
from tests.support.inprocess import InProcessApp


def unique_word() -> str:
    return "".join(random.choices(string.ascii_lowercase, k=14))


MakeChat = Callable[..., str]


@pytest.fixture
def make_chat(inprocess: InProcessApp) -> MakeChat:
    """Chats of a browser's user, made in db-api directly (no model reply needed)."""

    def make(browser: Browser, title: str = "New chat") -> str:
        chat = inprocess.call(inprocess.db.create_chat, inprocess.user_id(browser), title=title)
        chat_id: str = chat["id"]
        return chat_id

    return make


@pytest.fixture
def other_user(inprocess: InProcessApp) -> Browser:
    """A second, separately signed-up user."""
    client = inprocess.browser()
    client.sign_up()
    return client


def add_messages(
    inprocess: InProcessApp, browser: Browser, chat_id: str, *messages: tuple[str, str, str]
) -> None:
    user_id = inprocess.user_id(browser)
    for role, content, status in messages:
        inprocess.call(
            inprocess.db.add_message, user_id, chat_id, role=role, content=content, status=status
        )


def rename(browser: Browser, chat_id: str, title: str) -> httpx.Response:
    return browser.submit(f"/chats/{chat_id}/rename", {"title": title})


# Rename


def test_rename_trims_and_shows_the_new_title(signed_in: Browser, make_chat: MakeChat) -> None:
    chat_id = make_chat(signed_in)
    response = rename(signed_in, chat_id, "  Trip to Lisbon  ")
    assert response.status_code == 200
    assert response.history[0].status_code == 303
    assert response.url.path == f"/chats/{chat_id}"
    assert '<h1 class="conversation__title">Trip to Lisbon</h1>' in response.text
    assert '<span class="chat-list__title">Trip to Lisbon</span>' in response.text


def test_rename_without_csrf_is_refused(signed_in: Browser, make_chat: MakeChat) -> None:
    chat_id = make_chat(signed_in)
    response = signed_in.http.post(f"/chats/{chat_id}/rename", data={"title": "Hijacked"})
    assert response.status_code == 403
    forged = signed_in.http.post(
        f"/chats/{chat_id}/rename", data={"title": "Hijacked", "csrf_token": "forged"}
    )
    assert forged.status_code == 403
    assert "Hijacked" not in signed_in.get(f"/chats/{chat_id}").text


@pytest.mark.parametrize(
    ("typed", "message"),
    [("   ", "Give the chat a title."), ("x" * 201, "Titles are at most 200 characters.")],
    ids=["blank", "too-long"],
)
def test_invalid_title_is_explained_inline_with_the_text_kept(
    signed_in: Browser, typed: str, message: str, make_chat: MakeChat
) -> None:
    chat_id = make_chat(signed_in)
    before = signed_in.get(f"/chats/{chat_id}").text
    response = rename(signed_in, chat_id, typed)
    assert response.url.path == f"/chats/{chat_id}"
    page = response.text
    assert message in page
    assert 'aria-invalid="true"' in page
    assert f'value="{typed}"' in page
    assert '<details class="menu chat-menu" open data-menu>' in page
    # One-shot: a reload shows the form closed and the title unchanged.
    again = signed_in.get(f"/chats/{chat_id}").text
    assert message not in again
    title = before.split('<h1 class="conversation__title">')[1].split("</h1>")[0]
    assert f'<h1 class="conversation__title">{title}</h1>' in again


# Delete


def test_delete_asks_for_confirmation_first(signed_in: Browser, make_chat: MakeChat) -> None:
    chat_id = make_chat(signed_in)
    rename(signed_in, chat_id, "Q3 <budget>")
    page = signed_in.get(f"/chats/{chat_id}/delete")
    assert page.status_code == 200
    assert "<h1>Delete “Q3 &lt;budget&gt;”?</h1>" in page.text
    assert "This deletes all its messages." in page.text
    assert f'action="/chats/{chat_id}/delete"' in page.text
    assert f'<a class="button" href="/chats/{chat_id}">Cancel</a>' in page.text
    assert signed_in.get(f"/chats/{chat_id}").status_code == 200


def test_delete_removes_the_chat_and_its_messages(
    signed_in: Browser, inprocess: InProcessApp, make_chat: MakeChat
) -> None:
    chat_id = make_chat(signed_in)
    add_messages(inprocess, signed_in, chat_id, ("user", "Forget me", "complete"))
    assert len(inprocess.stored_chat(signed_in, chat_id)["messages"]) == 1

    response = signed_in.submit(f"/chats/{chat_id}/delete", form_page=f"/chats/{chat_id}/delete")
    assert response.history[0].status_code == 303
    assert response.url.path == "/chats"
    assert "Chat deleted." in response.text
    assert f'href="/chats/{chat_id}"' not in response.text
    assert "Chat deleted." not in signed_in.get("/chats").text

    assert inprocess.everything_stored(signed_in) == []
    assert signed_in.get(f"/chats/{chat_id}").status_code == 404


def test_delete_without_csrf_is_refused(signed_in: Browser, make_chat: MakeChat) -> None:
    chat_id = make_chat(signed_in)
    response = signed_in.http.post(f"/chats/{chat_id}/delete", data={"csrf_token": "forged"})
    assert response.status_code == 403
    assert signed_in.get(f"/chats/{chat_id}").status_code == 200


# Search


def search(browser: Browser, query: str) -> str:
    response = browser.http.get("/search", params={"q": query})
    assert response.status_code == 200, response.text
    return response.text


def test_search_snippet_is_escaped_and_only_marks_are_markup(
    signed_in: Browser, inprocess: InProcessApp, make_chat: MakeChat
) -> None:
    word = unique_word()
    chat_id = make_chat(signed_in)
    text = f"{word} & <b>x</b> < 'y' <script>alert(1)</script> zz"
    add_messages(inprocess, signed_in, chat_id, ("user", text, "complete"))
    page = search(signed_in, f"{word} zz")
    snippet = page.split('<p class="search-result__snippet">')[1].split("</p>")[0]
    assert f"<mark>{word}</mark>" in snippet
    # Whatever of the text the snippet keeps is escaped; <mark> is the only markup.
    assert "<" not in snippet.replace("<mark>", "").replace("</mark>", "")
    assert "&amp;" in snippet
    assert "&lt;" in snippet
    assert "<script>alert" not in page
    assert "\u0002" not in page
    assert "\u0003" not in page


def test_empty_search_shows_the_form_and_no_match_is_explained(signed_in: Browser) -> None:
    empty = search(signed_in, "   ")
    assert 'id="search-query"' in empty
    assert 'class="search-results"' not in empty
    assert "No chats match" not in empty

    word = unique_word()
    none = search(signed_in, word)
    assert f"No chats match “{word}”" in none
    # One search box, the page's own, holding the query (the sidebar's is left out).
    assert none.count('role="search"') == 1
    assert f'id="search-query" name="q" type="search" value="{word}"' in none
    assert 'id="sidebar-search"' in signed_in.get("/chats").text


def test_search_query_is_escaped_in_the_page(signed_in: Browser) -> None:
    page = search(signed_in, '"><script>alert(1)</script>')
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;" in page


# Export


def exported_chat(
    signed_in: Browser, inprocess: InProcessApp, make_chat: MakeChat, title: str
) -> str:
    chat_id = make_chat(signed_in, title)
    add_messages(
        inprocess,
        signed_in,
        chat_id,
        ("system", "You are a secret system prompt.", "complete"),
        ("user", "What is **2+2**?", "complete"),
        ("assistant", "It is 4.", "complete"),
        ("user", "And 3+3?", "complete"),
        ("assistant", "It is", "stopped"),
        ("user", "Once more", "complete"),
        ("assistant", "Partial", "error"),
    )
    return chat_id


def test_export_markdown(signed_in: Browser, inprocess: InProcessApp, make_chat: MakeChat) -> None:
    chat_id = exported_chat(signed_in, inprocess, make_chat, "Café maths / 2025")
    response = signed_in.get(f"/chats/{chat_id}/export.md")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/markdown; charset=utf-8"
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="Cafe-maths-2025.md"; ')
    assert "filename*=UTF-8''Caf%C3%A9%20maths%202025.md" in disposition

    document = response.text
    assert document.startswith("# Café maths / 2025\n")
    assert "secret system prompt" not in document
    assert document.count("**You** · ") == 3
    assert document.count("**Assistant** · ") == 3
    assert "What is **2+2**?" in document
    assert "_(stopped before the end)_" in document
    assert "_(the reply failed; this is the text written so far)_" in document
    assert " UTC" in document


def test_export_json(signed_in: Browser, inprocess: InProcessApp, make_chat: MakeChat) -> None:
    chat_id = exported_chat(signed_in, inprocess, make_chat, "Numbers")
    response = signed_in.get(f"/chats/{chat_id}/export.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-disposition"].startswith(
        'attachment; filename="Numbers.json"; '
    )
    exported = json.loads(response.text)
    assert exported["chat"]["id"] == chat_id
    assert exported["chat"]["title"] == "Numbers"
    assert "messages" not in exported["chat"]
    roles = [message["role"] for message in exported["messages"]]
    assert "system" not in roles
    assert roles == ["user", "assistant"] * 3
    assert exported["messages"][-1]["status"] == "error"
    assert exported["messages"][0]["content"] == "What is **2+2**?"


# Someone else's chat


def test_every_route_answers_404_for_another_users_chat(
    signed_in: Browser, other_user: Browser, make_chat: MakeChat
) -> None:
    chat_id = make_chat(signed_in)
    rename(signed_in, chat_id, "Private plans")
    for path in (f"/chats/{chat_id}/delete", f"/chats/{chat_id}/export.md"):
        response = other_user.get(path)
        assert response.status_code == 404, path
        assert "Private plans" not in response.text
    assert other_user.get(f"/chats/{chat_id}/export.json").status_code == 404
    for path, data in (
        (f"/chats/{chat_id}/rename", {"title": "Mine now"}),
        (f"/chats/{chat_id}/rename", {"title": " "}),
        (f"/chats/{chat_id}/delete", {}),
    ):
        response = other_user.submit(path, data)
        assert response.status_code == 404, (path, data)

    page = signed_in.get(f"/chats/{chat_id}")
    assert page.status_code == 200
    assert "Private plans" in html.unescape(page.text)

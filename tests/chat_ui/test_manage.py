"""Searching chats through chat-ui's page, against the real db-api's full-text search.

Renaming, deleting, exporting and how search results are shown are tested in-process
on the fakes: tests/inprocess/test_manage.py.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable, Iterator

import httpx
import pytest

from harness.chat_ui import ChatUiServer
from harness.db_api import DbApiServer
from harness.factories import add_message, create_chat
from harness.forms import Browser, user_id_of


def unique_word() -> str:
    """Letters only, so PostgreSQL's parser sees exactly one word that no other test uses."""
    return "".join(random.choices(string.ascii_lowercase, k=14))


MakeChat = Callable[..., str]


@pytest.fixture
def make_chat(db_api: DbApiServer, db_api_client: httpx.Client) -> MakeChat:
    """Chats of a browser's user, made in db-api directly (no model reply needed)."""

    def make(browser: Browser, title: str = "New chat") -> str:
        chat = create_chat(db_api_client, user_id=user_id_of(db_api, browser), title=title)
        chat_id: str = chat["id"]
        return chat_id

    return make


@pytest.fixture
def other_user(chat_ui: ChatUiServer) -> Iterator[Browser]:
    """A second, separately signed-up user."""
    client = Browser(chat_ui.url)
    client.sign_up()
    try:
        yield client
    finally:
        client.close()


def add_messages(
    db_api_client: httpx.Client,
    db_api: DbApiServer,
    browser: Browser,
    chat_id: str,
    *messages: tuple[str, str, str | None],
) -> None:
    user_id = user_id_of(db_api, browser)
    for role, content, status in messages:
        add_message(
            db_api_client,
            user_id=user_id,
            chat_id=chat_id,
            role=role,
            content=content,
            status=status,
        )


def rename(browser: Browser, chat_id: str, title: str) -> httpx.Response:
    return browser.submit(f"/chats/{chat_id}/rename", {"title": title})


# Rename


# Delete


# Search


def search(browser: Browser, query: str) -> str:
    response = browser.http.get("/search", params={"q": query})
    assert response.status_code == 200, response.text
    return response.text


def test_search_finds_titles_and_messages_of_the_user_only(
    signed_in: Browser,
    other_user: Browser,
    db_api: DbApiServer,
    db_api_client: httpx.Client,
    make_chat: MakeChat,
) -> None:
    word = unique_word()
    by_title = make_chat(signed_in)
    rename(signed_in, by_title, f"Notes about {word}")
    by_message = make_chat(signed_in)
    add_messages(
        db_api_client, db_api, signed_in, by_message, ("user", f"Tell me about {word} please", None)
    )
    theirs = make_chat(other_user)
    rename(other_user, theirs, f"Their {word} chat")

    page = search(signed_in, word)
    assert f'href="/chats/{by_title}"' in page
    assert f'href="/chats/{by_message}"' in page
    assert f'href="/chats/{theirs}"' not in page
    assert f"<mark>{word}</mark>" in page

    their_page = search(other_user, word)
    assert f'href="/chats/{theirs}"' in their_page
    assert f'href="/chats/{by_title}"' not in their_page
    assert f'href="/chats/{by_message}"' not in their_page


# Export


def exported_chat(
    signed_in: Browser,
    db_api: DbApiServer,
    db_api_client: httpx.Client,
    make_chat: MakeChat,
    title: str,
) -> str:
    chat_id = make_chat(signed_in, title)
    add_messages(
        db_api_client,
        db_api,
        signed_in,
        chat_id,
        ("system", "You are a secret system prompt.", None),
        ("user", "What is **2+2**?", None),
        ("assistant", "It is 4.", None),
        ("user", "And 3+3?", None),
        ("assistant", "It is", "stopped"),
        ("user", "Once more", None),
        ("assistant", "Partial", "error"),
    )
    return chat_id


# Someone else's chat

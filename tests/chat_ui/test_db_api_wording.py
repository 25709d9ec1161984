"""What db-api refuses is told in the app's words, never pydantic's, keeping what was typed."""

from __future__ import annotations

import html
import re

import pytest

from harness.factories import DEFAULT_PASSWORD, unique_username
from harness.forms import Browser, textarea_text
from tests.support.sse import send_json

# Pieces of db-api's own (pydantic's) wording that must never reach a page.
PYDANTIC_WORDING = (
    "Value error",
    "String should",
    "should have at least",
    "must not contain",
    "\\u0000",
)
ALERT = re.compile(r'role="alert"[^>]*>(.*?)</p>', re.DOTALL)


def alert_of(page: str) -> str:
    """The page's error alerts, as text."""
    alerts = [html.unescape(alert) for alert in ALERT.findall(page)]
    assert alerts, "no error shown"
    return " ".join(alerts)


def assert_in_our_words(page: str, expected: str) -> None:
    shown = alert_of(page)
    assert expected in shown
    assert not any(words in shown for words in PYDANTIC_WORDING), shown


@pytest.mark.parametrize(
    ("username", "password", "expected"),
    [
        ("ann\x00ie", "short", "Usernames are 3 to 32 characters"),
        (unique_username("short"), "short", "Passwords are 8 to 128 characters long."),
        # Only db-api refuses this one.
        (
            unique_username("nul"),
            "pass\x00word-long",
            "Passwords can't contain NUL characters.",
        ),
    ],
    ids=[
        "NUL in the username, too short a password",
        "too short a password",
        "NUL in the password",
    ],
)
def test_sign_up_is_refused_in_our_words_keeping_the_username(
    browser: Browser, username: str, password: str, expected: str
) -> None:
    response = browser.submit(
        "/signup",
        {"username": username, "password": password, "password_confirm": password},
        form_page="/signup",
    )
    assert response.status_code == 422
    assert_in_our_words(response.text, expected)
    assert f'value="{username}"' in response.text


@pytest.mark.parametrize(
    ("username", "password", "expected"),
    [
        ("somebody", "short", "Passwords need at least 8 characters."),
        ("some\x00body", DEFAULT_PASSWORD, "Usernames can't contain control characters."),
        ("somebody", "pass\x00word-long", "Passwords can't contain NUL characters."),
    ],
    ids=["too short a password", "NUL in the username", "NUL in the password"],
)
def test_sign_in_is_refused_in_our_words_keeping_the_username(
    browser: Browser, username: str, password: str, expected: str
) -> None:
    response = browser.submit(
        "/login", {"username": username, "password": password}, form_page="/login"
    )
    assert response.status_code == 422
    assert_in_our_words(response.text, expected)
    assert f'value="{username}"' in response.text


def test_a_title_db_api_refuses_is_explained_with_the_title_kept(signed_in: Browser) -> None:
    chat_id = signed_in.new_chat()
    title = "Plans\x00for the trip"
    response = signed_in.submit(f"/chats/{chat_id}/rename", {"title": title})
    assert response.url.path == f"/chats/{chat_id}"
    assert_in_our_words(response.text, "Chat titles can't contain NUL characters.")
    assert f'value="{title}"' in response.text


def test_a_message_db_api_refuses_is_explained_with_the_text_kept(signed_in: Browser) -> None:
    chat_id = signed_in.new_chat()
    message = "What is\x00this?"
    expected = "Messages can't contain NUL characters."
    for path in ("/chats", f"/chats/{chat_id}/messages"):
        response = signed_in.submit(path, {"content": message})
        assert response.status_code == 422
        assert_in_our_words(response.text, expected)
        assert textarea_text(response.text) == message
    answer = send_json(signed_in, chat_id, message)
    assert answer.status_code == 422
    assert answer.json() == {"error": expected}
    page = signed_in.get(f"/chats/{chat_id}").text
    assert "What is" not in page  # nothing was stored


def test_a_search_db_api_refuses_is_explained(signed_in: Browser) -> None:
    response = signed_in.http.get("/search", params={"q": "lisbon\x00trip"})
    assert response.status_code == 422
    assert_in_our_words(response.text, "Searches can't contain NUL characters.")
    assert 'value="lisbon\x00trip"' in response.text

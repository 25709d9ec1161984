"""Sessions live in db-api: sign-out ends every copy of the cookie; sign-in rotates it."""

from __future__ import annotations

import httpx

from tests.support.chat_ui import ChatUiServer
from tests.support.forms import Browser

EXPIRED = "Your session expired. Please sign in again."


def replay(chat_ui: ChatUiServer, cookie: str) -> httpx.Client:
    """Another client holding a copy of a cookie, as a thief would."""
    client = httpx.Client(base_url=chat_ui.url, follow_redirects=False)
    client.cookies.set("chat_session", cookie)
    return client


def test_sign_out_ends_a_copied_cookie_on_every_kind_of_route(
    signed_in: Browser, chat_ui: ChatUiServer
) -> None:
    chat_id = signed_in.new_chat()
    csrf = signed_in.csrf_token()
    stolen = signed_in.http.cookies["chat_session"]
    with replay(chat_ui, stolen) as thief:
        assert thief.get("/chats").status_code == 200  # the copy works while signed in
    signed_in.submit("/logout")
    # Pages, send, stream, stop and management: all refuse the copy after sign-out.
    attempts = [
        ("GET", "/chats", None),
        ("GET", f"/chats/{chat_id}", None),
        ("GET", f"/chats/{chat_id}/messages/1/stream", None),
        ("POST", f"/chats/{chat_id}/messages", {"content": "hi", "csrf_token": csrf}),
        ("POST", f"/chats/{chat_id}/stop", {"csrf_token": csrf}),
        ("POST", f"/chats/{chat_id}/rename", {"title": "stolen", "csrf_token": csrf}),
        ("GET", f"/chats/{chat_id}/export.json", None),
        ("GET", "/search?q=hello", None),
    ]
    for method, path, form in attempts:
        with replay(chat_ui, stolen) as thief:
            response = thief.request(method, path, data=form)
            assert response.status_code == 303, (method, path, response.status_code)
            assert response.headers["location"].startswith("/login"), (method, path)
            assert "reason=expired" in response.headers["location"]
            page = thief.get(response.headers["location"])
            assert EXPIRED in page.text


def test_a_cookie_from_before_sign_in_is_not_a_session(browser: Browser) -> None:
    browser.csrf_token("/signup")
    before = browser.http.cookies["chat_session"]
    browser.sign_up()
    after = browser.http.cookies["chat_session"]
    assert after != before
    with httpx.Client(base_url=str(browser.http.base_url)) as planted:
        planted.cookies.set("chat_session", before)
        response = planted.get("/chats")
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login")


def test_sign_out_everywhere_ends_the_other_browsers(
    signed_in: Browser, chat_ui: ChatUiServer
) -> None:
    other = Browser(chat_ui.url)
    try:
        csrf = other.csrf_token("/login")
        other.http.post(
            "/login",
            data={
                "csrf_token": csrf,
                "username": signed_in.username,
                "password": signed_in.password,
            },
        )
        assert other.get("/chats").url.path == "/chats"
        signed_in.submit("/logout", {"everywhere": "1"})
        assert other.get("/chats").url.path == "/login"
        assert signed_in.get("/chats").url.path == "/login"
    finally:
        other.close()


def test_signing_out_one_browser_keeps_the_other(signed_in: Browser, chat_ui: ChatUiServer) -> None:
    other = Browser(chat_ui.url)
    try:
        csrf = other.csrf_token("/login")
        other.http.post(
            "/login",
            data={
                "csrf_token": csrf,
                "username": signed_in.username,
                "password": signed_in.password,
            },
        )
        signed_in.submit("/logout")
        assert other.get("/chats").url.path == "/chats"
    finally:
        other.close()

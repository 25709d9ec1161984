"""Sessions live in db-api: sign-out ends every copy of the cookie; sign-in rotates it."""

from __future__ import annotations

from starlette.testclient import TestClient

from harness.forms import Browser
from tests.support.inprocess import InProcessApp

EXPIRED = "Your session expired. Please sign in again."


def replay(inprocess: InProcessApp, cookie: str) -> TestClient:
    """Another client holding a copy of a cookie, as a thief would."""
    client = inprocess.client(follow_redirects=False)
    client.cookies.set("chat_session", cookie)
    return client


def test_sign_out_ends_a_copied_cookie_on_every_kind_of_route(
    signed_in: Browser, inprocess: InProcessApp
) -> None:
    chat_id = signed_in.new_chat()
    csrf = signed_in.csrf_token()
    stolen = signed_in.http.cookies["chat_session"]
    assert replay(inprocess, stolen).get("/chats").status_code == 200  # works while signed in
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
        thief = replay(inprocess, stolen)
        response = thief.request(method, path, data=form)
        assert response.status_code == 303, (method, path, response.status_code)
        assert response.headers["location"].startswith("/login"), (method, path)
        assert "reason=expired" in response.headers["location"]
        page = thief.get(response.headers["location"])
        assert EXPIRED in page.text


def test_a_cookie_from_before_sign_in_is_not_a_session(
    browser: Browser, inprocess: InProcessApp
) -> None:
    browser.csrf_token("/signup")
    before = browser.http.cookies["chat_session"]
    browser.sign_up()
    after = browser.http.cookies["chat_session"]
    assert after != before
    planted = inprocess.client(follow_redirects=False)
    planted.cookies.set("chat_session", before)
    response = planted.get("/chats")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")


def sign_in_elsewhere(inprocess: InProcessApp, user: Browser) -> Browser:
    other = inprocess.browser()
    other.http.post(
        "/login",
        data={
            "csrf_token": other.csrf_token("/login"),
            "username": user.username,
            "password": user.password,
        },
    )
    return other


def test_sign_out_everywhere_ends_the_other_browsers(
    signed_in: Browser, inprocess: InProcessApp
) -> None:
    other = sign_in_elsewhere(inprocess, signed_in)
    assert other.get("/chats").url.path == "/chats"
    signed_in.submit("/logout", {"everywhere": "1"})
    assert other.get("/chats").url.path == "/login"
    assert signed_in.get("/chats").url.path == "/login"


def test_signing_out_one_browser_keeps_the_other(
    signed_in: Browser, inprocess: InProcessApp
) -> None:
    other = sign_in_elsewhere(inprocess, signed_in)
    signed_in.submit("/logout")
    assert other.get("/chats").url.path == "/chats"

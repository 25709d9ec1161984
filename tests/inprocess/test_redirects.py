"""Every redirect chat-ui answers is a path on this site, whatever host the client names.

The client chooses `Host` (and may add `X-Forwarded-Host`); a `Location` built from
it would send the browser, or a cache in front, to that host. Routes come from the
app itself, so a new route is covered signed in and signed out without being listed.
"""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from chat_ui.main import app
from harness.factories import DEFAULT_PASSWORD, unique_username
from harness.forms import Browser, chat_id_of
from tests.support.inprocess import InProcessApp
from tests.support.routes import route_table

FORGED_HOST = {"Host": "evil.example", "X-Forwarded-Host": "evil.example"}
ROUTES = sorted(route_table(app))
# What each route's form gets: enough for the route to do its work and redirect.
FORM_FIELDS = {"content": "hello", "title": "renamed"}
# Routes that show a page or answer data rather than redirect, by who asks.
# The admin pages are the normal 404 for everyone but an admin (the fake has none); a
# reset link's page and form answer themselves, a link that does not work included.
ANSWERED_IN_PLACE = {route for route in ROUTES if route[1].startswith("/admin")} | {
    ("GET", "/reset-password"),
    ("POST", "/reset-password"),
}
NO_REDIRECT_SIGNED_OUT = {
    ("GET", "/login"),
    ("GET", "/signup"),
    ("GET", "/health"),
    ("GET", "/health/ready"),
} | ANSWERED_IN_PLACE
NO_REDIRECT_SIGNED_IN = (
    {route for route in ROUTES if route[0] == "GET"}
    - {
        ("GET", "/"),
        ("GET", "/login"),
        ("GET", "/signup"),
    }
) | ANSWERED_IN_PLACE


def assert_local(response: httpx.Response) -> str:
    """The response's Location, asserted to be a path that names no host."""
    location = response.headers["location"]
    parts = urlsplit(location)
    assert not parts.scheme and not parts.netloc, location
    assert location.startswith("/") and not location.startswith(("//", "/\\")), location
    assert "evil.example" not in location
    return location


@pytest.fixture
def account(inprocess: InProcessApp) -> Browser:
    """Another user, signed in on a browser of their own."""
    owner = inprocess.browser()
    owner.sign_up()
    return owner


def chat_with_a_reply(inprocess: InProcessApp, owner: Browser) -> tuple[str, int]:
    """A chat of `owner` with one finished reply: its id and the reply's."""
    response = owner.submit("/chats", {"content": "hello"})
    chat_id = chat_id_of(response)
    reply = inprocess.stored_chat(owner, chat_id)["messages"][-1]
    assert reply["role"] == "assistant" and reply["status"] == "complete", reply
    return chat_id, reply["id"]


def another_session_of(inprocess: InProcessApp, owner: Browser) -> str:
    """The id of a second sign-in of `owner` (on another browser), from the account page."""
    other = inprocess.browser()
    csrf = other.csrf_token()
    signed_in = other.http.post(
        "/login",
        data={"csrf_token": csrf, "username": owner.username, "password": DEFAULT_PASSWORD},
    )
    assert signed_in.status_code in (200, 303), signed_in.status_code
    found = re.search(r'name="session_id" value="([^"]+)"', owner.get("/account").text)
    assert found is not None
    return found.group(1)


def request_under_a_forged_host(
    inprocess: InProcessApp, browser: Browser, account: Browser, route: tuple[str, str]
) -> httpx.Response:
    """`route` as the browser's link or form would send it, with `Host: evil.example`."""
    method, template = route
    chat_id, reply_id = chat_with_a_reply(inprocess, browser if browser.username else account)
    path = template.format(
        chat_id=chat_id, message_id=reply_id, user_id=uuid.uuid4(), invite_id=uuid.uuid4()
    )
    form: dict[str, Any] = {"csrf_token": browser.csrf_token(), **FORM_FIELDS}
    if path == "/login":
        form |= {"username": account.username, "password": DEFAULT_PASSWORD}
    if path == "/signup":
        form |= {"username": unique_username("host"), "password": DEFAULT_PASSWORD}
        form["password_confirm"] = DEFAULT_PASSWORD
    if path == "/account/password":
        form |= {"current_password": DEFAULT_PASSWORD, "new_password": "another long password"}
        form["new_password_confirm"] = form["new_password"]
    if path == "/account/delete":
        form["password"] = DEFAULT_PASSWORD
    if path == "/account/sessions/end" and browser.username:
        form["session_id"] = another_session_of(inprocess, browser)
    # The browser's cookies as they are now (the CSRF token's session included).
    client = inprocess.client(follow_redirects=False, cookies=browser.http.cookies)
    response: httpx.Response = client.request(
        method, path, data=form if method != "GET" else None, headers=FORGED_HOST
    )
    return response


@pytest.mark.parametrize("route", ROUTES, ids=" ".join)
def test_signed_out_redirects_name_no_host(
    inprocess: InProcessApp, browser: Browser, account: Browser, route: tuple[str, str]
) -> None:
    response = request_under_a_forged_host(inprocess, browser, account, route)
    if route in NO_REDIRECT_SIGNED_OUT:
        assert not response.is_redirect, (route, response.status_code)
        return
    assert response.is_redirect, (route, response.status_code)
    assert_local(response)


@pytest.mark.parametrize("route", ROUTES, ids=" ".join)
def test_signed_in_redirects_name_no_host(
    inprocess: InProcessApp, signed_in: Browser, account: Browser, route: tuple[str, str]
) -> None:
    response = request_under_a_forged_host(inprocess, signed_in, account, route)
    if route in NO_REDIRECT_SIGNED_IN:
        assert not response.is_redirect, (route, response.status_code)
        return
    assert response.is_redirect, (route, response.status_code)
    assert_local(response)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/chats/", "/chats"),
        ("/chats/?q=paris", "/chats?q=paris"),
        ("/login/", "/login"),
        ("/signup/", "/signup"),
        ("/search/?q=x", "/search?q=x"),
        ("/static", "/static/"),
    ],
)
def test_trailing_slash_redirects_are_paths(
    inprocess: InProcessApp, path: str, expected: str
) -> None:
    response = inprocess.client(follow_redirects=False).get(path, headers=FORGED_HOST)
    assert response.status_code == 307
    assert assert_local(response) == expected


def test_a_chats_trailing_slash_redirect_is_a_path(
    inprocess: InProcessApp, signed_in: Browser
) -> None:
    chat_id = signed_in.new_chat()
    client = inprocess.client(follow_redirects=False, cookies=signed_in.http.cookies)
    response = client.get(f"/chats/{chat_id}/", headers=FORGED_HOST)
    assert response.status_code == 307
    assert assert_local(response) == f"/chats/{chat_id}"


# Ways to name another site where a path is expected.
FOREIGN_NEXT = [
    "//evil.example",
    "//evil.example/chats",
    "/\\evil.example",
    "\\\\evil.example",
    "/\t/evil.example",
    "https://evil.example/chats",
    "http:evil.example",
    "javascript:alert(1)",
    " //evil.example",
]


def sign_in_under_a_forged_host(
    inprocess: InProcessApp, account: Browser, next_path: str
) -> httpx.Response:
    browser = inprocess.browser()
    form = {
        "csrf_token": browser.csrf_token(),
        "username": account.username,
        "password": DEFAULT_PASSWORD,
        "next": next_path,
    }
    client = inprocess.client(follow_redirects=False, cookies=browser.http.cookies)
    response: httpx.Response = client.post("/login", data=form, headers=FORGED_HOST)
    return response


@pytest.mark.parametrize("next_path", FOREIGN_NEXT)
def test_sign_in_goes_only_to_a_local_next_path(
    inprocess: InProcessApp, account: Browser, next_path: str
) -> None:
    response = sign_in_under_a_forged_host(inprocess, account, next_path)
    assert response.status_code == 303
    assert assert_local(response) == "/chats"
    # Signed in, the sign-in page forwards to `next` at once: the same rule holds.
    client = inprocess.client(follow_redirects=False, cookies=response.cookies)
    again = client.get("/login", params={"next": next_path}, headers=FORGED_HOST)
    assert again.status_code == 303
    assert assert_local(again) == "/chats"


def test_sign_in_keeps_a_local_next_path(inprocess: InProcessApp, account: Browser) -> None:
    chat_id = account.new_chat()
    response = sign_in_under_a_forged_host(inprocess, account, f"/chats/{chat_id}")
    assert response.status_code == 303
    assert assert_local(response) == f"/chats/{chat_id}"

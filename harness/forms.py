"""Driving chat-ui like a browser with JavaScript off: forms, cookies, redirects, CSRF."""

from __future__ import annotations

import html
import re
import time
from typing import Any

import httpx

from harness.db_api import DbApiServer
from harness.factories import DEFAULT_PASSWORD, unique_username, user_headers

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
# The message box (id="content"); an edit form's textarea may come earlier in the page.
TEXTAREA = re.compile(r'<textarea[^>]*id="content"[^>]*>(.*?)</textarea>', re.DOTALL)
CHAT_PATH = re.compile(r"^/chats/([0-9a-f-]{36})$")

# A real reply on two CPU cores can take a while; nothing here is timing-sensitive.
REPLY_SECONDS = 300.0
CLIENT_TIMEOUT = httpx.Timeout(REPLY_SECONDS, connect=5.0)
# The chat page reloads itself, without script, while a reply is being written.
SELF_REFRESH = 'http-equiv="refresh"'
REFRESH_PAUSE_SECONDS = 0.25


class Browser:
    """An httpx client that keeps cookies, follows redirects and fills in the CSRF token."""

    def __init__(self, base_url: str = "", *, http: httpx.Client | None = None) -> None:
        """A browser on `base_url`, or on `http` (e.g. the in-process tier's TestClient)."""
        self.http = http or httpx.Client(
            base_url=base_url, follow_redirects=True, timeout=CLIENT_TIMEOUT
        )
        self.username = ""
        self.password = ""

    def close(self) -> None:
        self.http.close()

    def get(self, path: str) -> httpx.Response:
        return self.http.get(path)

    def csrf_token(self, page: str = "/login") -> str:
        return csrf_from(self.get(page).text)

    def submit(
        self, path: str, data: dict[str, str] | None = None, *, form_page: str = "/chats"
    ) -> httpx.Response:
        """POST a form the way the page would, with the session's CSRF token."""
        form = {"csrf_token": self.csrf_token(form_page), **(data or {})}
        return self.http.post(path, data=form)

    def sign_up(self, username: str | None = None, password: str = DEFAULT_PASSWORD) -> None:
        self.username, self.password = username or unique_username("ui"), password
        response = self.submit(
            "/signup",
            {"username": self.username, "password": password, "password_confirm": password},
            form_page="/signup",
        )
        assert response.status_code == 200, response.text
        assert response.url.path == "/chats"

    def until_written(self, page: httpx.Response) -> httpx.Response:
        """Reload `page` as it reloads itself, until no reply in it is being written."""
        deadline = time.monotonic() + REPLY_SECONDS
        while SELF_REFRESH in page.text:
            assert time.monotonic() < deadline, f"{page.url} still refreshing itself"
            time.sleep(REFRESH_PAUSE_SECONDS)
            page = self.get(page.url.path)
        return page

    def new_chat(self) -> str:
        """Start an empty chat and answer its id."""
        response = self.submit("/chats")
        assert response.status_code == 200, response.text
        return chat_id_of(response)


def csrf_from(page: str) -> str:
    match = CSRF_FIELD.search(page)
    assert match is not None, "no csrf_token field in the page"
    return html.unescape(match.group(1))


def textarea_text(page: str) -> str:
    match = TEXTAREA.search(page)
    assert match is not None, "no textarea in the page"
    return html.unescape(match.group(1))


def chat_id_of(response: httpx.Response) -> str:
    match = CHAT_PATH.match(response.url.path)
    assert match is not None, f"not a chat page: {response.url}"
    return match.group(1)


def user_id_of(db_api: DbApiServer, browser: Browser) -> str:
    """The signed-up user's id, asked of db-api directly."""
    response = httpx.post(
        f"{db_api.url}/users/verify",
        json={"username": browser.username, "password": browser.password},
        headers={"Authorization": f"Bearer {db_api.service_token}"},
    )
    assert response.status_code == 200, response.text
    user_id: str = response.json()["id"]
    return user_id


def stored_chat(db_api: DbApiServer, browser: Browser, chat_id: str) -> dict[str, Any]:
    """The chat with its messages as db-api has them."""
    response = httpx.get(
        f"{db_api.url}/chats/{chat_id}",
        headers={
            "Authorization": f"Bearer {db_api.service_token}",
            **user_headers(user_id_of(db_api, browser)),
        },
    )
    assert response.status_code == 200, response.text
    chat: dict[str, Any] = response.json()
    return chat


def post_sign_up(client: httpx.Client, signup_page: str) -> httpx.Response:
    """Submit the sign-up form of `signup_page` for a new user, without following the redirect."""
    return client.post(
        "/signup",
        data={
            "username": unique_username("form"),
            "password": DEFAULT_PASSWORD,
            "password_confirm": DEFAULT_PASSWORD,
            "csrf_token": csrf_from(signup_page),
        },
    )

"""The session cookie's name and flags follow the scheme the request came over.

Under HTTPS it is `__Host-chat_session`: Secure, `Path=/`, no `Domain`, which is what
browsers require of the prefix. Over plain HTTP (a LAN address, native mode) it keeps
the plain name, since browsers refuse a `__Host-` cookie without Secure. Each scheme
reads only its own name.
"""

from __future__ import annotations

import pytest

from chat_ui.sessions import SECURE_SESSION_COOKIE, SESSION_COOKIE
from harness.forms import Browser
from tests.support.inprocess import InProcessApp

PLAIN, HTTPS = "http://testserver", "https://testserver"


def attributes(set_cookie: str) -> set[str]:
    return {part.strip().lower().split("=", 1)[0] for part in set_cookie.split(";")[1:]}


def test_over_plain_http_the_cookie_has_the_plain_name(browser: Browser) -> None:
    cookie = browser.get("/login").headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "secure" not in attributes(cookie)


def test_over_https_the_cookie_is_host_prefixed(inprocess: InProcessApp) -> None:
    browser = inprocess.browser(base_url=HTTPS)
    cookie = browser.get("/login").headers["set-cookie"]
    assert cookie.startswith(f"{SECURE_SESSION_COOKIE}=")
    assert {"secure", "path", "httponly", "samesite"} <= attributes(cookie)
    assert "path=/;" in cookie.lower()
    assert "domain" not in attributes(cookie)
    browser.sign_up()
    assert browser.get("/chats").url.path == "/chats"
    assert {cookie.name for cookie in browser.http.cookies.jar} == {SECURE_SESSION_COOKIE}


def test_signing_out_over_https_replaces_the_prefixed_cookie(inprocess: InProcessApp) -> None:
    browser = inprocess.browser(base_url=HTTPS)
    browser.sign_up()
    signed_in = browser.http.cookies[SECURE_SESSION_COOKIE]
    response = browser.submit("/logout")
    (redirect,) = response.history
    replaced = redirect.headers["set-cookie"]
    # What is left holds only the one-shot "You are signed out" notice, no sign-in.
    assert replaced.startswith(f"{SECURE_SESSION_COOKIE}=")
    assert signed_in not in replaced
    # A browser takes the new value only with the same prefix rules: Secure and Path=/.
    assert {"secure", "path"} <= attributes(replaced) and "path=/;" in replaced.lower()
    assert "You are signed out" in response.text
    assert browser.get("/chats").url.path == "/login"


@pytest.mark.parametrize(
    ("signed_in_over", "name", "replayed_over"),
    [(PLAIN, SESSION_COOKIE, HTTPS), (HTTPS, SECURE_SESSION_COOKIE, PLAIN)],
)
def test_each_scheme_reads_only_its_own_cookie(
    inprocess: InProcessApp, signed_in_over: str, name: str, replayed_over: str
) -> None:
    """A signed-in cookie under the other scheme's name is no session at all."""
    browser = inprocess.browser(base_url=signed_in_over)
    browser.sign_up()
    value = browser.http.cookies[name]

    def chats_page_over(base_url: str) -> int:
        client = inprocess.client(base_url=base_url, follow_redirects=False)
        client.cookies.set(name, value)
        status: int = client.get("/chats").status_code
        return status

    assert chats_page_over(signed_in_over) == 200
    assert chats_page_over(replayed_over) == 303  # to sign in


@pytest.mark.parametrize(("base_url", "expired"), [(HTTPS, True), (PLAIN, False)])
def test_only_this_schemes_stale_cookie_counts_as_expired(
    inprocess: InProcessApp, base_url: str, expired: bool
) -> None:
    client = inprocess.client(base_url=base_url, follow_redirects=False)
    client.cookies.set(SECURE_SESSION_COOKIE, "signed-with-another-key")
    response = client.get("/chats")
    assert response.status_code == 303
    assert ("reason=expired" in response.headers["location"]) is expired

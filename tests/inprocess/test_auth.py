"""Sign-up, sign-in, sign-out and sessions, through chat-ui's real pages."""

from __future__ import annotations

import base64
import json

import itsdangerous

from harness.factories import DEFAULT_PASSWORD, unique_username
from harness.forms import Browser
from tests.support.inprocess import InProcessApp


def test_liveness(inprocess: InProcessApp) -> None:
    response = inprocess.client().get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readiness_reports_what_is_down(inprocess: InProcessApp) -> None:
    client = inprocess.client()
    assert client.get("/health/ready").json()["checks"] == {"db_api": "ok", "lm_api": "ok"}
    inprocess.model.state = "loading"
    response = client.get("/health/ready")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"db_api": "ok", "lm_api": "loading"},
    }


def test_signed_out_home_and_chats_lead_to_sign_in(browser: Browser) -> None:
    response = browser.get("/")
    assert response.url.path == "/login"
    response = browser.get("/chats")
    assert response.url.path == "/login"
    assert response.url.params["next"] == "/chats"


def test_pages_carry_security_headers_and_are_accessible(browser: Browser) -> None:
    response = browser.get("/login")
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "script-src 'self'" in csp
    assert "style-src 'self'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    page = response.text
    assert '<html lang="en">' in page
    assert 'name="viewport"' in page
    assert '<label for="username">' in page
    assert '<label for="password">' in page
    # The CSP forbids inline code, so the pages must not rely on any.
    assert "<script>" not in page
    assert "style=" not in page


def test_session_cookie_flags(browser: Browser) -> None:
    response = browser.get("/login")
    cookie = response.headers["set-cookie"].lower()
    assert cookie.startswith("chat_session=")
    assert "httponly" in cookie
    assert "samesite=lax" in cookie


def test_sign_up_signs_in_and_shows_the_username(signed_in: Browser) -> None:
    page = signed_in.get("/chats")
    assert page.status_code == 200
    assert signed_in.username in page.text
    assert "New chat" in page.text
    assert signed_in.get("/").url.path == "/chats"


def test_sign_up_rejects_a_taken_username_keeping_it(
    signed_in: Browser, inprocess: InProcessApp
) -> None:
    other = inprocess.browser()
    taken = signed_in.username.upper()
    response = other.submit(
        "/signup",
        {"username": taken, "password": DEFAULT_PASSWORD, "password_confirm": DEFAULT_PASSWORD},
        form_page="/signup",
    )
    assert response.status_code == 409
    assert "That username is taken" in response.text
    assert f'value="{taken}"' in response.text
    assert DEFAULT_PASSWORD not in response.text


def test_sign_up_shows_validation_errors(browser: Browser) -> None:
    username = unique_username("val")
    cases = [
        ({"password": "short", "password_confirm": "short"}, "8 to 128 characters"),
        (
            {"password": DEFAULT_PASSWORD, "password_confirm": DEFAULT_PASSWORD + "x"},
            "do not match",
        ),
    ]
    for fields, message in cases:
        response = browser.submit("/signup", {"username": username, **fields}, form_page="/signup")
        assert response.status_code == 422
        assert message in response.text
        assert f'value="{username}"' in response.text
    response = browser.submit(
        "/signup",
        {"username": "a!", "password": DEFAULT_PASSWORD, "password_confirm": DEFAULT_PASSWORD},
        form_page="/signup",
    )
    assert response.status_code == 422
    assert "3 to 32 characters" in response.text


def test_wrong_password_keeps_the_username_only(
    signed_in: Browser, inprocess: InProcessApp
) -> None:
    visitor = inprocess.browser()
    response = visitor.submit(
        "/login",
        {"username": signed_in.username, "password": "not the password"},
        form_page="/login",
    )
    assert response.status_code == 401
    assert "Wrong username or password." in response.text
    assert f'value="{signed_in.username}"' in response.text
    assert "not the password" not in response.text


def test_sign_in_goes_to_the_requested_local_page(
    signed_in: Browser, inprocess: InProcessApp
) -> None:
    chat_id = signed_in.new_chat()
    visitor = inprocess.browser()
    login_page = visitor.get(f"/chats/{chat_id}")
    assert login_page.url.path == "/login"
    response = visitor.http.post(
        "/login",
        data={
            "csrf_token": visitor.csrf_token(),
            "username": signed_in.username,
            "password": signed_in.password,
            "next": f"/chats/{chat_id}",
        },
    )
    assert response.url.path == f"/chats/{chat_id}"

    visitor.submit("/logout")
    response = visitor.http.post(
        "/login",
        data={
            "csrf_token": visitor.csrf_token(),
            "username": signed_in.username,
            "password": signed_in.password,
            "next": "//evil.example/",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/chats"


def test_sign_in_rotates_the_session_and_csrf_token(
    signed_in: Browser, inprocess: InProcessApp
) -> None:
    visitor = inprocess.browser()
    before = visitor.csrf_token("/login")
    visitor.http.post(
        "/login",
        data={"csrf_token": before, "username": signed_in.username, "password": signed_in.password},
    )
    after = visitor.csrf_token("/chats")
    assert after != before


def test_log_out_then_chats_lead_to_sign_in(signed_in: Browser) -> None:
    response = signed_in.submit("/logout")
    assert response.url.path == "/login"
    page = signed_in.get("/chats")
    assert page.url.path == "/login"
    assert signed_in.username not in page.text


def test_log_out_without_csrf_is_refused(signed_in: Browser) -> None:
    response = signed_in.http.post("/logout", data={})
    assert response.status_code == 403
    assert "Your session expired or the form is stale" in response.text
    assert signed_in.get("/chats").url.path == "/chats"


def test_login_without_csrf_is_refused(browser: Browser) -> None:
    username = unique_username("nocsrf")
    response = browser.http.post("/login", data={"username": username, "password": "whatever1"})
    assert response.status_code == 403
    assert "Your session expired or the form is stale" in response.text
    assert f'value="{username}"' in response.text


def test_expired_or_foreign_cookie_asks_to_sign_in_again(inprocess: InProcessApp) -> None:
    # A cookie signed with another key looks exactly like one past its max age.
    payload = base64.b64encode(json.dumps({"user_id": "x", "username": "x"}).encode())
    forged = itsdangerous.TimestampSigner("another-secret-entirely-0123456789").sign(payload)
    client = inprocess.client(follow_redirects=True)
    client.cookies.set("chat_session", forged.decode())
    response = client.get("/chats")
    assert response.url.path == "/login"
    assert "Your session expired. Please sign in again." in response.text


def test_unknown_pages_are_friendly(browser: Browser) -> None:
    response = browser.get("/no/such/page")
    assert response.status_code == 404
    assert "We could not find that page." in response.text
    assert "Traceback" not in response.text


def test_repeated_wrong_passwords_say_when_to_try_again(
    signed_in: Browser, inprocess: InProcessApp
) -> None:
    visitor = inprocess.browser()
    for _attempt in range(5):
        wrong = {"username": signed_in.username, "password": "not the password"}
        assert visitor.submit("/login", wrong, form_page="/login").status_code == 401
    response = visitor.submit(
        "/login",
        {"username": signed_in.username, "password": signed_in.password},
        form_page="/login",
    )
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) > 0
    assert f'value="{signed_in.username}"' in response.text

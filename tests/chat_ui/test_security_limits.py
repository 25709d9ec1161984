"""Login throttling across replicas, cookie flags, and request size limits, through chat-ui."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest

from harness.chat_ui import ChatUiServer, running_chat_ui
from harness.db_api import DbApiServer, running_db_api
from harness.forms import Browser, csrf_from
from harness.llama import LlamaServer
from harness.postgres import PostgresCluster

IP_MAX = 4


@pytest.fixture(scope="module")
def two_replicas(postgres: PostgresCluster, llama_server: LlamaServer) -> Iterator[list[str]]:
    """Two chat-ui replicas on one db-api that throttles an address after IP_MAX failures."""
    throttling = {"LOGIN_IP_MAX_FAILURES": str(IP_MAX), "LOGIN_LOCK_SECONDS": "60"}
    with (
        running_db_api(postgres, database="chat_ui_throttling", extra_env=throttling) as db_api,
        running_chat_ui(db_api, llama_server.url) as first,
        running_chat_ui(db_api, llama_server.url) as second,
    ):
        yield [first.url, second.url]


def log_in(url: str, username: str, password: str, ip: str) -> httpx.Response:
    # chat-ui trusts X-Forwarded-For from 127.0.0.1, as it does from nginx.
    with httpx.Client(base_url=url, headers={"X-Forwarded-For": ip}) as client:
        csrf = csrf_from(client.get("/login").text)
        return client.post(
            "/login", data={"csrf_token": csrf, "username": username, "password": password}
        )


def test_failures_count_per_address_across_replicas(two_replicas: list[str]) -> None:
    owner = Browser(two_replicas[0])
    try:
        owner.sign_up()
    finally:
        owner.close()
    attacker = f"192.0.2.{secrets.randbelow(250) + 1}"
    for attempt in range(IP_MAX):
        response = log_in(two_replicas[attempt % 2], f"nobody{attempt}", "wrong-password", attacker)
        assert response.status_code == 401
    # The address guessed on nobody0 through the first replica; the second refuses it too.
    locked = log_in(two_replicas[1], "nobody0", owner.password, attacker)
    assert locked.status_code == 429
    assert 1 <= int(locked.headers["Retry-After"]) <= 300
    assert "Too many attempts. Try again in" in locked.text
    assert 'value="nobody0"' in locked.text
    assert owner.password not in locked.text


def test_an_attackers_failures_do_not_lock_out_a_victim_behind_the_same_address(
    two_replicas: list[str],
) -> None:
    """20 failed sign-ins from one address (a household's NAT), then another member's."""
    victim = Browser(two_replicas[0])
    try:
        victim.sign_up()
    finally:
        victim.close()
    shared = f"198.51.100.{secrets.randbelow(250) + 1}"
    for attempt in range(20):
        response = log_in(two_replicas[attempt % 2], f"target{attempt % 3}", "guess-guess", shared)
        assert response.status_code in (401, 429)
    signed_in = log_in(two_replicas[1], victim.username, victim.password, shared)
    assert signed_in.status_code == 303, signed_in.text


def test_cookie_flags(
    chat_ui: ChatUiServer, db_api: DbApiServer, llama_server: LlamaServer
) -> None:
    response = httpx.get(f"{chat_ui.url}/login")
    cookie = response.headers["set-cookie"].lower()
    for flag in ("httponly", "samesite=lax", "path=/", "max-age=1209600"):
        assert flag in cookie
    assert "secure" not in cookie  # plain HTTP on loopback
    assert cookie.startswith("chat_session=")
    # Behind HTTPS (nginx says so in X-Forwarded-Proto) the cookie is Secure and
    # `__Host-` prefixed by itself.
    https = httpx.get(f"{chat_ui.url}/login", headers={"X-Forwarded-Proto": "https"})
    assert https.headers["set-cookie"].startswith("__Host-chat_session=")
    assert "; secure" in https.headers["set-cookie"].lower()
    with running_chat_ui(db_api, llama_server.url, extra_env={"COOKIE_SECURE": "true"}) as secure:
        forced = httpx.get(f"{secure.url}/login").headers["set-cookie"]
        assert forced.startswith("__Host-chat_session=")
        assert "; secure" in forced.lower() and "httponly" in forced.lower()


def test_oversized_bodies_get_a_readable_413(signed_in: Browser) -> None:
    chat_id = signed_in.new_chat()
    csrf = signed_in.csrf_token()
    body = {"csrf_token": csrf, "content": "x" * (200 * 1024)}
    declared = signed_in.http.post(f"/chats/{chat_id}/messages", data=body)
    assert declared.status_code == 413
    assert "too much text to send at once" in declared.text

    def chunks() -> Iterator[bytes]:
        yield f"csrf_token={csrf}&content=".encode()
        for _ in range(200):
            yield b"y" * 1024

    chunked = signed_in.http.post(
        f"/chats/{chat_id}/messages",
        content=chunks(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert chunked.status_code == 413
    # A long but allowed message is not caught by the limit (the form explains its own).
    allowed = signed_in.http.post(
        f"/chats/{chat_id}/rename", data={"csrf_token": csrf, "title": "é" * 200}
    )
    assert allowed.status_code == 200


def test_db_api_refuses_oversized_bodies(db_api: DbApiServer) -> None:
    response = httpx.post(
        f"{db_api.url}/users",
        content=b"{" + b" " * (1024 * 1024 + 1) + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert "larger than" in response.json()["detail"]


@pytest.fixture(scope="module")
def few_signups(postgres: PostgresCluster, llama_server: LlamaServer) -> Iterator[str]:
    """A chat-ui whose db-api lets one address sign up two accounts, then one an hour."""
    limits = {"SIGNUP_BURST": "2", "SIGNUPS_PER_HOUR": "1"}
    with (
        running_db_api(postgres, database="chat_ui_signups", extra_env=limits) as db_api,
        running_chat_ui(db_api, llama_server.url) as server,
    ):
        yield server.url


def sign_up_from(url: str, username: str, ip: str) -> httpx.Response:
    with httpx.Client(base_url=url, headers={"X-Forwarded-For": ip}) as client:
        csrf = csrf_from(client.get("/signup").text)
        form = {"username": username, "password": "a long password", "password_confirm": ""}
        form["password_confirm"] = form["password"]
        return client.post("/signup", data={"csrf_token": csrf, **form})


def test_sign_ups_from_one_address_are_limited_and_say_when_to_try_again(
    few_signups: str,
) -> None:
    household = f"198.18.0.{secrets.randbelow(250) + 1}"
    names = [f"member{secrets.token_hex(4)}" for _ in range(3)]
    assert [sign_up_from(few_signups, name, household).status_code for name in names[:2]] == [
        303,
        303,
    ]
    refused = sign_up_from(few_signups, names[2], household)
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 60
    assert "Too many accounts were created from your address recently. Try again in" in (
        refused.text
    )
    assert f'value="{names[2]}"' in refused.text  # the name typed is kept
    assert "a long password" not in refused.text
    assert sign_up_from(few_signups, names[2], "198.18.1.1").status_code == 303

"""Failed sign-ins are throttled per account from one address, per account from every
address, and per client address.

So guessing is slow from anywhere, yet failures from one address never lock the owner
out when they sign in from another, and one guesser behind a household's shared
address does not lock out everyone behind it. Counts live in PostgreSQL: every
replica sees them.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import httpx
import pytest

from harness.db_api import running_db_api
from harness.factories import DEFAULT_PASSWORD, auth_headers, create_user, unique_username
from harness.postgres import PostgresCluster

ACCOUNT_MAX = 3
IP_MAX = 5
LOCK_SECONDS = 30
# Failures on one account from every address before each further attempt waits.
SPREAD_MAX = 6


@pytest.fixture(scope="module")
def throttled_client(postgres: PostgresCluster) -> Iterator[httpx.Client]:
    throttling = {
        "LOGIN_MAX_FAILURES": str(ACCOUNT_MAX),
        "LOGIN_LOCK_SECONDS": str(LOCK_SECONDS),
        "LOGIN_IP_MAX_FAILURES": str(IP_MAX),
        "LOGIN_IP_WINDOW_SECONDS": "600",
        "LOGIN_ACCOUNT_MAX_FAILURES": str(SPREAD_MAX),
        "LOGIN_MAX_DELAY_SECONDS": "8",
    }
    with (
        running_db_api(postgres, database="db_api_ip_throttling", extra_env=throttling) as server,
        httpx.Client(base_url=server.url, headers=auth_headers(server.service_token)) as client,
    ):
        yield client


def verify(client: httpx.Client, username: str, password: str, ip: str) -> httpx.Response:
    return client.post(
        "/users/verify", json={"username": username, "password": password, "client_ip": ip}
    )


def fresh_ip() -> str:
    """A private address no other test uses, so each test starts with clean counts."""
    octets = [secrets.randbelow(250) + 1 for _ in range(3)]
    return "10." + ".".join(map(str, octets))


def test_an_attacker_cannot_lock_the_owner_out(throttled_client: httpx.Client) -> None:
    owner = create_user(throttled_client)
    attacker, owner_ip = fresh_ip(), fresh_ip()
    for _ in range(ACCOUNT_MAX):
        assert (
            verify(throttled_client, owner["username"], "guess-guess", attacker).status_code == 401
        )
    locked = verify(throttled_client, owner["username"], DEFAULT_PASSWORD, attacker)
    assert locked.status_code == 429  # even the right password: no oracle for the attacker
    assert 1 <= int(locked.headers["Retry-After"]) <= LOCK_SECONDS
    # The owner, elsewhere, signs in while the attacker keeps failing.
    for _ in range(3):
        assert (
            verify(throttled_client, owner["username"], DEFAULT_PASSWORD, owner_ip).status_code
            == 200
        )
        assert (
            verify(throttled_client, owner["username"], "guess-guess", attacker).status_code == 429
        )


def test_one_address_guessing_many_accounts_is_refused_for_them(
    throttled_client: httpx.Client,
) -> None:
    victims = [create_user(throttled_client) for _ in range(IP_MAX)]
    spray, bystander = fresh_ip(), fresh_ip()
    for victim in victims:
        assert verify(throttled_client, victim["username"], "Summer2026!", spray).status_code == 401
    # Another guess at an account it failed on: refused, whatever the password.
    again = verify(throttled_client, victims[0]["username"], DEFAULT_PASSWORD, spray)
    assert again.status_code == 429
    assert again.json() == {"detail": "Too many failed logins; try again later"}
    assert 1 <= int(again.headers["Retry-After"]) <= 600
    # From elsewhere the owner signs in as usual.
    assert (
        verify(throttled_client, victims[0]["username"], DEFAULT_PASSWORD, bystander).status_code
        == 200
    )


def test_a_guesser_behind_the_same_address_does_not_lock_out_the_others(
    throttled_client: httpx.Client,
) -> None:
    """A household behind one NAT: one member's guesses, another member's right password."""
    shared = fresh_ip()
    for _ in range(IP_MAX * 4):
        response = verify(throttled_client, unique_username("guess"), "wrong-password", shared)
        assert response.status_code in (401, 429)
    victim = create_user(throttled_client)
    assert verify(throttled_client, victim["username"], DEFAULT_PASSWORD, shared).status_code == 200
    # A wrong password for that account from there counts, and the next try waits.
    assert verify(throttled_client, victim["username"], "wrong-password", shared).status_code == 401
    assert verify(throttled_client, victim["username"], DEFAULT_PASSWORD, shared).status_code == 429


def test_a_success_does_not_reset_the_address_count(throttled_client: httpx.Client) -> None:
    own = create_user(throttled_client)
    others = [create_user(throttled_client) for _ in range(IP_MAX)]
    ip = fresh_ip()
    for other in others:
        assert verify(throttled_client, own["username"], DEFAULT_PASSWORD, ip).status_code == 200
        assert verify(throttled_client, other["username"], "wrong-password", ip).status_code == 401
    assert verify(throttled_client, others[0]["username"], "wrong-password", ip).status_code == 429


def test_guessing_one_account_from_many_addresses_waits_longer_each_time(
    throttled_client: httpx.Client,
) -> None:
    target = create_user(throttled_client)
    for _ in range(SPREAD_MAX):
        assert (
            verify(throttled_client, target["username"], "wrong-password", fresh_ip()).status_code
            == 401
        )
    # Under attack: every address waits now, the owner too, but only for a moment.
    first_wait = verify(throttled_client, target["username"], DEFAULT_PASSWORD, fresh_ip())
    assert first_wait.status_code == 429
    assert int(first_wait.headers["Retry-After"]) == 1
    time.sleep(1.1)
    assert (
        verify(throttled_client, target["username"], "wrong-password", fresh_ip()).status_code
        == 401
    )
    second_wait = verify(throttled_client, target["username"], DEFAULT_PASSWORD, fresh_ip())
    assert int(second_wait.headers["Retry-After"]) == 2
    time.sleep(2.1)
    # The wait is over: the right password signs in.
    assert (
        verify(throttled_client, target["username"], DEFAULT_PASSWORD, fresh_ip()).status_code
        == 200
    )


def test_unknown_usernames_are_throttled_like_real_ones(throttled_client: httpx.Client) -> None:
    ip = fresh_ip()
    name = unique_username("ghost")
    answers = [
        verify(throttled_client, name, "wrong-password", ip).status_code for _ in range(ACCOUNT_MAX)
    ]
    assert answers == [401] * ACCOUNT_MAX
    assert verify(throttled_client, name, "wrong-password", ip).status_code == 429


def test_an_ipv6_client_counts_as_its_whole_64(throttled_client: httpx.Client) -> None:
    prefix = f"2001:db8:{secrets.randbelow(0xFFFF):x}:{secrets.randbelow(0xFFFF):x}"
    names = [unique_username("v6") for _ in range(IP_MAX)]
    for host, name in enumerate(names, start=1):
        response = verify(throttled_client, name, "wrong-password", f"{prefix}::{host}")
        assert response.status_code == 401
    stepped = verify(throttled_client, names[0], "wrong-password", f"{prefix}::ffff")
    assert stepped.status_code == 429


def test_a_malformed_client_address_is_refused(throttled_client: httpx.Client) -> None:
    response = verify(throttled_client, "someone", "whatever-password", "not-an-ip")
    assert response.status_code == 422

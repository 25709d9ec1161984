"""Failed sign-ins are throttled per client address and per account from that address.

So guessing is slow from anywhere, yet failures from one address never lock the owner
out when they sign in from another. Counts live in PostgreSQL: every replica sees them.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest

from harness.db_api import running_db_api
from harness.factories import DEFAULT_PASSWORD, auth_headers, create_user, unique_username
from harness.postgres import PostgresCluster

ACCOUNT_MAX = 3
IP_MAX = 5
LOCK_SECONDS = 30


@pytest.fixture(scope="module")
def throttled_client(postgres: PostgresCluster) -> Iterator[httpx.Client]:
    throttling = {
        "LOGIN_MAX_FAILURES": str(ACCOUNT_MAX),
        "LOGIN_LOCK_SECONDS": str(LOCK_SECONDS),
        "LOGIN_IP_MAX_FAILURES": str(IP_MAX),
        "LOGIN_IP_WINDOW_SECONDS": "600",
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


def test_one_address_guessing_many_accounts_is_locked(throttled_client: httpx.Client) -> None:
    victims = [create_user(throttled_client) for _ in range(IP_MAX + 1)]
    spray, bystander = fresh_ip(), fresh_ip()
    for victim in victims[:IP_MAX]:
        assert verify(throttled_client, victim["username"], "Summer2026!", spray).status_code == 401
    last = victims[IP_MAX]
    locked = verify(throttled_client, last["username"], DEFAULT_PASSWORD, spray)
    assert locked.status_code == 429
    assert locked.json() == {"detail": "Too many failed logins; try again later"}
    assert 1 <= int(locked.headers["Retry-After"]) <= LOCK_SECONDS
    assert (
        verify(throttled_client, last["username"], DEFAULT_PASSWORD, bystander).status_code == 200
    )


def test_a_success_does_not_reset_the_address_count(throttled_client: httpx.Client) -> None:
    own = create_user(throttled_client)
    others = [create_user(throttled_client) for _ in range(IP_MAX)]
    ip = fresh_ip()
    for other in others:
        assert verify(throttled_client, own["username"], DEFAULT_PASSWORD, ip).status_code == 200
        assert verify(throttled_client, other["username"], "wrong-password", ip).status_code == 401
    assert verify(throttled_client, own["username"], DEFAULT_PASSWORD, ip).status_code == 429


def test_unknown_usernames_are_throttled_like_real_ones(throttled_client: httpx.Client) -> None:
    ip = fresh_ip()
    name = unique_username("ghost")
    answers = [
        verify(throttled_client, name, "wrong-password", ip).status_code for _ in range(ACCOUNT_MAX)
    ]
    assert answers == [401] * ACCOUNT_MAX
    assert verify(throttled_client, name, "wrong-password", ip).status_code == 429


def test_an_ipv6_client_counts_as_its_whole_64(throttled_client: httpx.Client) -> None:
    user = create_user(throttled_client)
    prefix = f"2001:db8:{secrets.randbelow(0xFFFF):x}:{secrets.randbelow(0xFFFF):x}"
    for host in range(1, IP_MAX + 1):
        response = verify(
            throttled_client, unique_username("v6"), "wrong-password", f"{prefix}::{host}"
        )
        assert response.status_code == 401
    stepped = verify(throttled_client, user["username"], DEFAULT_PASSWORD, f"{prefix}::ffff")
    assert stepped.status_code == 429


def test_a_malformed_client_address_is_refused(throttled_client: httpx.Client) -> None:
    response = verify(throttled_client, "someone", "whatever-password", "not-an-ip")
    assert response.status_code == 422

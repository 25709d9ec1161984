"""Sign-ups are limited per client address, names found taken included (PostgreSQL counts)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import create_engine, func, select, text

from harness.db_api import running_db_api
from harness.factories import DEFAULT_PASSWORD, auth_headers, unique_username
from harness.postgres import PostgresCluster

BURST = 3
PER_HOUR = 6


@pytest.fixture(scope="module")
def limited(postgres: PostgresCluster) -> Iterator[tuple[httpx.Client, str]]:
    limits = {"SIGNUP_BURST": str(BURST), "SIGNUPS_PER_HOUR": str(PER_HOUR)}
    with (
        running_db_api(postgres, database="db_api_signups", extra_env=limits) as server,
        httpx.Client(base_url=server.url, headers=auth_headers(server.service_token)) as client,
    ):
        yield client, server.database_url


def sign_up(client: httpx.Client, ip: str | None, username: str | None = None) -> httpx.Response:
    body = {"username": username or unique_username("new"), "password": DEFAULT_PASSWORD}
    if ip is not None:
        body["client_ip"] = ip
    return client.post("/users", json=body)


def fresh_ip() -> str:
    return "10." + ".".join(str(secrets.randbelow(250) + 1) for _ in range(3))


def users_named(database_url: str, username: str) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            query = select(func.count()).select_from(text("users"))
            return int(
                connection.execute(
                    query.where(text("username = :name")), {"name": username}
                ).scalar_one()
            )
    finally:
        engine.dispose()


def test_an_address_gets_a_burst_of_sign_ups_then_waits(limited: tuple[httpx.Client, str]) -> None:
    client, database_url = limited
    ip, elsewhere = fresh_ip(), fresh_ip()
    assert [sign_up(client, ip).status_code for _ in range(BURST)] == [201] * BURST
    name = unique_username("late")
    refused = sign_up(client, ip, name)
    assert refused.status_code == 429
    assert refused.json()["detail"] == "Too many accounts created from this address in a short time"
    # The next one comes after 60 / 6 = 10 minutes.
    assert 1 <= int(refused.headers["Retry-After"]) <= 3600 // PER_HOUR
    assert users_named(database_url, name) == 0
    # Other addresses, and services naming none, are not held up.
    assert sign_up(client, elsewhere).status_code == 201
    assert sign_up(client, None).status_code == 201


def test_names_found_taken_count_too(limited: tuple[httpx.Client, str]) -> None:
    """Probing which names exist is as slow as making accounts."""
    client, _url = limited
    taken = unique_username("taken")
    assert sign_up(client, None, taken).status_code == 201
    prober = fresh_ip()
    assert [sign_up(client, prober, taken).status_code for _ in range(BURST)] == [409] * BURST
    # Out of tokens: the answer no longer says whether the name exists.
    assert sign_up(client, prober, taken).status_code == 429
    assert sign_up(client, prober, unique_username("free")).status_code == 429


def test_an_ipv6_client_counts_as_its_whole_64(limited: tuple[httpx.Client, str]) -> None:
    client, _url = limited
    prefix = f"2001:db8:{secrets.randbelow(0xFFFF):x}:{secrets.randbelow(0xFFFF):x}"
    answers = [sign_up(client, f"{prefix}::{host}").status_code for host in range(1, BURST + 2)]
    assert answers == [201] * BURST + [429]

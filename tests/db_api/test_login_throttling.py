"""Repeated wrong passwords lock an account for a while (429 with Retry-After)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import create_engine, text

from harness.db_api import DbApiServer, running_db_api
from harness.factories import DEFAULT_PASSWORD, auth_headers, create_user
from harness.postgres import PostgresCluster

MAX_FAILURES = 3
LOCK_SECONDS = 2


@pytest.fixture(scope="module")
def strict_db_api(postgres: PostgresCluster) -> Iterator[DbApiServer]:
    """A second db-api that locks after few failures, for a short time."""
    throttling = {"LOGIN_MAX_FAILURES": str(MAX_FAILURES), "LOGIN_LOCK_SECONDS": str(LOCK_SECONDS)}
    with running_db_api(postgres, database="db_api_throttling", extra_env=throttling) as server:
        yield server


@pytest.fixture
def strict_client(strict_db_api: DbApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=strict_db_api.url, headers=auth_headers(strict_db_api.service_token)
    ) as client:
        yield client


def _verify(client: httpx.Client, username: str, password: str) -> httpx.Response:
    return client.post("/users/verify", json={"username": username, "password": password})


def test_account_locks_after_max_failures_then_recovers(strict_client: httpx.Client) -> None:
    user = create_user(strict_client)
    for _ in range(MAX_FAILURES):
        assert _verify(strict_client, user["username"], "wrong password").status_code == 401

    locked = _verify(strict_client, user["username"], DEFAULT_PASSWORD)
    assert locked.status_code == 429
    assert locked.json() == {"detail": "Too many failed logins; try again later"}
    assert 1 <= int(locked.headers["Retry-After"]) <= LOCK_SECONDS

    time.sleep(int(locked.headers["Retry-After"]))
    assert _verify(strict_client, user["username"], DEFAULT_PASSWORD).status_code == 200


def test_success_resets_the_failure_count(strict_client: httpx.Client) -> None:
    user = create_user(strict_client)
    for _ in range(3):
        for _ in range(MAX_FAILURES - 1):
            assert _verify(strict_client, user["username"], "wrong password").status_code == 401
        assert _verify(strict_client, user["username"], DEFAULT_PASSWORD).status_code == 200


def test_default_lock_answers_retry_after_in_seconds(db_api_client: httpx.Client) -> None:
    user = create_user(db_api_client)
    for _ in range(5):
        assert _verify(db_api_client, user["username"], "wrong password").status_code == 401
    locked = _verify(db_api_client, user["username"], "wrong password")
    assert locked.status_code == 429
    assert 1 <= int(locked.headers["Retry-After"]) <= 60


def test_a_wrong_password_forgets_counts_that_no_longer_count(
    strict_db_api: DbApiServer, strict_client: httpx.Client
) -> None:
    """Guessing names from many addresses cannot grow the table without end."""
    engine = create_engine(strict_db_api.database_url)
    rows = {
        "account:old-guess@203.0.113.9": ("2 days", None),  # stale: dropped
        "account:old-lock@203.0.113.9": ("2 days", "1 hour"),  # still locked: kept
        "account:recent@203.0.113.9": ("1 hour", None),  # still counting: kept
    }
    try:
        with engine.begin() as connection:
            for key, (age, locked_for) in rows.items():
                connection.execute(
                    text(
                        "INSERT INTO login_throttles (key, failures, window_started_at,"
                        " locked_until) VALUES (:key, 2, now() - CAST(:age AS interval),"
                        " now() + CAST(:locked_for AS interval))"
                    ),
                    {"key": key, "age": age, "locked_for": locked_for},
                )
        assert _verify(strict_client, "nobody-at-all", "wrong password").status_code == 401
        with engine.connect() as connection:
            left = set(
                connection.execute(
                    text("SELECT key FROM login_throttles WHERE key LIKE '%@203.0.113.9'")
                ).scalars()
            )
    finally:
        engine.dispose()
    assert left == {"account:old-lock@203.0.113.9", "account:recent@203.0.113.9"}

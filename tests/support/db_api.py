"""The test session's db-api (harness.db_api), and clients for it: over HTTP or in-process."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from sqlalchemy import create_engine, text

from harness.db_api import DbApiServer, db_api_env, running_db_api
from harness.factories import auth_headers, create_user
from harness.postgres import PostgresCluster

__all__ = ["db_api", "db_api_client", "db_api_in_process"]

# The session db-api's database; the in-process app (db_api_in_process) shares it.
SESSION_DATABASE = "db_api_tests"
# What db-api reads from its environment to reach PostgreSQL and check callers.
DB_API_VARIABLES = (
    "POSTGRES_HOST",
    "POSTGRES_PORT",
    "POSTGRES_USER",
    "POSTGRES_PASSWORD",
    "POSTGRES_DB",
    "SERVICE_TOKEN",
    "APP_ENV",
    "SIGNUP_BURST",
    "SIGNUP_MODE",
)


@pytest.fixture(scope="session")
def db_api(postgres: PostgresCluster) -> Iterator[DbApiServer]:
    """The session's db-api, on its own fresh database, with its admin already there.

    The install's first account becomes its admin; with one made here, every test's
    user is an ordinary one, in whichever order the tests run. The first account's own
    rules are tested on db-apis of their own (tests/db_api/test_admin.py).
    """
    with running_db_api(postgres, database=SESSION_DATABASE) as server:
        with httpx.Client(base_url=server.url, headers=auth_headers(server.service_token)) as c:
            create_user(c, username="session-admin")
        yield server


@pytest.fixture
def db_api_client(db_api: DbApiServer) -> Iterator[httpx.Client]:
    """An HTTP client for the session's db-api that already sends the service token."""
    with httpx.Client(base_url=db_api.url, headers=auth_headers(db_api.service_token)) as client:
        yield client


@contextmanager
def db_api_in_process(db_api: DbApiServer, postgres: PostgresCluster) -> Iterator[httpx.Client]:
    """db-api's app in the test process (its real lifespan), on the session db-api's database.

    A Starlette TestClient that sends the service token: the same routes and the same
    data as `db_api_client`, without the HTTP hop, and with a failing route's traceback
    in the test's own output. The environment is db-api's only while its settings are
    read and forgotten afterwards; the lifespan's pool closes with the client.
    """
    from db_api import config

    with warnings.catch_warnings():
        # Starlette 1.x prefers httpx2 for its TestClient; httpx is what the tiers use.
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
        from starlette.testclient import TestClient

    env = db_api_env(
        postgres=postgres, database=SESSION_DATABASE, service_token=db_api.service_token
    )
    config.get_settings.cache_clear()
    with pytest.MonkeyPatch.context() as patch:
        for name in DB_API_VARIABLES:
            patch.setenv(name, env[name])
        config.get_settings()
    from db_api.main import app

    try:
        with TestClient(
            app, base_url="http://db-api.inprocess", headers=auth_headers(db_api.service_token)
        ) as client:
            yield client
    finally:
        config.get_settings.cache_clear()


def cut_off_writer(db_api: DbApiServer, message_id: int) -> None:
    """As if the process writing the reply died mid-reply, its lease run out.

    Its job holds a slot no model server has (so no real grant collides with it) and a
    lease that lapsed a second ago, instead of waiting 10 s for one to lapse.
    """
    engine = create_engine(db_api.database_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "UPDATE reply_jobs SET slot = 1000 + message_id % 30000, "
                    "lease_expires_at = now() - interval '1 second' WHERE message_id = :id"
                ),
                {"id": message_id},
            )
    finally:
        engine.dispose()

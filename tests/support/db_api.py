"""Run db-api as a real process against a PostgreSQL database made for it."""

from __future__ import annotations

import secrets
import subprocess
import sys
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest

from tests.support.factories import auth_headers
from tests.support.postgres import PostgresCluster
from tests.support.processes import REPO_ROOT, ServiceProcess, free_port, service_env

__all__ = [
    "DbApiServer",
    "db_api",
    "db_api_client",
    "db_api_env",
    "db_api_in_process",
    "run_migrations",
    "start_db_api",
]

ALEMBIC_INI = REPO_ROOT / "db-api" / "alembic.ini"
# The session db-api's database; the in-process app (db_api_asgi_client) shares it.
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
)


def db_api_env(
    *,
    postgres: PostgresCluster,
    database: str,
    service_token: str,
    extra_env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment db-api (and its migrations) read, on top of the runner's own."""
    return service_env(
        {
            "POSTGRES_HOST": postgres.host,
            "POSTGRES_PORT": str(postgres.port),
            "POSTGRES_USER": postgres.user,
            "POSTGRES_PASSWORD": postgres.password,
            "POSTGRES_DB": database,
            "SERVICE_TOKEN": service_token,
            "APP_ENV": "development",
            **(extra_env or {}),
        }
    )


def run_migrations(env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`alembic -c db-api/alembic.ini <args>` (default `upgrade head`); raises on failure."""
    alembic_args = args or ("upgrade", "head")
    command = [sys.executable, "-m", "alembic", "-c", str(ALEMBIC_INI), *alembic_args]
    result = subprocess.run(
        command, env=dict(env), cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def start_db_api(
    *,
    postgres: PostgresCluster,
    database: str,
    port: int,
    service_token: str,
    extra_env: dict[str, str] | None = None,
) -> ServiceProcess:
    """Migrate `database`, start uvicorn on 127.0.0.1:`port` and wait until it is ready."""
    env = db_api_env(
        postgres=postgres, database=database, service_token=service_token, extra_env=extra_env
    )
    run_migrations(env)
    process = ServiceProcess(
        f"db-api-{port}",
        [
            sys.executable,
            "-m",
            "uvicorn",
            "db_api.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
    ).start()
    try:
        process.wait_for_http(f"http://127.0.0.1:{port}/health/ready")
    except BaseException:
        process.stop()
        raise
    return process


@dataclass(frozen=True)
class DbApiServer:
    """A running db-api: where it answers, the token it expects, its database."""

    url: str
    service_token: str
    process: ServiceProcess
    database_url: str


@pytest.fixture(scope="session")
def db_api(postgres: PostgresCluster) -> Iterator[DbApiServer]:
    """The session's db-api, on its own fresh database."""
    database = SESSION_DATABASE
    database_url = postgres.create_database(database)
    token = secrets.token_urlsafe(32)
    port = free_port()
    process = start_db_api(postgres=postgres, database=database, port=port, service_token=token)
    try:
        yield DbApiServer(
            url=f"http://127.0.0.1:{port}",
            service_token=token,
            process=process,
            database_url=database_url,
        )
    finally:
        process.stop()


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
    read; those settings and the engine made from them are forgotten afterwards.
    """
    from db_api import config, db

    with warnings.catch_warnings():
        # Starlette 1.x prefers httpx2 for its TestClient; httpx is what the tiers use.
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
        from starlette.testclient import TestClient

    env = db_api_env(
        postgres=postgres, database=SESSION_DATABASE, service_token=db_api.service_token
    )
    cached = (config.get_settings, db.get_engine, db.get_session_factory)
    for function in cached:
        function.cache_clear()
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
        for function in cached:
            function.cache_clear()

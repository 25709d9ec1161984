"""Run db-api as a real process against a PostgreSQL database made for it."""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from harness.postgres import PostgresCluster
from harness.processes import REPO_ROOT, ServiceProcess, free_port, service_env

ALEMBIC_INI = REPO_ROOT / "db-api" / "alembic.ini"


@dataclass(frozen=True)
class DbApiServer:
    """A running db-api: where it answers, the token it expects, its database."""

    url: str
    service_token: str
    process: ServiceProcess
    database_url: str


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
            # Tests sign up hundreds of people from 127.0.0.1; the per-address sign-up
            # limit has tests of its own, which set it.
            "SIGNUP_BURST": "1000000",
            # Tests sign up people who chat at once; the approval policy (the default)
            # has tests of its own, which set it.
            "SIGNUP_MODE": "open",
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
    extra_env: Mapping[str, str] | None = None,
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


@contextmanager
def running_db_api(
    postgres: PostgresCluster,
    *,
    database: str | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[DbApiServer]:
    """A db-api on a free port for the block's duration, on a new database of its own.

    `database` names that database (by default a unique name); it must not exist yet.
    The service token is made here; `extra_env` sets db-api's settings (e.g. LOGIN_*).
    """
    database = database or f"db_api_{secrets.token_hex(6)}"
    database_url = postgres.create_database(database)
    service_token = secrets.token_urlsafe(32)
    port = free_port()
    process = start_db_api(
        postgres=postgres,
        database=database,
        port=port,
        service_token=service_token,
        extra_env=extra_env,
    )
    try:
        yield DbApiServer(
            url=f"http://127.0.0.1:{port}",
            service_token=service_token,
            process=process,
            database_url=database_url,
        )
    finally:
        process.stop()

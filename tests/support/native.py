"""Native mode's PostgreSQL and db-api on private data directories, for the backup tests.

Each `Machine` is one data directory with the environment native mode's processes get;
its stack is `native.stack postgres` and `native.stack db-api`, as the Procfile starts
them (db-api migrates first).
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg2
import pytest

from harness.factories import DEFAULT_PASSWORD, auth_headers, user_headers
from harness.postgres import make_cluster_dir
from harness.processes import ServiceProcess, free_port, service_env
from native import stack

__all__ = ["machines"]


@dataclass(frozen=True)
class Machine:
    """One native data directory and the environment native mode's processes get."""

    env: dict[str, str]

    @property
    def data_dir(self) -> Path:
        return Path(self.env["DATA_DIR"])

    @property
    def db_api_url(self) -> str:
        return f"http://127.0.0.1:{self.env['DB_API_PORT']}"

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.db_api_url, headers=auth_headers(self.env["SERVICE_TOKEN"])
        )

    def stored_secrets(self) -> dict[str, str]:
        return stack.read_env_file(self.data_dir / "secrets.env")

    def run_backup_tool(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        """`make backup` / `make restore` on this machine."""
        return subprocess.run(
            [sys.executable, "-m", "native.backup", *arguments],
            env=self.env,
            cwd=stack.REPO_ROOT,
            capture_output=True,
            text=True,
            check=False,
        )


@pytest.fixture
def machines() -> Iterator[Callable[[], Machine]]:
    """Machines that never ran the app, each with secrets of its own; removed afterwards."""
    made: list[Path] = []

    def new_machine() -> Machine:
        folder = make_cluster_dir("backup-native-")
        folder.chmod(0o755)
        made.append(folder)
        return Machine(
            service_env(
                {
                    "DATA_DIR": str(folder / "data"),
                    "POSTGRES_PORT": str(free_port()),
                    "DB_API_PORT": str(free_port()),
                    "POSTGRES_USER": "chat",
                    "POSTGRES_DB": "chat",
                    # SESSION_SECRET is left to native mode: generated into the data dir.
                    "POSTGRES_PASSWORD": secrets.token_urlsafe(32),
                    "SERVICE_TOKEN": secrets.token_urlsafe(32),
                    "APP_ENV": "development",
                }
            )
        )

    yield new_machine
    for folder in made:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def native_postgres(machine: Machine) -> Iterator[None]:
    name = f"backup-postgres-{machine.env['POSTGRES_PORT']}"
    server = ServiceProcess(
        name, [sys.executable, "-m", "native.stack", "postgres"], env=machine.env
    )
    server.start()
    try:
        try:
            stack.prepare_database(stack.Paths(machine.data_dir), machine.env, timeout=30)
        except psycopg2.OperationalError as error:
            raise RuntimeError(f"{error}\n{server.log_tail()}") from error
        yield
    finally:
        server.stop()


@contextmanager
def native_db_api(machine: Machine) -> Iterator[httpx.Client]:
    """db-api as native mode runs it (migrations first), on a running native PostgreSQL."""
    name = f"backup-db-api-{machine.env['DB_API_PORT']}"
    server = ServiceProcess(name, [sys.executable, "-m", "native.stack", "db-api"], env=machine.env)
    server.start()
    try:
        server.wait_for_http(f"{machine.db_api_url}/health/ready")
        with machine.client() as client:
            yield client
    finally:
        server.stop()


@contextmanager
def native_stack(machine: Machine) -> Iterator[httpx.Client]:
    with native_postgres(machine), native_db_api(machine) as client:
        yield client


def snapshot(client: httpx.Client, user_ids: list[str]) -> dict[str, Any]:
    """Everything db-api shows of these users: the account, each chat with its messages."""
    seen: dict[str, Any] = {}
    for user_id in user_ids:
        headers = user_headers(user_id)
        me = client.get("/users/me", headers=headers)
        listing = client.get("/chats", params={"limit": 100}, headers=headers)
        assert me.status_code == listing.status_code == 200, (me.text, listing.text)
        chats = [
            client.get(f"/chats/{chat['id']}", headers=headers).json()
            for chat in listing.json()["items"]
        ]
        seen[user_id] = {"user": me.json(), "listing": listing.json(), "chats": chats}
    return seen


def sign_in(client: httpx.Client, username: str) -> httpx.Response:
    return client.post("/users/verify", json={"username": username, "password": DEFAULT_PASSWORD})

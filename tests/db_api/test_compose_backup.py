"""deploy/compose/backup.sh and restore.sh, run for real on a stand-in for `docker`.

No Docker engine runs here, so `docker` is a small script on PATH that plays compose:
`docker compose exec -T postgres CMD` runs CMD on this machine, with the variables the
postgres container has and its socket pointing at the session's PostgreSQL cluster (its
role is a superuser, as the official image's is); the `secrets` service runs
deploy/compose/secrets.sh on a folder standing in for the `secrets` volume; every other
compose command is only recorded. tests/unit/test_backups.py checks that the services
and the secret's path the scripts name are compose.yml's. Archives also move between
compose and native mode (tests/support/native.py), both ways.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.db_api import db_api_env, run_migrations, running_db_api, start_db_api
from harness.factories import (
    add_message,
    auth_headers,
    create_chat,
    create_user,
)
from harness.postgres import PG_BIN, PostgresCluster
from harness.processes import REPO_ROOT, free_port
from native import backup
from tests.support.native import Machine, native_stack, sign_in, snapshot

SCRIPTS = REPO_ROOT / "deploy" / "compose"
SECRETS_MOUNT = "/run/secrets/chat-app"

FAKE_DOCKER = f"""#!{sys.executable}
import json, os, subprocess, sys

state = os.environ["FAKE_COMPOSE_DIR"]
arguments = sys.argv[1:]
assert arguments[0] == "compose", arguments
with open(os.path.join(state, "calls.jsonl"), "a") as calls:
    calls.write(json.dumps(arguments[1:]) + "\\n")
volume = os.path.join(state, "secrets")
if arguments[1:4] == ["exec", "-T", "postgres"]:
    container = json.load(open(os.path.join(state, "postgres.json")))
    command = [a.replace({SECRETS_MOUNT!r}, volume) for a in arguments[4:]]
    sys.exit(subprocess.run(command, env=container).returncode)
if arguments[1:] == ["run", "--rm", "--no-deps", "-T", "secrets"]:
    env = {{"PATH": os.environ["PATH"], "SECRETS_DIR": volume,
           "SECRETS_OWNER": f"{{os.getuid()}}:{{os.getgid()}}",
           "SESSION_SECRET": os.environ.get("SESSION_SECRET", "")}}
    script = {str(SCRIPTS / "secrets.sh")!r}
    sys.exit(subprocess.run(["sh", script], env=env).returncode)
"""


@dataclass(frozen=True)
class Compose:
    """A stand-in compose stack whose `postgres` service serves one database."""

    state: Path
    env: dict[str, str]

    def use_database(self, postgres: PostgresCluster, database: str) -> None:
        container = {
            "PATH": f"{PG_BIN}:/usr/bin:/bin",
            "PGHOST": str(postgres.socket_dir),
            "PGPORT": str(postgres.port),
            "POSTGRES_USER": postgres.user,
            "POSTGRES_DB": database,
        }
        (self.state / "postgres.json").write_text(json.dumps(container))

    def set_session_secret(self, value: str) -> None:
        path = self.state / "secrets" / "SESSION_SECRET"
        path.unlink(missing_ok=True)  # the secrets step leaves it read-only
        path.write_text(value)

    def session_secret(self) -> str:
        return (self.state / "secrets" / "SESSION_SECRET").read_text()

    def run(self, script: str, *arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(SCRIPTS / script), *arguments],
            env=self.env,
            cwd=self.state,
            capture_output=True,
            text=True,
            check=False,
        )

    def calls(self) -> list[list[str]]:
        lines = (self.state / "calls.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]


@pytest.fixture
def compose(tmp_path: Path) -> Compose:
    (tmp_path / "bin").mkdir()
    (tmp_path / "secrets").mkdir()
    docker = tmp_path / "bin" / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    env = {
        "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "FAKE_COMPOSE_DIR": str(tmp_path),
    }
    return Compose(state=tmp_path, env=env)


@pytest.fixture
def source_backup(postgres: PostgresCluster, compose: Compose) -> Iterator[dict[str, Any]]:
    """A compose backup of a database with a user, a chat and a session."""
    with (
        running_db_api(postgres) as db_api,
        httpx.Client(base_url=db_api.url, headers=auth_headers(db_api.service_token)) as client,
    ):
        user = create_user(client)
        chat = create_chat(client, user_id=user["id"], title="Before the move")
        add_message(client, user_id=user["id"], chat_id=chat["id"], content="Pack the books")
        session = client.post("/sessions", json={"user_id": user["id"], "max_age_seconds": 600})
        compose.use_database(postgres, db_api.database_url.rsplit("/", 1)[1])
        compose.set_session_secret("k" * 43)
        archive = compose.state / "backups" / "chat.tar"
        made = compose.run("backup.sh", "backups/chat.tar")
        assert made.returncode == 0, made.stderr
        assert f"Backup written to {archive}" in made.stdout
        yield {
            "archive": archive,
            "user": user,
            "token": session.json()["token"],
            "before": snapshot(client, [user["id"]]),
        }


def new_compose_database(postgres: PostgresCluster, compose: Compose) -> str:
    """The database of a compose stack started once: migrated, no users, new secrets."""
    name = f"compose_{secrets.token_hex(4)}"
    postgres.create_database(name)
    run_migrations(db_api_env(postgres=postgres, database=name, service_token="x" * 43))
    compose.use_database(postgres, name)
    compose.set_session_secret("n" * 43)
    return name


@contextmanager
def compose_db_api(postgres: PostgresCluster, database: str) -> Iterator[httpx.Client]:
    """db-api on a compose stack's database, as its container starts (migrations first)."""
    service_token = secrets.token_urlsafe(32)
    port = free_port()
    server = start_db_api(
        postgres=postgres, database=database, port=port, service_token=service_token
    )
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers=auth_headers(service_token)
        ) as client:
            yield client
    finally:
        server.stop()


def test_a_compose_backup_restores_into_a_new_compose_stack(
    postgres: PostgresCluster, compose: Compose, source_backup: dict[str, Any]
) -> None:
    archive: Path = source_backup["archive"]
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    with tarfile.open(archive) as members:
        assert {member.name: stat.S_IMODE(member.mode) for member in members} == {
            "database.dump": 0o600,
            "secrets.env": 0o600,
        }
    # The same archive as native mode's: `make restore` reads it too.
    _, carried = backup.read_archive(archive, compose.state)
    assert carried == {"SESSION_SECRET": "k" * 43}

    database = new_compose_database(postgres, compose)
    restored = compose.run("restore.sh", str(archive))
    assert restored.returncode == 0, restored.stderr
    assert compose.session_secret() == "k" * 43
    assert compose.calls()[-1] == ["up", "--detach"]

    with compose_db_api(postgres, database) as client:
        user = source_backup["user"]
        assert snapshot(client, [user["id"]]) == source_backup["before"]
        assert sign_in(client, user["username"]).status_code == 200
        token = source_backup["token"]
        session = client.get("/sessions/current", headers={"X-Session-Token": token})
        assert session.status_code == 200, session.text

    # Now the database has users: left alone unless forced.
    compose.set_session_secret("n" * 43)
    refused = compose.run("restore.sh", str(archive))
    assert refused.returncode == 1
    assert "already has users: nothing was changed" in refused.stderr
    assert compose.session_secret() == "n" * 43
    forced = compose.run("restore.sh", str(archive), "--force")
    assert forced.returncode == 0, forced.stderr
    assert compose.session_secret() == "k" * 43


def test_backups_move_from_compose_to_native_mode_and_back(
    postgres: PostgresCluster,
    compose: Compose,
    source_backup: dict[str, Any],
    machines: Callable[[], Machine],
) -> None:
    user, before = source_backup["user"], source_backup["before"]
    native = machines()
    # compose's dump belongs to its superuser; native mode's app role takes it over.
    restored = native.run_backup_tool("restore", str(source_backup["archive"]))
    assert restored.returncode == 0, restored.stderr
    assert native.stored_secrets()["SESSION_SECRET"] == "k" * 43
    native_archive = native.data_dir.parent / "native.tar"
    with native_stack(native) as client:
        assert snapshot(client, [user["id"]]) == before
        assert sign_in(client, user["username"]).status_code == 200
        made = native.run_backup_tool("backup", "--output", str(native_archive))
        assert made.returncode == 0, made.stderr

    database = new_compose_database(postgres, compose)
    back = compose.run("restore.sh", str(native_archive))
    assert back.returncode == 0, back.stderr
    assert compose.session_secret() == "k" * 43
    with compose_db_api(postgres, database) as client:
        assert snapshot(client, [user["id"]]) == before

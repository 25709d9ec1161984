"""`make backup` and `make restore`, run for real against native mode's own processes.

Each stack here is native mode's PostgreSQL and db-api on a private data directory
(tests/support/native.py). The backup is taken while the source serves; the restore goes into a
new data directory with its own database password and service token, as on a new
machine, and is then started the same way.
"""

from __future__ import annotations

import stat
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg2
from alembic.config import Config
from alembic.script import ScriptDirectory

from harness.db_api import ALEMBIC_INI, run_migrations
from harness.factories import (
    add_message,
    create_chat,
    create_turn,
    create_user,
    finish_reply,
)
from native import backup, stack
from tests.support.native import Machine, native_postgres, native_stack, sign_in, snapshot

# What db-api migrates a database to when it starts.
HEAD_REVISION = ScriptDirectory.from_config(Config(str(ALEMBIC_INI))).get_current_head()


def alembic_revision(machine: Machine) -> str:
    connection = psycopg2.connect(
        host="127.0.0.1",
        port=int(machine.env["POSTGRES_PORT"]),
        user=machine.env["POSTGRES_USER"],
        password=machine.env["POSTGRES_PASSWORD"],
        dbname=machine.env["POSTGRES_DB"],
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT version_num FROM alembic_version")
            row = cursor.fetchone()
            assert row is not None
            return str(row[0])
    finally:
        connection.close()


def database_names(machine: Machine) -> set[str]:
    admin = stack.connect_as_admin(
        stack.Paths(machine.data_dir), machine.env, database="postgres", timeout=5
    )
    try:
        with admin.cursor() as cursor:
            cursor.execute("SELECT datname FROM pg_database")
            return {row[0] for row in cursor.fetchall()}
    finally:
        admin.close()


def fill_with_chats(client: httpx.Client) -> tuple[list[dict[str, Any]], str]:
    """Two users with chats and messages, and a sign-in session of the first's.

    The first is the install's admin; the second signs up under the shipped approval
    policy and is approved by the first.
    """
    users = [create_user(client), create_user(client)]
    assert [user["status"] for user in users] == ["active", "pending"]
    approved = client.put(
        f"/admin/users/{users[1]['id']}/status",
        json={"status": "active"},
        headers={"X-User-Id": users[0]["id"]},
    )
    assert approved.status_code == 204, approved.text
    for number, user in enumerate(users):
        chat = create_chat(client, user_id=user["id"], title=f"Plans {number}")
        turn = create_turn(client, user_id=user["id"], chat_id=chat["id"], content="Where to?")
        finish_reply(client, user_id=user["id"], turn=turn, content="**Lisbon**, in May.")
        add_message(client, user_id=user["id"], chat_id=chat["id"], content="Ünïcödé ✓")
        create_chat(client, user_id=user["id"], title="Empty")
    started = client.post("/sessions", json={"user_id": users[0]["id"], "max_age_seconds": 3600})
    assert started.status_code == 201, started.text
    return users, started.json()["token"]


def cut_short(archive: Path, folder: Path) -> Path:
    """A copy of the archive whose dump lost its second half."""
    folder.mkdir()
    dump, carried = backup.read_archive(archive, folder)
    dump.write_bytes(dump.read_bytes()[: dump.stat().st_size // 2])
    truncated = folder.parent / "truncated.tar"
    backup.write_archive(truncated, dump=dump, carried=carried)
    return truncated


def test_a_backup_taken_while_serving_restores_on_a_new_machine(
    machines: Callable[[], Machine],
) -> None:
    source, target = machines(), machines()
    archive = source.data_dir.parent / "backups" / "chat.tar"
    with native_stack(source) as client:
        users, session_token = fill_with_chats(client)
        before = snapshot(client, [user["id"] for user in users])
        backed_up = source.run_backup_tool("backup", "--output", str(archive))
        assert backed_up.returncode == 0, backed_up.stderr
    assert f"Backup written to {archive}" in backed_up.stdout
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    with tarfile.open(archive) as members:
        assert {member.name: member.mode for member in members} == {
            "database.dump": 0o600,
            "secrets.env": 0o600,
        }

    restored = target.run_backup_tool("restore", str(archive))
    assert restored.returncode == 0, restored.stderr
    assert "make run" in restored.stdout
    # The key of the source's cookies: browsers stay signed in. The rest is the target's own.
    kept, own = source.stored_secrets(), target.stored_secrets()
    assert own["SESSION_SECRET"] == kept["SESSION_SECRET"]
    assert own["SERVICE_TOKEN"] != kept["SERVICE_TOKEN"]

    with native_stack(target) as client:
        assert snapshot(client, [user["id"] for user in users]) == before
        for user in users:
            signed_in = sign_in(client, user["username"])
            assert signed_in.status_code == 200, signed_in.text
            assert signed_in.json()["id"] == user["id"]
        session = client.get("/sessions/current", headers={"X-Session-Token": session_token})
        assert session.status_code == 200, session.text
        assert session.json()["user"]["id"] == users[0]["id"]
        # The restored database takes new writes: its sequences came along too.
        chat_id = before[users[1]["id"]]["chats"][0]["id"]
        add_message(client, user_id=users[1]["id"], chat_id=chat_id, content="Still here")


def test_a_restore_never_overwrites_users_unless_forced(
    machines: Callable[[], Machine],
) -> None:
    source, target = machines(), machines()
    archive = source.data_dir.parent / "chat.tar"
    with native_stack(source) as client:
        backed_up_user = create_user(client)
        assert source.run_backup_tool("backup", "--output", str(archive)).returncode == 0
    with native_stack(target) as client:
        resident = create_user(client)
        running = target.run_backup_tool("restore", str(archive))
        assert running.returncode != 0
        assert "stop `make run`" in running.stderr
    secrets_before = target.stored_secrets()

    refused = target.run_backup_tool("restore", str(archive))
    assert refused.returncode != 0
    assert "already has users: nothing was changed" in refused.stderr
    assert "FORCE=1" in refused.stderr
    assert target.stored_secrets() == secrets_before
    # A dump cut short (a full disk, say) fails midway: nothing of it lands, even forced.
    truncated = cut_short(archive, source.data_dir.parent / "truncated")
    broken = target.run_backup_tool("restore", str(truncated), "--force")
    assert broken.returncode != 0
    assert "the database is unchanged" in broken.stderr
    assert target.stored_secrets() == secrets_before
    with native_stack(target) as client:
        assert sign_in(client, resident["username"]).status_code == 200
        assert sign_in(client, backed_up_user["username"]).status_code == 401
        assert database_names(target) == {"postgres", "template0", "template1", "chat"}

    forced = target.run_backup_tool("restore", str(archive), "--force")
    assert forced.returncode == 0, forced.stderr
    with native_stack(target) as client:
        assert sign_in(client, resident["username"]).status_code == 401
        assert sign_in(client, backed_up_user["username"]).status_code == 200


def test_an_older_backup_of_a_stopped_stack_restores_into_newer_code(
    machines: Callable[[], Machine],
) -> None:
    source, target = machines(), machines()
    archive = source.data_dir.parent / "older.tar"
    with native_stack(source) as client:
        user = create_user(client)
        before = snapshot(client, [user["id"]])
    with native_postgres(source):
        # As if the backup were made by a release one migration behind this one.
        run_migrations({**source.env, "POSTGRES_HOST": "127.0.0.1"}, "downgrade", "-1")
        assert alembic_revision(source) != HEAD_REVISION
    backed_up = source.run_backup_tool("backup", "--output", str(archive))
    assert backed_up.returncode == 0, backed_up.stderr

    assert target.run_backup_tool("restore", str(archive)).returncode == 0
    with native_stack(target) as client:
        assert alembic_revision(target) == HEAD_REVISION
        assert snapshot(client, [user["id"]]) == before
        assert sign_in(client, user["username"]).status_code == 200

"""Replicas that start together all migrate the same fresh database, and all succeed."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
import uuid

from sqlalchemy import create_engine, text

from harness.db_api import ALEMBIC_INI, db_api_env
from harness.postgres import PostgresCluster
from harness.processes import REPO_ROOT

REPLICAS = 4
WAIT_SECONDS = 120.0


def migration_lock_id() -> int:
    """The lock id the migration environment takes (env.py is a script, not a module)."""
    source = (REPO_ROOT / "db-api" / "migrations" / "env.py").read_text()
    line = next(line for line in source.splitlines() if line.startswith("MIGRATION_LOCK_ID"))
    return int(line.split("=")[1].split("#")[0].strip(), 0)


def test_replicas_migrating_at_once_all_succeed(postgres: PostgresCluster) -> None:
    name = f"migrations_{uuid.uuid4().hex[:8]}"
    url = postgres.create_database(name)
    env = db_api_env(postgres=postgres, database=name, service_token=secrets.token_urlsafe(32))
    command = [sys.executable, "-m", "alembic", "-c", str(ALEMBIC_INI), "upgrade", "head"]
    lock_id = migration_lock_id()
    engine = create_engine(url)
    try:
        with engine.connect() as holder:
            # Hold the lock so every replica gets as far as waiting for it; releasing it
            # then lets them all go at the same instant.
            holder.execute(text("SELECT pg_advisory_lock(:id)"), {"id": lock_id})
            holder.commit()
            processes = [
                subprocess.Popen(
                    command,
                    env=env,
                    cwd=REPO_ROOT,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
                for _ in range(REPLICAS)
            ]
            deadline = time.monotonic() + WAIT_SECONDS
            waiting = 0
            while waiting < REPLICAS and time.monotonic() < deadline:
                waiting = holder.execute(
                    text(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                    )
                ).scalar_one()
                holder.commit()
                time.sleep(0.1)
            assert waiting == REPLICAS, "the replicas did not wait for the migration lock"
            holder.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": lock_id})
            holder.commit()
        outputs = [process.communicate(timeout=300)[0] for process in processes]
        assert [process.returncode for process in processes] == [0] * REPLICAS, outputs
        # Exactly one of them ran the first migration; the others found the schema current.
        assert sum("Running upgrade  -> 0001" in output for output in outputs) == 1, outputs
        with engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
        assert len(versions) == 1
    finally:
        engine.dispose()

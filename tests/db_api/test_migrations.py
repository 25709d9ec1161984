"""The Alembic migration builds the schema the models describe, and can be undone."""

from __future__ import annotations

import secrets
import subprocess
import sys
import uuid

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from db_api.models import Base
from tests.support.db_api import db_api_env, run_migrations
from tests.support.postgres import PostgresCluster
from tests.support.processes import REPO_ROOT

APP_TABLES = {"users", "chats", "messages"}


def _fresh_database(postgres: PostgresCluster) -> tuple[str, str]:
    name = f"migrations_{uuid.uuid4().hex[:8]}"
    return name, postgres.create_database(name)


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_creates_what_the_models_describe(postgres: PostgresCluster) -> None:
    name, url = _fresh_database(postgres)
    assert _tables(url) == set()
    run_migrations(
        db_api_env(postgres=postgres, database=name, service_token=secrets.token_urlsafe(32))
    )
    assert _tables(url) == APP_TABLES

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
            indexes = {index["name"] for index in inspect(connection).get_indexes("users")}
    finally:
        engine.dispose()
    assert differences == []
    assert "uq_users_username_lower" in indexes


def test_downgrade_to_base_then_upgrade_again(postgres: PostgresCluster) -> None:
    name, url = _fresh_database(postgres)
    env = db_api_env(postgres=postgres, database=name, service_token=secrets.token_urlsafe(32))
    run_migrations(env, "upgrade", "head")
    run_migrations(env, "downgrade", "base")
    assert _tables(url) == set()
    run_migrations(env, "upgrade", "head")
    assert _tables(url) == APP_TABLES


def test_migrations_run_from_inside_the_service_directory(postgres: PostgresCluster) -> None:
    name, url = _fresh_database(postgres)
    env = db_api_env(postgres=postgres, database=name, service_token=secrets.token_urlsafe(32))
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", "alembic.ini", "upgrade", "head"],
        env=env,
        cwd=REPO_ROOT / "db-api",
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert _tables(url) == APP_TABLES

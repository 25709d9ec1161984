"""The Alembic migration builds the schema the models describe, and can be undone."""

from __future__ import annotations

import secrets
import subprocess
import sys
import uuid

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from db_api.models import Base
from harness.db_api import db_api_env, run_migrations
from harness.postgres import PostgresCluster
from harness.processes import REPO_ROOT

APP_TABLES = {
    "users",
    "chats",
    "messages",
    "sessions",
    "login_throttles",
    "reply_jobs",
    "model_slots",
    "rate_limit_buckets",
    "app_settings",
    "account_links",
    "audit_events",
}


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


def _columns(url: str, table: str) -> set[str]:
    engine = create_engine(url)
    try:
        return {column["name"] for column in inspect(engine).get_columns(table)}
    finally:
        engine.dispose()


def _indexes(url: str, table: str) -> set[str]:
    engine = create_engine(url)
    try:
        return {index["name"] for index in inspect(engine).get_indexes(table) if index["name"]}
    finally:
        engine.dispose()


def test_search_columns_come_and_go_with_0002(postgres: PostgresCluster) -> None:
    name, url = _fresh_database(postgres)
    env = db_api_env(postgres=postgres, database=name, service_token=secrets.token_urlsafe(32))
    run_migrations(env, "upgrade", "head")
    assert {"search_vector", "context_start_id"} <= _columns(url, "messages")
    assert "search_vector" in _columns(url, "chats")
    assert "ix_messages_search_vector" in _indexes(url, "messages")
    assert "ix_chats_search_vector" in _indexes(url, "chats")

    run_migrations(env, "downgrade", "0001")
    assert _columns(url, "messages") & {"search_vector", "context_start_id"} == set()
    assert "search_vector" not in _columns(url, "chats")
    assert "ix_messages_search_vector" not in _indexes(url, "messages")
    assert "ix_chats_search_vector" not in _indexes(url, "chats")

    run_migrations(env, "upgrade", "head")
    assert {"search_vector", "context_start_id"} <= _columns(url, "messages")
    assert "ix_chats_search_vector" in _indexes(url, "chats")


def test_0002_indexes_rows_that_already_exist(postgres: PostgresCluster) -> None:
    name, url = _fresh_database(postgres)
    env = db_api_env(postgres=postgres, database=name, service_token=secrets.token_urlsafe(32))
    run_migrations(env, "upgrade", "0001")
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO users (id, username, password_hash) "
                    "VALUES ('00000000-0000-0000-0000-000000000001', 'old_user', 'x');"
                    "INSERT INTO chats (id, owner_id, title) VALUES "
                    "('00000000-0000-0000-0000-000000000002', "
                    "'00000000-0000-0000-0000-000000000001', 'Old Title');"
                    "INSERT INTO messages (chat_id, role, content) VALUES "
                    "('00000000-0000-0000-0000-000000000002', 'user', 'Old words here')"
                )
            )
        run_migrations(env, "upgrade", "head")
        with engine.connect() as connection:
            chat_vector = connection.scalar(text("SELECT search_vector::text FROM chats"))
            message = connection.execute(
                text("SELECT search_vector::text, context_start_id FROM messages")
            ).one()
    finally:
        engine.dispose()
    assert chat_vector == "'old':1 'title':2"
    assert message == ("'here':3 'old':1 'words':2", None)


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


def test_0009_makes_the_oldest_account_the_admin_of_an_existing_install(
    postgres: PostgresCluster,
) -> None:
    name, url = _fresh_database(postgres)
    env = db_api_env(postgres=postgres, database=name, service_token=secrets.token_urlsafe(32))
    run_migrations(env, "upgrade", "0008")
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO users (id, username, password_hash, created_at) VALUES "
                    "(gen_random_uuid(), 'first', 'x', now() - interval '2 days'), "
                    "(gen_random_uuid(), 'second', 'x', now() - interval '1 day')"
                )
            )
        run_migrations(env, "upgrade", "head")
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT username, role, status FROM users ORDER BY created_at")
            ).all()
    finally:
        engine.dispose()
    assert [tuple(row) for row in rows] == [
        ("first", "admin", "active"),
        ("second", "user", "active"),
    ]


def test_0010_removes_the_stored_greetings_and_nothing_else(postgres: PostgresCluster) -> None:
    name, url = _fresh_database(postgres)
    env = db_api_env(postgres=postgres, database=name, service_token=secrets.token_urlsafe(32))
    run_migrations(env, "upgrade", "0009")
    greeting = "Hello, how can I assist you today?"
    # Three chats as the app left them: greeted then used, greeted only, and one whose
    # greeting was set to other words by its operator; and a chat that began with a question.
    chats = {
        "used": [("assistant", greeting), ("user", "Plan a trip"), ("assistant", "Go to Lisbon.")],
        "greeted only": [("assistant", greeting)],
        "other words": [("assistant", "Hi! Ask away."), ("user", "Why?")],
        "no greeting": [("user", "Hello?"), ("assistant", greeting)],
    }
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            owner = connection.execute(
                text(
                    "INSERT INTO users (id, username, password_hash) "
                    "VALUES (gen_random_uuid(), 'o', 'x') RETURNING id"
                )
            ).scalar_one()
            for title, messages in chats.items():
                chat = connection.execute(
                    text(
                        "INSERT INTO chats (id, owner_id, title) "
                        "VALUES (gen_random_uuid(), :o, :t) RETURNING id"
                    ),
                    {"o": owner, "t": title},
                ).scalar_one()
                for role, content in messages:
                    connection.execute(
                        text("INSERT INTO messages (chat_id, role, content) VALUES (:c, :r, :m)"),
                        {"c": chat, "r": role, "m": content},
                    )
        run_migrations(env, "upgrade", "head")
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT chats.title, messages.role, messages.content FROM chats "
                    "LEFT JOIN messages ON messages.chat_id = chats.id ORDER BY messages.id"
                )
            ).all()
    finally:
        engine.dispose()
    left: dict[str, list[tuple[str, str]]] = {}
    for title, role, content in rows:
        left.setdefault(title, [])
        if role is not None:
            left[title].append((role, content))
    assert left == {
        "used": [("user", "Plan a trip"), ("assistant", "Go to Lisbon.")],
        "greeted only": [],
        "other words": [("user", "Why?")],
        "no greeting": [("user", "Hello?"), ("assistant", greeting)],
    }

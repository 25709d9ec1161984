"""Native mode's PostgreSQL: an admin role for the cluster, and an app role that owns its database.

Runs native mode's own steps against a real cluster in a private data directory:
`native.stack postgres` as the Procfile starts it, then the preparation db-api runs
before its migrations. The second test starts from a cluster as older native mode
made it (the app's role as initdb's superuser) and finds it converted, chats kept.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg2
import psycopg2.extensions
import pytest
from psycopg2 import errors

from harness.db_api import run_migrations
from harness.postgres import make_cluster_dir
from harness.processes import ServiceProcess, free_port, service_env
from native import stack

APP_ROLE = "chat"
APP_DATABASE = "chat"

# What the app's role must not be able to do, whatever it owns.
FORBIDDEN_TO_APP = (
    "CREATE DATABASE other",
    "CREATE ROLE other",
    # PostgreSQL 15's CREATEROLE may grant this: any file the server can read.
    f"GRANT pg_read_server_files TO {APP_ROLE}",
    # What initdb's superuser keeps without SUPERUSER, as the system catalogs' owner:
    # planting functions the admin would run, reading every password hash.
    "CREATE FUNCTION pg_catalog.shadow() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "SELECT rolpassword FROM pg_authid",
)


@pytest.fixture
def native_env() -> Iterator[dict[str, str]]:
    data_dir = make_cluster_dir("native-pg-")
    data_dir.chmod(0o755)
    yield service_env(
        {
            "DATA_DIR": str(data_dir),
            "POSTGRES_HOST": "127.0.0.1",
            "POSTGRES_PORT": str(free_port()),
            "POSTGRES_USER": APP_ROLE,
            "POSTGRES_DB": APP_DATABASE,
            "POSTGRES_PASSWORD": secrets.token_urlsafe(32),
            "APP_ENV": "development",
        }
    )
    shutil.rmtree(data_dir, ignore_errors=True)


def paths_of(env: dict[str, str]) -> stack.Paths:
    return stack.Paths(Path(env["DATA_DIR"]))


@contextmanager
def native_postgres(env: dict[str, str]) -> Iterator[stack.Paths]:
    """The Procfile's `postgres` process, then db-api's preparation step."""
    server = ServiceProcess(
        "native-postgres", [sys.executable, "-m", "native.stack", "postgres"], env=env
    ).start()
    try:
        try:
            stack.prepare_database(paths_of(env), env, timeout=30)
        except psycopg2.OperationalError as error:
            raise RuntimeError(f"{error}\n{server.log_tail()}") from error
        yield paths_of(env)
    finally:
        server.stop()


def connect_as_app(
    env: dict[str, str], database: str = APP_DATABASE
) -> psycopg2.extensions.connection:
    connection = psycopg2.connect(
        host="127.0.0.1",
        port=int(env["POSTGRES_PORT"]),
        user=env["POSTGRES_USER"],
        password=env["POSTGRES_PASSWORD"],
        dbname=database,
        connect_timeout=3,
    )
    connection.autocommit = True
    return connection


def execute(connection: psycopg2.extensions.connection, statement: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement)


def query(
    connection: psycopg2.extensions.connection, statement: str, *args: object
) -> list[tuple[object, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(statement, args)
        return cursor.fetchall()


def role_attributes(admin: psycopg2.extensions.connection, role: str) -> dict[str, object]:
    with admin.cursor() as cursor:
        cursor.execute(
            "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication,"
            " rolbypassrls FROM pg_roles WHERE rolname = %s",
            (role,),
        )
        row = cursor.fetchone()
        assert row is not None and cursor.description is not None
        return {column.name: value for column, value in zip(cursor.description, row, strict=True)}


APP_ATTRIBUTES = {
    "rolcanlogin": True,
    "rolsuper": False,
    "rolcreatedb": False,
    "rolcreaterole": False,
    "rolreplication": False,
    "rolbypassrls": False,
}


def assert_app_owns_only_its_database(paths: stack.Paths, env: dict[str, str]) -> None:
    admin = stack.connect_as_admin(paths, env, database="postgres", timeout=5)
    try:
        assert role_attributes(admin, APP_ROLE) == APP_ATTRIBUTES
        assert role_attributes(admin, stack.ADMIN_ROLE)["rolsuper"] is True
        assert query(
            admin,
            "SELECT pg_get_userbyid(datdba), has_database_privilege('public', datname, 'CONNECT')"
            " FROM pg_database WHERE datname = %s",
            APP_DATABASE,
        ) == [(APP_ROLE, False)]
    finally:
        admin.close()

    app = connect_as_app(env)
    try:
        # Owning the database is enough to create tables in its public schema (PostgreSQL 15).
        execute(app, "CREATE TABLE scratch (id int); DROP TABLE scratch")
        for statement in FORBIDDEN_TO_APP:
            try:
                execute(app, statement)
            except errors.InsufficientPrivilege:
                continue
            pytest.fail(f"the app's role may {statement}")
    finally:
        app.close()

    # PostgreSQL lets every role into every database by default; pg_hba.conf does not.
    for database in ("postgres", "template1"):
        with pytest.raises(psycopg2.OperationalError, match=r"no pg_hba\.conf entry"):
            connect_as_app(env, database)
    # The app's password opens nothing else: not the admin over TCP, not the socket.
    for host, user in (("127.0.0.1", stack.ADMIN_ROLE), (str(paths.sockets), APP_ROLE)):
        with pytest.raises(psycopg2.OperationalError, match=r"no pg_hba\.conf entry"):
            psycopg2.connect(
                host=host,
                port=int(env["POSTGRES_PORT"]),
                user=user,
                password=env["POSTGRES_PASSWORD"],
                dbname=APP_DATABASE,
            )


def test_new_cluster_has_an_admin_and_an_app_role_that_owns_only_its_database(
    native_env: dict[str, str],
) -> None:
    with native_postgres(native_env) as paths:
        # db-api's migrations, as the app's role.
        run_migrations(native_env)
        assert_app_owns_only_its_database(paths, native_env)

        admin = stack.connect_as_admin(paths, native_env, database="postgres", timeout=5)
        try:
            assert query(admin, "SELECT rolname FROM pg_roles WHERE oid = 10") == [
                (stack.ADMIN_ROLE,)
            ]
            assert query(admin, "SELECT rolpassword FROM pg_authid WHERE oid = 10") == [(None,)]
        finally:
            admin.close()

        # Every start prepares again: nothing breaks, nothing changes.
        stack.prepare_database(paths, native_env, timeout=5)
        assert_app_owns_only_its_database(paths, native_env)


def start_as_older_native_mode(env: dict[str, str]) -> ServiceProcess:
    """initdb and start the cluster as native mode did before it had an admin role."""
    paths = paths_of(env)
    paths.sockets.mkdir(parents=True)
    stack.chown_to_postgres(paths.sockets)
    paths.postgres.mkdir(mode=0o700)
    stack.chown_to_postgres(paths.postgres)
    password_file = paths.root / "pg-password.tmp"
    password_file.write_text(env["POSTGRES_PASSWORD"] + "\n")
    stack.chown_to_postgres(password_file)
    subprocess.run(
        stack.as_postgres_user(
            [
                str(stack.PG_BIN / "initdb"),
                f"--pgdata={paths.postgres}",
                f"--username={APP_ROLE}",
                f"--pwfile={password_file}",
                "--auth-local=scram-sha-256",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ]
        ),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    password_file.unlink()
    return ServiceProcess(
        "older-native-postgres",
        stack.as_postgres_user(
            [
                str(stack.PG_BIN / "postgres"),
                *("-D", str(paths.postgres), "-p", env["POSTGRES_PORT"]),
                *("-k", str(paths.sockets), "-c", "listen_addresses=127.0.0.1"),
            ]
        ),
        env=env,
    ).start()


def connect_when_up(env: dict[str, str], database: str) -> psycopg2.extensions.connection:
    for _ in range(60):
        try:
            return connect_as_app(env, database)
        except psycopg2.OperationalError:
            time.sleep(0.5)
    return connect_as_app(env, database)


def test_cluster_from_older_native_mode_gets_an_admin_and_keeps_its_chats(
    native_env: dict[str, str],
) -> None:
    old_server = start_as_older_native_mode(native_env)
    try:
        # Then, the app as the superuser: its database, its migrations, a user with a chat.
        superuser = connect_when_up(native_env, "postgres")
        execute(superuser, f"CREATE DATABASE {APP_DATABASE}")
        superuser.close()
        run_migrations(native_env)
        app = connect_as_app(native_env)
        execute(
            app,
            "INSERT INTO users (id, username, password_hash)"
            " VALUES (gen_random_uuid(), 'ada', 'x');"
            " INSERT INTO chats (id, owner_id, title)"
            " SELECT gen_random_uuid(), id, 'kept' FROM users",
        )
        app.close()
    finally:
        old_server.stop()

    # Two starts of the current native mode: the first converts, the second finds it done.
    for _ in range(2):
        with native_postgres(native_env) as paths:
            run_migrations(native_env)
            app = connect_as_app(native_env)
            try:
                assert query(
                    app, "SELECT username, title FROM users JOIN chats ON owner_id = users.id"
                ) == [("ada", "kept")]
            finally:
                app.close()
            assert_app_owns_only_its_database(paths, native_env)

            admin = stack.connect_as_admin(paths, native_env, database="postgres", timeout=5)
            try:
                # initdb's superuser owns the catalogs, so it stays, locked, under another name.
                assert query(
                    admin, "SELECT rolname, rolcanlogin, rolpassword FROM pg_authid WHERE oid = 10"
                ) == [(stack.RETIRED_SUPERUSER, False, None)]
            finally:
                admin.close()

    # The app owns everything its migrations made: it can take it all down and back up.
    with native_postgres(native_env):
        run_migrations(native_env, "downgrade", "base")
        run_migrations(native_env)

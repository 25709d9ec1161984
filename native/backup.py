"""Backups of native mode's data: `make backup` and `make restore FILE=...`.

A backup is one tar archive, mode 0600, holding
  database.dump  POSTGRES_DB in pg_dump's custom format: one snapshot, so it is
                 consistent even while `make run` serves;
  secrets.env    SESSION_SECRET, which signs the browsers' session cookies (and the
                 CSRF tokens in them): with it, whoever was signed in stays signed in.
Nothing else is needed. Passwords (argon2id hashes) and sessions (token hashes) are in
the dump; SERVICE_TOKEN and POSTGRES_PASSWORD guard only the running stack, and a new
stack has its own. deploy/compose/backup.sh writes the same archive from compose.

A restore needs the stack stopped: it starts the cluster itself with TCP off (only the
admin's socket), restores into a scratch database and swaps it in only once the whole
dump is in, so a failed restore changes nothing. It refuses a database that already has
users unless forced. db-api applies newer migrations when it starts, so an older backup
restores into newer code.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import psycopg2
from psycopg2 import sql

from native.stack import (
    ADMIN_ROLE,
    PG_BIN,
    REPO_ROOT,
    Paths,
    app_role_and_database,
    as_postgres_user,
    connect_as_admin,
    data_dir,
    ensure_admin_role,
    ensure_app_database,
    ensure_cluster,
    ensure_secrets,
    load_environment,
    prepare_database,
    read_env_file,
)

BACKUPS_DIR = REPO_ROOT / "backups"
DUMP_MEMBER = "database.dump"
SECRETS_MEMBER = "secrets.env"
# The secrets a restored database depends on (see the module docstring for the others).
CARRIED_SECRETS = ("SESSION_SECRET",)
SERVER_START_SECONDS = 60.0


def default_backup_path(now: datetime) -> Path:
    return BACKUPS_DIR / f"chat-{now:%Y%m%d-%H%M%S}.tar"


def private_member(member: tarfile.TarInfo) -> tarfile.TarInfo:
    member.mode = 0o600
    member.uid = member.gid = 0
    member.uname = member.gname = ""
    return member


def write_archive(output: Path, *, dump: Path, carried: Mapping[str, str]) -> None:
    """The archive, mode 0600, in place only once complete."""
    secrets_file = dump.with_name(SECRETS_MEMBER)
    secrets_file.write_text("".join(f"{name}={value}\n" for name, value in carried.items()))
    draft = dump.with_name(".archive.partial")
    with (
        os.fdopen(os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as file,
        tarfile.open(fileobj=file, mode="w") as archive,
    ):
        for member in (dump, secrets_file):
            archive.add(member, arcname=member.name, filter=private_member)
    draft.replace(output)


def read_archive(archive_path: Path, directory: Path) -> tuple[Path, dict[str, str]]:
    """Unpack a backup into `directory`: the dump's path and the carried secrets."""
    try:
        with tarfile.open(archive_path, mode="r:") as archive:
            for name in (DUMP_MEMBER, SECRETS_MEMBER):
                source = archive.extractfile(name)
                if source is None:
                    raise tarfile.TarError(f"{name} is not a file")
                with source, (directory / name).open("wb") as target:
                    shutil.copyfileobj(source, target)
    except (OSError, KeyError, tarfile.TarError) as error:
        raise SystemExit(f"{archive_path} is not a backup: {error}") from None
    carried = read_env_file(directory / SECRETS_MEMBER)
    missing = [name for name in CARRIED_SECRETS if not carried.get(name)]
    if missing:
        raise SystemExit(f"{archive_path} lacks {', '.join(missing)} in {SECRETS_MEMBER}")
    return directory / DUMP_MEMBER, {name: carried[name] for name in CARRIED_SECRETS}


# --- PostgreSQL ---------------------------------------------------------------


def pg_program(name: str) -> str:
    program = PG_BIN / name
    if not program.exists():
        raise SystemExit(f"{program} is missing: run native/bootstrap.sh (or `make run`)")
    return str(program)


def server_answers(paths: Paths, env: Mapping[str, str]) -> bool:
    try:
        connect_as_admin(paths, env, database="postgres", timeout=0).close()
    except psycopg2.OperationalError:
        return False
    return True


@contextmanager
def private_server(paths: Paths, env: Mapping[str, str]) -> Iterator[None]:
    """The cluster started as native mode starts it, but on its socket only; then stopped."""
    ensure_cluster(paths, env)
    ensure_admin_role(paths)
    command = as_postgres_user(
        [
            pg_program("postgres"),
            *("-D", str(paths.postgres), "-p", env["POSTGRES_PORT"], "-k", str(paths.sockets)),
            # No TCP: nothing but this process (the admin, over the socket) gets in.
            *("-c", "listen_addresses="),
        ]
    )
    with tempfile.TemporaryFile() as log:
        # The server's own cwd must be a folder its user may enter.
        server = subprocess.Popen(command, stdout=log, stderr=log, cwd=paths.server_root)
        try:
            deadline = time.monotonic() + SERVER_START_SECONDS
            while not server_answers(paths, env):
                if server.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    output = log.read().decode(errors="replace")
                    raise SystemExit(f"PostgreSQL did not start:\n{output}")
                time.sleep(0.2)
            yield
        finally:
            # SIGINT is PostgreSQL's fast shutdown: it ends sessions and checkpoints.
            server.send_signal(signal.SIGINT)
            server.wait()


def admin_client_arguments(env: Mapping[str, str], paths: Paths) -> list[str]:
    return [f"--host={paths.sockets}", f"--port={env['POSTGRES_PORT']}", f"--username={ADMIN_ROLE}"]


def dump_database(paths: Paths, env: Mapping[str, str], target: Path) -> None:
    _, database = app_role_and_database(env)
    command = [
        pg_program("pg_dump"),
        *admin_client_arguments(env, paths),
        f"--dbname={database}",
        "--format=custom",
        f"--file={target}",
    ]
    if subprocess.run(command, check=False).returncode != 0:
        raise SystemExit("pg_dump failed (above); no backup written")


def database_has_users(paths: Paths, env: Mapping[str, str]) -> bool:
    _, database = app_role_and_database(env)
    connection = connect_as_admin(paths, env, database=database, timeout=5)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass('public.users') IS NOT NULL")
            row = cursor.fetchone()
            if row is None or not row[0]:
                return False
            cursor.execute("SELECT EXISTS (SELECT FROM public.users)")
            row = cursor.fetchone()
            return row is not None and bool(row[0])
    finally:
        connection.close()


def replace_database(paths: Paths, env: Mapping[str, str], dump: Path) -> None:
    """Restore into a scratch database as the app's role, then swap it for the app's."""
    role, database = app_role_and_database(env)
    scratch = f"{database}_restoring"
    names = {
        "role": sql.Identifier(role),
        "database": sql.Identifier(database),
        "scratch": sql.Identifier(scratch),
    }
    admin = connect_as_admin(paths, env, database="postgres", timeout=5)
    try:
        with admin.cursor() as cursor:
            cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {scratch}").format(**names))
            cursor.execute(sql.SQL("CREATE DATABASE {scratch} OWNER {role}").format(**names))
        restored = subprocess.run(
            [
                pg_program("pg_restore"),
                *admin_client_arguments(env, paths),
                # Everything is made by, and so belongs to, the app's role, whoever
                # owned it where the dump came from (compose's app is a superuser).
                f"--role={role}",
                "--no-owner",
                "--no-privileges",
                f"--dbname={scratch}",
                "--exit-on-error",
                "--single-transaction",
                str(dump),
            ],
            check=False,
        )
        with admin.cursor() as cursor:
            if restored.returncode != 0:
                cursor.execute(sql.SQL("DROP DATABASE {scratch}").format(**names))
                raise SystemExit("pg_restore failed (above); the database is unchanged")
            cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {database}").format(**names))
            cursor.execute(sql.SQL("ALTER DATABASE {scratch} RENAME TO {database}").format(**names))
        # Its owner and who may connect, as every start of native mode leaves them.
        ensure_app_database(admin, role, database)
    finally:
        admin.close()


# --- subcommands --------------------------------------------------------------


def command_backup(arguments: argparse.Namespace, env: dict[str, str]) -> None:
    paths = Paths(data_dir(env))
    if not (paths.postgres / "PG_VERSION").exists():
        raise SystemExit(f"Nothing to back up: there is no database in {paths.postgres} yet")
    output: Path = (arguments.output or default_backup_path(datetime.now())).resolve()
    if output.exists():
        raise SystemExit(f"{output} exists already; choose another FILE")
    output.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Beside the archive, so it is renamed into place on the same disk.
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=".backup-") as work:
        dump = Path(work) / DUMP_MEMBER
        if server_answers(paths, env):
            dump_database(paths, env, dump)
        else:
            with private_server(paths, env):
                dump_database(paths, env, dump)
        write_archive(output, dump=dump, carried={name: env[name] for name in CARRIED_SECRETS})
    print(f"Backup written to {output}")
    print("It holds SESSION_SECRET, which signs sign-in cookies: keep it private.")


def overridden_secrets() -> list[str]:
    """Carried secrets set in .env or the environment, which win over the secrets file."""
    dotenv = read_env_file(REPO_ROOT / ".env")
    return [name for name in CARRIED_SECRETS if os.environ.get(name) or dotenv.get(name)]


def command_restore(arguments: argparse.Namespace, env: dict[str, str]) -> None:
    paths = Paths(data_dir(env))
    archive_path: Path = arguments.file.resolve()
    if server_answers(paths, env):
        raise SystemExit(
            "Native mode's PostgreSQL is running: stop `make run` (Ctrl-C) first, "
            "so nothing uses the database while it is replaced."
        )
    with tempfile.TemporaryDirectory(dir=paths.root, prefix=".restore-") as work:
        dump, carried = read_archive(archive_path, Path(work))
        with private_server(paths, env):
            prepare_database(paths, env)
            if database_has_users(paths, env) and not arguments.force:
                raise SystemExit(
                    f"The database {env['POSTGRES_DB']} already has users: nothing was "
                    "changed. To replace it with the backup: make restore FILE=... FORCE=1"
                )
            replace_database(paths, env, dump)
    ensure_secrets(paths.root / "secrets.env", replace=carried)
    print(f"Restored {archive_path} into the database {env['POSTGRES_DB']} ({paths.postgres}).")
    print(f"{', '.join(carried)} stored in {paths.root / 'secrets.env'}.")
    for name in overridden_secrets():
        print(
            f"Note: {name} is set in .env or the environment and wins over the restored one; "
            f"set it to the backup's (tar -xOf {archive_path} {SECRETS_MEMBER}) to keep sign-ins."
        )
    print("Start the app with `make run`; db-api applies any newer migrations first.")


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m native.backup", description=__doc__.splitlines()[0] if __doc__ else None
    )
    subcommands = parser.add_subparsers(dest="command", required=True)
    backup = subcommands.add_parser("backup", help="write a backup (works while `make run` runs)")
    backup.add_argument("--output", type=Path, help="the archive (default: backups/chat-*.tar)")
    restore = subcommands.add_parser("restore", help="restore a backup into the stopped stack")
    restore.add_argument("file", metavar="FILE", type=Path, help="the archive `backup` wrote")
    restore.add_argument("--force", action="store_true", help="replace a database with users")
    arguments = parser.parse_args()
    commands = {"backup": command_backup, "restore": command_restore}
    commands[arguments.command](arguments, load_environment())


if __name__ == "__main__":
    main()

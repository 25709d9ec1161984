"""The operator's command line: create or reset an admin without the web pages.

    python -m db_api.admin create-admin NAME     a new active admin account
    python -m db_api.admin make-admin NAME       an existing account becomes an active admin
    python -m db_api.admin reset-password NAME   a new password; every sign-in of NAME ends
    python -m db_api.admin list-users            every account, its role and status

It reads the same environment as the service (`POSTGRES_*`), so in compose it runs as
`docker compose exec db-api python -m db_api.admin ...`. A password is asked for twice
on a terminal, or read from the first line of standard input with `--password-stdin`.
Each change is in the audit log, done by "command line".
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Sequence

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import delete, select
from sqlalchemy.exc import DBAPIError

from db_api import security
from db_api.config import get_settings
from db_api.database import Database
from db_api.models import SignIn, User
from db_api.queries import audit
from db_api.queries.users import find_user_by_username
from db_api.schemas import Password, Username

ACTOR = "command line"


class CommandError(Exception):
    """A refusal worth one line on stderr and exit status 1."""


def _checked(adapter: TypeAdapter[str], value: str, what: str) -> str:
    try:
        return adapter.validate_python(value)
    except ValidationError as error:
        raise CommandError(f"{what}: {error.errors()[0]['msg']}") from None


def read_password(*, from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("New password: ")
        if getpass.getpass("Repeat it: ") != password:
            raise CommandError("the two passwords differ")
    return _checked(TypeAdapter(Password), password, "password")


async def create_admin(database: Database, username: str, password: str) -> str:
    async with database.session(database.write_sessions) as db:
        if await find_user_by_username(db, username=username) is not None:
            raise CommandError(
                f"{username} exists: use make-admin to make it an admin, reset-password for "
                "a new password"
            )
        db.add(
            User(
                username=username,
                password_hash=security.hash_password(password),
                role="admin",
                status="active",
            )
        )
        audit.record(db, action="admin_created_from_cli", actor=ACTOR, target=username)
        await db.commit()
    return f"created admin {username}"


async def make_admin(database: Database, username: str) -> str:
    async with database.session(database.write_sessions) as db:
        user = await find_user_by_username(db, username=username, for_update=True)
        if user is None:
            raise CommandError(f"no account named {username}")
        user.role, user.status = "admin", "active"
        audit.record(db, action="made_admin", actor=ACTOR, target=user.username)
        await db.commit()
    return f"{username} is an active admin"


async def reset_password(database: Database, username: str, password: str) -> str:
    async with database.session(database.write_sessions) as db:
        user = await find_user_by_username(db, username=username, for_update=True)
        if user is None:
            raise CommandError(f"no account named {username}")
        user.password_hash = security.hash_password(password)
        await db.execute(delete(SignIn).where(SignIn.user_id == user.id))
        audit.record(db, action="password_reset_from_cli", actor=ACTOR, target=user.username)
        await db.commit()
    return f"new password set for {username}; every sign-in of the account ended"


async def list_users(database: Database) -> str:
    async with database.session(database.read_sessions) as db:
        found = (await db.scalars(select(User).order_by(User.created_at, User.id))).all()
    rows = [("USERNAME", "ROLE", "STATUS", "CREATED", "LAST SEEN")]
    for user in found:
        seen = "-" if user.last_seen_at is None else f"{user.last_seen_at:%Y-%m-%d %H:%M}"
        created = f"{user.created_at:%Y-%m-%d %H:%M}"
        rows.append((user.username, user.role, user.status, created, seen))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m db_api.admin", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("create-admin", "create an active admin account"),
        ("reset-password", "set a new password and end the account's sign-ins"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("username")
        command.add_argument(
            "--password-stdin", action="store_true", help="read the password from stdin"
        )
    commands.add_parser("make-admin", help="make an account an active admin").add_argument(
        "username"
    )
    commands.add_parser("list-users", help="list every account")
    return parser


async def _run(arguments: argparse.Namespace) -> str:
    username = None
    if arguments.command != "list-users":
        username = _checked(TypeAdapter(Username), arguments.username, "username")
    password = None
    if arguments.command in ("create-admin", "reset-password"):
        password = read_password(from_stdin=arguments.password_stdin)
    database = Database(get_settings())
    try:
        if arguments.command == "create-admin":
            assert username is not None and password is not None
            return await create_admin(database, username, password)
        if arguments.command == "make-admin":
            assert username is not None
            return await make_admin(database, username)
        if arguments.command == "reset-password":
            assert username is not None and password is not None
            return await reset_password(database, username, password)
        return await list_users(database)
    finally:
        await database.engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    try:
        print(asyncio.run(_run(arguments)))
    except CommandError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except (OSError, DBAPIError) as error:
        settings = get_settings()
        where = f"{settings.postgres_host}:{settings.postgres_port}"
        print(
            f"error: PostgreSQL at {where} is not reachable ({error.__class__.__name__}); "
            "is the app running?",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A private PostgreSQL cluster, run from the system's binaries.

Each cluster lives in its own temporary directory on a loopback port, answers TCP
with a generated password (scram-sha-256) and is thrown away at the end. When the
tests or benchmarks run as root the server runs as the `postgres` user, because
PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import os
import pwd
import secrets
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import URL, create_engine, text
from sqlalchemy.pool import NullPool

from harness.processes import free_port

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
SERVER_USER = "postgres"


class PostgresCluster:
    """One PostgreSQL server: `start()`, create databases, `stop()`, start again."""

    def __init__(
        self,
        base_dir: Path,
        *,
        port: int | None = None,
        user: str = "app",
        password: str | None = None,
    ) -> None:
        self.base_dir = base_dir
        self.data_dir = base_dir / "data"
        self.socket_dir = base_dir / "socket"
        self.log_path = base_dir / "postgres.log"
        self.host = "127.0.0.1"
        self.port = port if port is not None else free_port()
        self.user = user
        self.password = password if password is not None else secrets.token_urlsafe(24)
        self._as_root = os.geteuid() == 0

    def start(self) -> PostgresCluster:
        if not (self.data_dir / "PG_VERSION").exists():
            self._init()
        options = (
            f"-p {self.port} -k {self.socket_dir} -c listen_addresses={self.host} "
            # Durability is pointless for throwaway test data and slows every commit.
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        pg_ctl = str(PG_BIN / "pg_ctl")
        self._run(
            [
                pg_ctl,
                "start",
                "-w",
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_path),
                "-o",
                options,
            ]
        )
        return self

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            self._run([str(PG_BIN / "pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "fast"])

    @property
    def running(self) -> bool:
        return (self.data_dir / "postmaster.pid").exists()

    def url_for(self, database: str) -> str:
        """A SQLAlchemy URL (psycopg2 driver) for `database`, password included."""
        return URL.create(
            "postgresql+psycopg2",
            username=self.user,
            password=self.password,
            host=self.host,
            port=self.port,
            database=database,
        ).render_as_string(hide_password=False)

    def create_database(self, name: str) -> str:
        """Create an empty database and answer its SQLAlchemy URL."""
        # CREATE DATABASE cannot run inside a transaction.
        engine = create_engine(
            self.url_for("postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool
        )
        try:
            quoted = engine.dialect.identifier_preparer.quote(name)
            with engine.connect() as connection:
                connection.execute(text(f"CREATE DATABASE {quoted}"))
        finally:
            engine.dispose()
        return self.url_for(name)

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def _init(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        password_file = self.base_dir / "password"
        password_file.write_text(self.password)
        if self._as_root:
            server_user = pwd.getpwnam(SERVER_USER)
            for path in (self.base_dir, self.socket_dir, password_file):
                os.chown(path, server_user.pw_uid, server_user.pw_gid)
        self._run(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                self.user,
                f"--pwfile={password_file}",
                "--auth-host=scram-sha-256",
                # Only this cluster's own files can reach the socket directory.
                "--auth-local=trust",
                "--encoding=UTF8",
                "--locale=C",
            ]
        )
        password_file.unlink()

    def _run(self, command: Sequence[str]) -> None:
        full = ["runuser", "-u", SERVER_USER, "--", *command] if self._as_root else list(command)
        result = subprocess.run(
            full, cwd=self.base_dir, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}\n{self.log_tail()}"
            )


def make_cluster_dir(prefix: str = "pg-") -> Path:
    """A fresh directory the server user can enter (pytest's tmp dirs are root-only)."""
    return Path(tempfile.mkdtemp(prefix=prefix))

"""Native mode: the same services as compose, as local processes on loopback.

`make run` calls `prepare` once, then honcho starts one process per line of
native/Procfile; each line is a subcommand here that sets the service's
environment and replaces itself with the real program (exec), so honcho's
Ctrl-C reaches PostgreSQL, the llama.cpp server, uvicorn and nginx directly.

Configuration comes from the same environment variables as compose, read in
this order (later wins): built-in defaults, `.env` in the repository, the
generated secrets file, the process environment.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import re
import secrets
import shutil
import stat
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg2.extensions

REPO_ROOT = Path(__file__).resolve().parents[1]
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
VENV_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"


@dataclass(frozen=True)
class NginxLimits:
    """What nginx lets one client address do (nginx/templates/00-chat-app.conf.template).

    The defaults suit a household or a small team behind one address: nobody notices
    them, and a flood of sign-ins (each costs db-api an argon2 hash: 64 MiB and a core)
    or of requests ends in nginx with a 429 page.
    """

    SIGN_INS_PER_MINUTE: int = 10
    SIGN_IN_BURST: int = 20
    REQUESTS_PER_SECOND: int = 30
    REQUEST_BURST: int = 300
    CONNECTIONS_PER_ADDRESS: int = 64

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> NginxLimits:
        values = {name: int(env[name]) for name in asdict(cls()) if env.get(name)}
        limits = cls(**values)
        if min(asdict(limits).values()) < 1:
            raise ValueError(f"nginx limits must be positive: {limits}")
        return limits


# A DNS name or IPv4 address, or an IPv6 address in brackets, as it stands in `Host`.
_HOST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]")


def allowed_hosts_from_env(env: Mapping[str, str]) -> tuple[str, ...]:
    """ALLOWED_HOSTS as names (comma-separated; empty: nginx answers to any host).

    Checked here because the list is rendered into nginx's configuration as text.
    """
    names = tuple(name.strip() for name in env.get("ALLOWED_HOSTS", "").split(",") if name.strip())
    for name in names:
        if not _HOST_NAME.fullmatch(name):
            raise ValueError(
                f"ALLOWED_HOSTS: {name!r} is not a host name or address "
                "(no scheme, port or path: e.g. chat.example.com,192.168.1.20)"
            )
    return names


# Tests and benchmarks that drive one stack from one address as fast as they can.
UNLIMITED = NginxLimits(
    SIGN_INS_PER_MINUTE=1_000_000,
    SIGN_IN_BURST=100_000,
    REQUESTS_PER_SECOND=1_000_000,
    REQUEST_BURST=100_000,
    CONNECTIONS_PER_ADDRESS=60_000,  # nginx allows up to 65,535
)

DEFAULTS: dict[str, str] = {
    "APP_ENV": "development",
    "APP_PORT": "8080",
    "APP_TLS_PORT": "8443",
    "LM_API_PORT": "8081",
    "DB_API_PORT": "8082",
    "CHAT_UI_PORT": "8083",
    "POSTGRES_PORT": "54329",
    "POSTGRES_USER": "chat",
    "POSTGRES_DB": "chat",
    "MODEL_SOURCE": "auto",
    **{name: str(value) for name, value in asdict(NginxLimits()).items()},
}
GENERATED_SECRETS = ("SERVICE_TOKEN", "SESSION_SECRET", "POSTGRES_PASSWORD")


def data_dir(env: Mapping[str, str]) -> Path:
    return Path(env.get("DATA_DIR", str(REPO_ROOT / ".data"))).resolve()


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; blank lines and # comments ignored; optional quotes stripped."""
    values: dict[str, str] = {}
    if not path.exists():
        return values
    for raw_line in path.read_text().splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip("'\"")
    return values


def ensure_secrets(path: Path, *, replace: Mapping[str, str] | None = None) -> dict[str, str]:
    """Generate native mode's secrets once; keep them private and untracked.

    `replace` sets some of them (a restored backup's). Every Procfile process calls
    this at start, so the first run is a race: an exclusive lock makes exactly one of
    them write the file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with (path.parent / ".secrets.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        existing = read_env_file(path)
        changes = {
            name: secrets.token_urlsafe(32) for name in GENERATED_SECRETS if not existing.get(name)
        } | dict(replace or {})
        if any(existing.get(name) != value for name, value in changes.items()):
            existing.update(changes)
            draft = path.with_suffix(".tmp")
            draft.write_text(
                "# Generated once by native mode. Keep private; delete to rotate.\n"
                + "".join(f"{key}={value}\n" for key, value in existing.items())
            )
            draft.chmod(0o600)
            draft.replace(path)
    path.chmod(0o600)
    return existing


def load_environment() -> dict[str, str]:
    env = dict(DEFAULTS)
    env.update(read_env_file(REPO_ROOT / ".env"))
    secrets_file = data_dir({**env, **os.environ}) / "secrets.env"
    generated = ensure_secrets(secrets_file)
    env.update(os.environ)
    # Empty values (as in .env.example) mean "use the generated secret".
    for name in GENERATED_SECRETS:
        if not env.get(name):
            env[name] = generated[name]
    env.setdefault("MODEL_DIR", str(data_dir(env) / "models"))
    env.setdefault("LLAMA_ARG_MODEL", str(Path(env["MODEL_DIR"]) / "model.gguf"))
    env["PYTHONPATH"] = os.pathsep.join(
        str(REPO_ROOT / name) for name in ("db-api", "chat-ui", "lm-api")
    )
    env["PYTHONUNBUFFERED"] = "1"
    return env


# As root, PostgreSQL runs as the `postgres` system user and nginx's workers as an
# unprivileged one: both must be able to walk down to their files, and a checkout in
# root's home (mode 0700, as on a fresh server) is out of their reach. Their files then
# live here instead, one directory per data directory, linked from it as `server`.
SERVER_DIRS_HOME = Path("/var/lib/chat-app")


def others_can_reach(path: Path) -> bool:
    """Whether a user with no rights of its own may pass through every folder to `path`."""
    return all(
        folder.stat().st_mode & stat.S_IXOTH for folder in (path, *path.parents) if folder.exists()
    )


@dataclass(frozen=True)
class Paths:
    root: Path

    @property
    def server_root(self) -> Path:
        """Where PostgreSQL's cluster and sockets and nginx's runtime files go."""
        if os.geteuid() != 0 or others_can_reach(self.root):
            return self.root
        digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:12]
        return SERVER_DIRS_HOME / digest

    @property
    def postgres(self) -> Path:
        return self.server_root / "postgres"

    @property
    def sockets(self) -> Path:
        return self.server_root / "run"

    @property
    def nginx(self) -> Path:
        return self.server_root / "nginx"

    def make_server_root(self) -> None:
        """Create the server's folder; when it lies outside the data directory, link it."""
        self.root.mkdir(parents=True, exist_ok=True)
        if self.server_root == self.root:
            return
        self.server_root.mkdir(mode=0o755, parents=True, exist_ok=True)
        for folder in (self.server_root, *self.server_root.parents):
            if folder == SERVER_DIRS_HOME.parent:
                break
            folder.chmod(0o755)
        link = self.root / "server"
        if not link.is_symlink():
            link.symlink_to(self.server_root)


# --- PostgreSQL -------------------------------------------------------------

# The cluster's superuser. It has no password: it logs in only over the private
# socket with peer authentication (the kernel names the OS user), so the app's
# password, which is only good over TCP, cannot open it.
ADMIN_ROLE = "postgres"
# Clusters initdb'd before the admin existed ran the app as initdb's bootstrap
# superuser. That role owns the system catalogs, so even without SUPERUSER it could
# read every password hash and plant pg_catalog functions the admin would run; it is
# renamed to this instead, locked (NOLOGIN, no password), and the app gets a new role.
RETIRED_SUPERUSER = "retired_superuser"
BOOTSTRAP_SUPERUSER_OID = 10  # initdb's first role always has it


def as_postgres_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root; drop to the `postgres` system user then."""
    if os.geteuid() != 0:
        return command
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", *command]


def chown_to_postgres(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, user="postgres", group="postgres")


def app_role_and_database(env: Mapping[str, str]) -> tuple[str, str]:
    """POSTGRES_USER and POSTGRES_DB, refused when pg_hba.conf could not name them."""
    role, database = env["POSTGRES_USER"], env["POSTGRES_DB"]
    if role in (ADMIN_ROLE, RETIRED_SUPERUSER):
        raise SystemExit(f"POSTGRES_USER={role} is the cluster's own role; choose another name")
    for name, value in (("POSTGRES_USER", role), ("POSTGRES_DB", database)):
        if not value or any(character in value for character in '"\r\n'):
            raise SystemExit(f"{name} must be set, without double quotes or line breaks")
    return role, database


def write_access_rules(paths: Paths, env: Mapping[str, str]) -> None:
    """pg_hba.conf and pg_ident.conf, rewritten on every start so older clusters get them too.

    The admin: over the socket, for the OS user running the server and the one running
    this (root when that is root, who can become the server's user anyway). The app:
    over TCP with its password, and only into its own database.
    """
    import pwd

    role, database = app_role_and_database(env)
    server_user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    admins = sorted({server_user, pwd.getpwuid(os.geteuid()).pw_name})
    rules = {
        "pg_hba.conf": (
            f"local all {ADMIN_ROLE} peer map=admin\n"
            f'host "{database}" "{role}" 127.0.0.1/32 scram-sha-256\n'
        ),
        "pg_ident.conf": "".join(f"admin {user} {ADMIN_ROLE}\n" for user in admins),
    }
    for name, text in rules.items():
        path = paths.postgres / name
        path.write_text("# Written by native/stack.py on every start.\n" + text)
        path.chmod(0o600)
        chown_to_postgres(path)


def ensure_cluster(paths: Paths, env: Mapping[str, str]) -> None:
    """initdb once (the cluster, every chat in it, is kept between runs); rules every time."""
    import subprocess

    paths.make_server_root()
    paths.sockets.mkdir(parents=True, exist_ok=True)
    chown_to_postgres(paths.sockets)
    if not (paths.postgres / "PG_VERSION").exists():
        paths.postgres.mkdir(mode=0o700, parents=True, exist_ok=True)
        chown_to_postgres(paths.postgres)
        subprocess.run(
            as_postgres_user(
                [
                    str(PG_BIN / "initdb"),
                    f"--pgdata={paths.postgres}",
                    f"--username={ADMIN_ROLE}",
                    "--auth-local=peer",
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
    write_access_rules(paths, env)


def ensure_admin_role(paths: Paths) -> None:
    """Give clusters made before the admin existed one, while the server is still down.

    Single-user mode is the bootstrap superuser without any login, so this needs no
    credentials; where the admin is that superuser (every newer cluster) it does nothing.
    """
    import subprocess

    statement = (
        f"DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ADMIN_ROLE}') THEN "
        f"CREATE ROLE {ADMIN_ROLE} SUPERUSER CREATEDB CREATEROLE REPLICATION BYPASSRLS LOGIN; "
        "END IF; END$$;\n"
    )
    subprocess.run(
        as_postgres_user(
            [
                str(PG_BIN / "postgres"),
                "--single",
                *("-D", str(paths.postgres)),
                # An error in single-user mode is otherwise only printed.
                *("-c", "exit_on_error=on", "-c", "log_checkpoints=off"),
                "postgres",
            ]
        ),
        input=statement,
        text=True,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def run_postgres(paths: Paths, env: Mapping[str, str]) -> None:
    ensure_cluster(paths, env)
    ensure_admin_role(paths)
    command = as_postgres_user(
        [
            str(PG_BIN / "postgres"),
            "-D",
            str(paths.postgres),
            "-p",
            env["POSTGRES_PORT"],
            "-k",
            str(paths.sockets),
            "-c",
            "listen_addresses=127.0.0.1",
        ]
    )
    os.execvpe(command[0], command, dict(env))


def connect_as_admin(
    paths: Paths, env: Mapping[str, str], *, database: str, timeout: float
) -> psycopg2.extensions.connection:
    """An autocommit connection over the private socket, once PostgreSQL accepts it."""
    import psycopg2

    deadline = time.monotonic() + timeout
    while True:
        try:
            connection = psycopg2.connect(
                host=str(paths.sockets),
                port=int(env["POSTGRES_PORT"]),
                user=ADMIN_ROLE,
                dbname=database,
                connect_timeout=3,
            )
            break
        except psycopg2.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    connection.autocommit = True
    return connection


def retire_bootstrap_superuser(connection: psycopg2.extensions.connection) -> bool:
    """Rename and lock initdb's superuser unless it is the admin; answer whether it was."""
    from psycopg2 import sql

    with connection.cursor() as cursor:
        cursor.execute("SELECT rolname FROM pg_roles WHERE oid = %s", (BOOTSTRAP_SUPERUSER_OID,))
        row = cursor.fetchone()
        assert row is not None, "every cluster has its bootstrap superuser"
        name: str = row[0]
        if name == ADMIN_ROLE:
            return False
        retired = sql.Identifier(RETIRED_SUPERUSER)
        if name != RETIRED_SUPERUSER:
            cursor.execute(
                sql.SQL("ALTER ROLE {} RENAME TO {}").format(sql.Identifier(name), retired)
            )
        cursor.execute(sql.SQL("ALTER ROLE {} NOLOGIN PASSWORD NULL").format(retired))
    return True


def ensure_app_role(connection: psycopg2.extensions.connection, role: str, password: str) -> None:
    """The app's login: no cluster-wide rights, and the password from the environment."""
    from psycopg2 import extensions, sql

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
        if cursor.fetchone() is None:
            cursor.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(role)))
        # Hashed here, as psql's \password does, so the password never leaves this process;
        # set on every start, so a rotated POSTGRES_PASSWORD takes effect.
        verifier = extensions.encrypt_password(password, role, connection, "scram-sha-256")
        cursor.execute(
            sql.SQL(
                "ALTER ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION"
                " NOBYPASSRLS PASSWORD {}"
            ).format(sql.Identifier(role), sql.Literal(verifier))
        )


def ensure_app_database(
    connection: psycopg2.extensions.connection, role: str, database: str
) -> None:
    """The app's database, owned by the app, so it may create tables in its public schema."""
    from psycopg2 import sql

    names = {"role": sql.Identifier(role), "database": sql.Identifier(database)}
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
        if cursor.fetchone() is None:
            cursor.execute(sql.SQL("CREATE DATABASE {database} OWNER {role}").format(**names))
        cursor.execute(sql.SQL("ALTER DATABASE {database} OWNER TO {role}").format(**names))
        # By default every role may connect and make temporary tables; here only the owner.
        cursor.execute(sql.SQL("REVOKE ALL ON DATABASE {database} FROM PUBLIC").format(**names))


# What the retired superuser made in the app's database (tables with their indexes and
# sequences, functions, types, schemas) as kind and quoted name for ALTER ... OWNER TO.
# REASSIGN OWNED refuses the bootstrap superuser: it owns the system catalogs too.
RETIRED_SUPERUSER_OBJECTS = """
SELECT kind, name
  FROM (SELECT CASE relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                            WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE'
                            ELSE 'TABLE' END,
               oid::regclass::text, relowner, relnamespace, 'pg_class'::regclass, oid
          FROM pg_class
         WHERE relkind IN ('r', 'p', 'v', 'm', 'f')
            -- Identity and serial sequences go with their table.
            OR (relkind = 'S' AND NOT EXISTS (
                  SELECT FROM pg_depend
                   WHERE classid = 'pg_class'::regclass AND objid = pg_class.oid
                     AND refclassid = 'pg_class'::regclass AND deptype IN ('a', 'i')))
        UNION ALL
        SELECT 'ROUTINE', oid::regprocedure::text, proowner, pronamespace, 'pg_proc'::regclass, oid
          FROM pg_proc
        UNION ALL
        SELECT 'TYPE', oid::regtype::text, typowner, typnamespace, 'pg_type'::regclass, oid
          FROM pg_type
         WHERE typtype IN ('e', 'd', 'r')
            OR (typtype = 'c'
                AND (SELECT relkind FROM pg_class WHERE pg_class.oid = typrelid) = 'c')
        UNION ALL
        SELECT 'SCHEMA', quote_ident(nspname), nspowner, oid, 'pg_namespace'::regclass, oid
          FROM pg_namespace
       ) AS object (kind, name, owner, namespace, classid, objid)
  JOIN pg_namespace ON pg_namespace.oid = object.namespace
 WHERE object.owner = %s
   AND nspname NOT IN ('pg_catalog', 'information_schema') AND nspname !~ '^pg_'
   -- An extension's objects belong with the extension.
   AND NOT EXISTS (SELECT FROM pg_depend
                    WHERE classid = object.classid AND objid = object.objid AND deptype = 'e')
"""


def hand_over_to_app(connection: psycopg2.extensions.connection, role: str) -> None:
    """Give the app what the retired superuser owns in its database, all at once."""
    from psycopg2 import sql

    with connection.cursor() as cursor:
        cursor.execute(RETIRED_SUPERUSER_OBJECTS, (BOOTSTRAP_SUPERUSER_OID,))
        objects: list[tuple[str, str]] = cursor.fetchall()
    connection.autocommit = False
    with connection, connection.cursor() as cursor:
        for kind, name in objects:
            cursor.execute(
                sql.SQL("ALTER {} {} OWNER TO {}").format(
                    sql.SQL(kind), sql.SQL(name), sql.Identifier(role)
                )
            )


def prepare_database(paths: Paths, env: Mapping[str, str], *, timeout: float = 60.0) -> None:
    """Wait for PostgreSQL, then, as the admin, give the app its role and database.

    Runs on every start and changes only what differs, so a cluster made by an older
    native mode (the app as its superuser) ends up the same as a new one.
    """
    role, database = app_role_and_database(env)
    connection = connect_as_admin(paths, env, database="postgres", timeout=timeout)
    try:
        # First, as an old cluster's superuser has the app's name.
        retired = retire_bootstrap_superuser(connection)
        ensure_app_role(connection, role, env["POSTGRES_PASSWORD"])
        ensure_app_database(connection, role, database)
    finally:
        connection.close()
    if retired:
        connection = connect_as_admin(paths, env, database=database, timeout=timeout)
        try:
            hand_over_to_app(connection, role)
        finally:
            connection.close()


# --- nginx ------------------------------------------------------------------


def render_template(template: str, values: Mapping[str, str]) -> str:
    """Replace only the named ${VARIABLES}, like the official image's envsubst filter."""
    for name, value in values.items():
        template = template.replace("${" + name + "}", value)
    return template


NGINX_MAIN_CONFIG = REPO_ROOT / "nginx.conf"
STATIC_ROOT = REPO_ROOT / "chat-ui" / "chat_ui" / "static"
ERROR_PAGES_ROOT = REPO_ROOT / "nginx" / "html"
NGINX_TEMPLATES = REPO_ROOT / "nginx" / "templates"
# Debian's nginx package puts the extension-to-type table here.
SYSTEM_MIME_TYPES = Path("/etc/nginx/mime.types")
TEMPLATE_SUFFIX = ".template"


def tls_files_present(tls_dir: Path | None) -> bool:
    """The rule the container uses too: HTTPS when both files are there and not empty."""
    if tls_dir is None:
        return False
    return all(
        (tls_dir / name).is_file() and (tls_dir / name).stat().st_size > 0
        for name in ("tls.crt", "tls.key")
    )


def write_nginx_config(
    directory: Path,
    *,
    listen_port: int,
    chat_ui_upstream: str,
    access_log: str = "/dev/stdout",
    tls_dir: Path | None = None,
    tls_port: int | None = None,
    static_root: Path = STATIC_ROOT,
    error_pages_root: Path = ERROR_PAGES_ROOT,
    limits: NginxLimits | None = None,
    allowed_hosts: tuple[str, ...] = (),
) -> Path:
    """Lay out a private nginx: the repository's nginx.conf and its rendered conf.d/.

    Like the official image: every nginx/templates/*.template goes to conf.d/, and the
    HTTPS site replaces the HTTP one when tls_dir holds a certificate and key. With
    `allowed_hosts`, any other host name gets 421.
    """
    directory.mkdir(parents=True, exist_ok=True)
    temp_dir = directory / "tmp"
    temp_dir.mkdir(exist_ok=True)
    # nginx workers run as `nobody` when the master is root; they need the temp dir.
    temp_dir.chmod(0o1777)
    conf_dir = directory / "conf.d"
    conf_dir.mkdir(exist_ok=True)
    use_tls = tls_files_present(tls_dir) and tls_port is not None
    values = {
        "NGINX_PORT": f"127.0.0.1:{listen_port}",
        "NGINX_TLS_PORT": f"127.0.0.1:{tls_port}",
        "PUBLIC_HTTPS_PORT": str(tls_port),
        "TLS_DIR": str(tls_dir),
        "CHAT_UI_UPSTREAM": chat_ui_upstream,
        "ACCESS_LOG": access_log,
        "STATIC_ROOT": str(static_root),
        "ERROR_PAGES_ROOT": str(error_pages_root),
        **{name: str(value) for name, value in asdict(limits or NginxLimits()).items()},
        "ALLOWED_HOSTS": ",".join(allowed_hosts),
    }
    for template in sorted(NGINX_TEMPLATES.glob(f"*{TEMPLATE_SUFFIX}")):
        output = conf_dir / template.name.removesuffix(TEMPLATE_SUFFIX)
        output.write_text(render_template(template.read_text(), values))
    https_site = conf_dir / "chat-app-https.site"
    if use_tls:
        https_site.replace(conf_dir / "default.conf")
    else:
        https_site.unlink()
    (conf_dir / "native-temp-paths.conf").write_text(
        "# Native mode's own temporary files, where the user running nginx can write.\n"
        + "".join(
            f"{kind}_temp_path {temp_dir / name};\n"
            for kind, name in (
                ("client_body", "body"),
                ("proxy", "proxy"),
                ("fastcgi", "fastcgi"),
                ("uwsgi", "uwsgi"),
                ("scgi", "scgi"),
            )
        )
    )
    # The repository's main configuration, beside the rendered conf.d/ it includes.
    main_config = directory / "nginx.conf"
    shutil.copyfile(NGINX_MAIN_CONFIG, main_config)
    mime_types = directory / "mime.types"
    mime_types.unlink(missing_ok=True)
    mime_types.symlink_to(SYSTEM_MIME_TYPES)
    return main_config


def nginx_command(main_config: Path) -> list[str]:
    pid_file = main_config.parent / "nginx.pid"
    return [
        "nginx",
        "-e",
        "stderr",
        "-p",
        str(main_config.parent),
        "-c",
        str(main_config),
        "-g",
        f"pid {pid_file}; daemon off;",
    ]


def wait_for_http(url: str, *, timeout: float = 600.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not become ready in {timeout:.0f} s")


# --- subcommands --------------------------------------------------------------


def exec_python(arguments: list[str], env: Mapping[str, str]) -> None:
    os.execve(str(VENV_PYTHON), [str(VENV_PYTHON), *arguments], dict(env))


def uvicorn_arguments(module: str, port: str) -> list[str]:
    return [
        "-m",
        "uvicorn",
        module,
        "--host",
        "127.0.0.1",
        "--port",
        port,
        "--proxy-headers",
        "--forwarded-allow-ips",
        "127.0.0.1",
        "--no-server-header",
        # Open reply streams would otherwise hold shutdown until they end; after this
        # long they are closed, so live replies still get saved as "stopped".
        "--timeout-graceful-shutdown",
        "3",
    ]


def command_prepare(env: dict[str, str]) -> None:
    paths = Paths(data_dir(env))
    ensure_cluster(paths, env)
    print(f"native data directory: {paths.root}")
    if paths.server_root != paths.root:
        print(
            f"PostgreSQL and nginx files (out of {paths.root}'s reach for them): "
            f"{paths.server_root}"
        )


def db_api_workers(env: Mapping[str, str]) -> str:
    """db-api's uvicorn worker processes (uvicorn reads WEB_CONCURRENCY).

    One serves the page reads of a two-core machine with room to spare (see
    docs/benchmarks); each further worker adds about 90 MB and doubles write
    throughput under heavy load.
    """
    return env.get("DB_API_WORKERS") or "1"


def command_db_api(env: dict[str, str]) -> None:
    env["POSTGRES_HOST"] = "127.0.0.1"
    prepare_database(Paths(data_dir(env)), env)
    import subprocess

    subprocess.run(
        [
            str(VENV_PYTHON),
            *("-m", "alembic", "-c", str(REPO_ROOT / "db-api" / "alembic.ini")),
            *("upgrade", "head"),
        ],
        env=env,
        check=True,
    )
    env["WEB_CONCURRENCY"] = db_api_workers(env)
    exec_python(uvicorn_arguments("db_api.main:app", env["DB_API_PORT"]), env)


def command_lm_api(env: dict[str, str]) -> None:
    env["LLAMA_ARG_HOST"] = "127.0.0.1"
    env["LLAMA_ARG_PORT"] = env["LM_API_PORT"]
    exec_python(["-m", "lm_api.server"], env)


def command_chat_ui(env: dict[str, str]) -> None:
    env.setdefault("DB_API_URL", f"http://127.0.0.1:{env['DB_API_PORT']}")
    env.setdefault("LM_API_URL", f"http://127.0.0.1:{env['LM_API_PORT']}")
    exec_python(uvicorn_arguments("chat_ui.main:app", env["CHAT_UI_PORT"]), env)


def command_nginx(env: dict[str, str]) -> None:
    # Relative to the repository, like the compose default ./nginx/tls.
    tls_dir = (REPO_ROOT / env["TLS_CERT_DIR"]).resolve() if env.get("TLS_CERT_DIR") else None
    tls_port = int(env["APP_TLS_PORT"])
    paths = Paths(data_dir(env))
    paths.make_server_root()
    static_root, error_pages_root = STATIC_ROOT, ERROR_PAGES_ROOT
    if not others_can_reach(REPO_ROOT) and os.geteuid() == 0:
        # The workers cannot reach the checkout: serve a copy, made at every start.
        static_root, error_pages_root = paths.nginx / "static", paths.nginx / "errors"
        for source, copy in ((STATIC_ROOT, static_root), (ERROR_PAGES_ROOT, error_pages_root)):
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(source, copy)
    allowed_hosts = allowed_hosts_from_env(env)
    main_config = write_nginx_config(
        paths.nginx,
        listen_port=int(env["APP_PORT"]),
        chat_ui_upstream=f"127.0.0.1:{env['CHAT_UI_PORT']}",
        access_log="off",
        tls_dir=tls_dir,
        tls_port=tls_port,
        static_root=static_root,
        error_pages_root=error_pages_root,
        limits=NginxLimits.from_env(env),
        allowed_hosts=allowed_hosts,
    )
    command = nginx_command(main_config)
    if shutil.which(command[0]) is None:
        # Say so before announcing a URL that nothing would serve.
        raise SystemExit("nginx is not installed: run native/bootstrap.sh (or `make run`)")
    # Open the door only when everything behind it answers: chat-ui, db-api, the model.
    wait_for_http(f"http://127.0.0.1:{env['CHAT_UI_PORT']}/health/ready")
    # With ALLOWED_HOSTS set, nginx answers only to those names: announce one of them.
    host = allowed_hosts[0] if allowed_hosts and "127.0.0.1" not in allowed_hosts else "127.0.0.1"
    if tls_files_present(tls_dir):
        print(f"Chat app ready: https://{host}:{tls_port}/", flush=True)
    else:
        print(f"Chat app ready: http://{host}:{env['APP_PORT']}/", flush=True)
    os.execvpe(command[0], command, env)


COMMANDS = {
    "prepare": command_prepare,
    "postgres": lambda env: run_postgres(Paths(data_dir(env)), env),
    "lm-api": command_lm_api,
    "db-api": command_db_api,
    "chat-ui": command_chat_ui,
    "nginx": command_nginx,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("command", choices=sorted(COMMANDS))
    arguments = parser.parse_args()
    COMMANDS[arguments.command](load_environment())
    sys.exit(0)


if __name__ == "__main__":
    main()

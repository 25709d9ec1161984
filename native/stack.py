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
import os
import secrets
import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
VENV_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"

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
    "LLAMA_ARG_CTX_SIZE": "4096",
    "LLAMA_ARG_N_PARALLEL": "2",
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


def ensure_secrets(path: Path) -> dict[str, str]:
    """Generate native mode's secrets once; keep them private and untracked.

    Every Procfile process calls this at start, so the first run is a race:
    an exclusive lock makes exactly one of them write the file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with (path.parent / ".secrets.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        existing = read_env_file(path)
        missing = [name for name in GENERATED_SECRETS if not existing.get(name)]
        if missing:
            for name in missing:
                existing[name] = secrets.token_urlsafe(32)
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


@dataclass(frozen=True)
class Paths:
    root: Path

    @property
    def postgres(self) -> Path:
        return self.root / "postgres"

    @property
    def sockets(self) -> Path:
        return self.root / "run"

    @property
    def nginx(self) -> Path:
        return self.root / "nginx"


# --- PostgreSQL -------------------------------------------------------------


def as_postgres_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root; drop to the `postgres` system user then."""
    if os.geteuid() != 0:
        return command
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", *command]


def chown_to_postgres(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, user="postgres", group="postgres")


def ensure_cluster(paths: Paths, env: Mapping[str, str]) -> None:
    """initdb once; the cluster (and every chat in it) is kept between runs."""
    import subprocess

    for directory in (paths.root, paths.sockets):
        directory.mkdir(parents=True, exist_ok=True)
    chown_to_postgres(paths.sockets)
    if (paths.postgres / "PG_VERSION").exists():
        return
    paths.postgres.mkdir(mode=0o700, parents=True, exist_ok=True)
    chown_to_postgres(paths.postgres)
    password_file = paths.root / "pg-password.tmp"
    password_file.write_text(env["POSTGRES_PASSWORD"] + "\n")
    password_file.chmod(0o600)
    chown_to_postgres(password_file)
    try:
        subprocess.run(
            as_postgres_user(
                [
                    str(PG_BIN / "initdb"),
                    f"--pgdata={paths.postgres}",
                    f"--username={env['POSTGRES_USER']}",
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
    finally:
        password_file.unlink(missing_ok=True)


def run_postgres(paths: Paths, env: Mapping[str, str]) -> None:
    ensure_cluster(paths, env)
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


def wait_for_database(env: Mapping[str, str], *, timeout: float = 60.0) -> None:
    """Wait for PostgreSQL, then create the app's database on first run."""
    import psycopg2
    from psycopg2 import sql

    deadline = time.monotonic() + timeout
    while True:
        try:
            connection = psycopg2.connect(
                host="127.0.0.1",
                port=int(env["POSTGRES_PORT"]),
                user=env["POSTGRES_USER"],
                password=env["POSTGRES_PASSWORD"],
                dbname="postgres",
                connect_timeout=3,
            )
            break
        except psycopg2.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (env["POSTGRES_DB"],))
        if cursor.fetchone() is None:
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(env["POSTGRES_DB"])))
    connection.close()


# --- nginx ------------------------------------------------------------------


def render_template(template: str, values: Mapping[str, str]) -> str:
    """Replace only the named ${VARIABLES}, like the official image's envsubst filter."""
    for name, value in values.items():
        template = template.replace("${" + name + "}", value)
    return template


NGINX_TEMPLATES = REPO_ROOT / "nginx" / "templates"
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
) -> Path:
    """Render the shared templates inside a minimal main config for a private nginx.

    Like the official image: every nginx/templates/*.template goes to conf.d/, and the
    HTTPS site replaces the HTTP one when tls_dir holds a certificate and key.
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
        "STATIC_ROOT": str(REPO_ROOT / "chat-ui" / "chat_ui" / "static"),
        "ERROR_PAGES_ROOT": str(REPO_ROOT / "nginx" / "html"),
    }
    for template in sorted(NGINX_TEMPLATES.glob(f"*{TEMPLATE_SUFFIX}")):
        output = conf_dir / template.name.removesuffix(TEMPLATE_SUFFIX)
        output.write_text(render_template(template.read_text(), values))
    https_site = conf_dir / "chat-app-https.site"
    if use_tls:
        https_site.replace(conf_dir / "default.conf")
    else:
        https_site.unlink()
    main_config = directory / "nginx.conf"
    main_config.write_text(
        f"""# Generated by native/stack.py from nginx/templates/.
worker_processes auto;
pid {directory / "nginx.pid"};
error_log stderr warn;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
    access_log {access_log};
    client_body_temp_path {temp_dir}/body;
    proxy_temp_path {temp_dir}/proxy;
    fastcgi_temp_path {temp_dir}/fastcgi;
    uwsgi_temp_path {temp_dir}/uwsgi;
    scgi_temp_path {temp_dir}/scgi;
    include conf.d/*.conf;
}}
"""
    )
    return main_config


def nginx_command(main_config: Path) -> list[str]:
    return [
        "nginx",
        "-e",
        "stderr",
        "-p",
        str(main_config.parent),
        "-c",
        str(main_config),
        "-g",
        "daemon off;",
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
    ensure_cluster(Paths(data_dir(env)), env)
    print(f"native data directory: {data_dir(env)}")


def db_api_workers(env: Mapping[str, str]) -> str:
    """db-api's uvicorn worker processes (uvicorn reads WEB_CONCURRENCY).

    One serves the page reads of a two-core machine with room to spare (see
    docs/benchmarks); each further worker adds about 90 MB and doubles write
    throughput under heavy load.
    """
    return env.get("DB_API_WORKERS") or "1"


def command_db_api(env: dict[str, str]) -> None:
    env["POSTGRES_HOST"] = "127.0.0.1"
    wait_for_database(env)
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
    main_config = write_nginx_config(
        Paths(data_dir(env)).nginx,
        listen_port=int(env["APP_PORT"]),
        chat_ui_upstream=f"127.0.0.1:{env['CHAT_UI_PORT']}",
        access_log="off",
        tls_dir=tls_dir,
        tls_port=tls_port,
    )
    # Open the door only when everything behind it answers: chat-ui, db-api, the model.
    wait_for_http(f"http://127.0.0.1:{env['CHAT_UI_PORT']}/health/ready")
    command = nginx_command(main_config)
    if tls_files_present(tls_dir):
        print(f"Chat app ready: https://127.0.0.1:{tls_port}/", flush=True)
    else:
        print(f"Chat app ready: http://127.0.0.1:{env['APP_PORT']}/", flush=True)
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

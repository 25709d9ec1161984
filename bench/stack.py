"""The stack the benchmarks measure, started once on free loopback ports.

The same processes as native mode (PostgreSQL, db-api, the llama.cpp server with
the real model, chat-ui, nginx), started with native mode's own uvicorn arguments
and nginx site template, so a change there is measured here. nginx's static root
is a private copy of chat-ui's static files, so the page baseline (the chat page
saved as a static file) is served by the very same nginx without touching the
repository.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from harness.db_api import db_api_env, run_migrations
from harness.llama import ensure_model, start_llama_server
from harness.postgres import PostgresCluster, make_cluster_dir
from harness.processes import REPO_ROOT, ServiceProcess, free_port, service_env
from lm_api.config import ServerSettings
from native.stack import (
    UNLIMITED,
    db_api_workers,
    nginx_command,
    uvicorn_arguments,
    write_nginx_config,
)

SYSTEM_PROMPT = "You are a helpful assistant."
OPENING_MESSAGE = "Hello, how can I assist you today?"
MAX_REPLY_TOKENS = 128
STATIC_DIR = REPO_ROOT / "chat-ui" / "chat_ui" / "static"
LOG_DIR = REPO_ROOT / "test-artifacts" / "bench-logs"


@dataclass(frozen=True)
class Stack:
    """Where each service answers, and its process (for memory readings)."""

    service_token: str
    db_api_url: str
    llama_url: str
    chat_ui_url: str
    app_url: str  # nginx
    static_dir: Path  # nginx's /static/ root
    model_path: Path
    postgres: PostgresCluster
    processes: dict[str, ServiceProcess] = field(default_factory=dict)


def _uvicorn(
    name: str, module: str, port: int, env: dict[str, str], profile_dir: Path | None
) -> ServiceProcess:
    arguments = uvicorn_arguments(module, str(port))
    if profile_dir is not None:
        # The same server and arguments under cProfile (see bench.profiled).
        arguments = ["-m", "bench.profiled", str(profile_dir / f"{name}.prof"), *arguments[2:]]
    command = [sys.executable, *arguments]
    process = ServiceProcess(name, command, env=env, log_dir=LOG_DIR).start()
    try:
        process.wait_for_http(f"http://127.0.0.1:{port}/health/ready", timeout=120)
    except BaseException:
        process.stop()
        raise
    return process


def _nginx(config_dir: Path, static_dir: Path, chat_ui_port: int, port: int) -> ServiceProcess:
    # One client address drives every figure: the per-address limits are off.
    main_config = write_nginx_config(
        config_dir,
        listen_port=port,
        chat_ui_upstream=f"127.0.0.1:{chat_ui_port}",
        access_log="off",
        limits=UNLIMITED,
    )
    # Whatever files the site template renders to, point their static root at our copy.
    for site in config_dir.rglob("*"):
        if site.is_file() and str(STATIC_DIR) in (text := site.read_text(errors="replace")):
            site.write_text(text.replace(str(STATIC_DIR), str(static_dir)))
    process = ServiceProcess("nginx", nginx_command(main_config), log_dir=LOG_DIR).start()
    process.wait_for_http(f"http://127.0.0.1:{port}/static/style.css")
    return process


@contextmanager
def running_stack(
    llama_env: dict[str, str] | None = None,
    profile_dir: Path | None = None,
    uvicorn_env: dict[str, str] | None = None,
) -> Iterator[Stack]:
    """The whole stack for the block's duration; lm-api uses its own defaults unless overridden.

    With `profile_dir`, db-api and chat-ui run under cProfile and leave `<name>.prof` there.
    `uvicorn_env` goes to both (e.g. UVICORN_WORKERS=2: uvicorn reads UVICORN_<OPTION>).
    """
    model_path = ensure_model()
    defaults = ServerSettings(model=model_path)
    token = secrets.token_urlsafe(32)
    with ExitStack() as stack:
        work_dir = make_cluster_dir("bench-")
        work_dir.chmod(0o755)
        stack.callback(shutil.rmtree, work_dir, ignore_errors=True)
        cluster = PostgresCluster(work_dir / "postgres").start()
        stack.callback(cluster.stop)
        cluster.create_database("bench")
        db_port, lm_port, ui_port, web_port = (free_port() for _ in range(4))

        # As many db-api workers as native mode starts, unless uvicorn_env says otherwise.
        # The benchmark's one user starts chats and replies far faster than a person: the
        # rate limits' check is measured, never their refusal.
        db_env = {
            "WEB_CONCURRENCY": db_api_workers(os.environ),
            "REPLY_BURST": "1000000",
            "CHAT_BURST": "1000000",
            **(uvicorn_env or {}),
        }
        env = db_api_env(postgres=cluster, database="bench", service_token=token, extra_env=db_env)
        run_migrations(env)
        db_api = _uvicorn("db-api", "db_api.main:app", db_port, env, profile_dir)
        stack.callback(db_api.stop)

        llama = start_llama_server(
            model_path=model_path,
            port=lm_port,
            ctx_size=defaults.ctx_size,
            parallel=defaults.n_parallel,
            extra_env=llama_env,
        )
        stack.callback(llama.stop)

        ui_env = service_env(
            {
                "DB_API_URL": f"http://127.0.0.1:{db_port}",
                "LM_API_URL": f"http://127.0.0.1:{lm_port}",
                "SERVICE_TOKEN": token,
                "SESSION_SECRET": secrets.token_urlsafe(32),
                "APP_ENV": "development",
                "SYSTEM_PROMPT": SYSTEM_PROMPT,
                "OPENING_MESSAGE": OPENING_MESSAGE,
                "MAX_REPLY_TOKENS": str(MAX_REPLY_TOKENS),
                **(uvicorn_env or {}),
            }
        )
        chat_ui = _uvicorn("chat-ui", "chat_ui.main:app", ui_port, ui_env, profile_dir)
        stack.callback(chat_ui.stop)

        static_dir = work_dir / "static"
        shutil.copytree(STATIC_DIR, static_dir)
        nginx = _nginx(work_dir / "nginx", static_dir, ui_port, web_port)
        stack.callback(nginx.stop)

        yield Stack(
            service_token=token,
            db_api_url=f"http://127.0.0.1:{db_port}",
            llama_url=f"http://127.0.0.1:{lm_port}",
            chat_ui_url=f"http://127.0.0.1:{ui_port}",
            app_url=f"http://127.0.0.1:{web_port}",
            static_dir=static_dir,
            model_path=model_path,
            postgres=cluster,
            processes={"db-api": db_api, "lm-api": llama, "chat-ui": chat_ui, "nginx": nginx},
        )

"""Native mode as `make run` starts it: honcho, the Procfile, a private data directory.

Runs the real Procfile on free loopback ports with its own data directory, signs
up and starts a chat through nginx, stops it the way Ctrl-C does, starts it again
and finds the chat still there.
"""

from __future__ import annotations

import shutil
import signal
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.forms import Browser, chat_id_of
from harness.postgres import make_cluster_dir
from harness.processes import REPO_ROOT, VENV_BIN, ServiceProcess, free_port, service_env

PORT_VARIABLES = ("APP_PORT", "LM_API_PORT", "DB_API_PORT", "CHAT_UI_PORT", "POSTGRES_PORT")


@pytest.fixture
def native_env(model_path: Path) -> Iterator[dict[str, str]]:
    data_dir = make_cluster_dir("native-")
    data_dir.chmod(0o755)
    env = service_env(
        {
            "DATA_DIR": str(data_dir),
            "LLAMA_ARG_MODEL": str(model_path),
            "LLAMA_ARG_N_PARALLEL": "1",
            "LLAMA_ARG_CTX_SIZE": "2048",
            **{name: str(free_port()) for name in PORT_VARIABLES},
        }
    )
    yield env
    shutil.rmtree(data_dir, ignore_errors=True)


def start_native(env: dict[str, str], run: int) -> ServiceProcess:
    honcho = ServiceProcess(
        f"native-run-{run}",
        [str(VENV_BIN / "honcho"), "start", "-f", "native/Procfile", "-d", str(REPO_ROOT)],
        env=env,
    ).start()
    honcho.wait_for_http(f"http://127.0.0.1:{env['APP_PORT']}/login", timeout=180)
    return honcho


def stop_like_ctrl_c(honcho: ServiceProcess) -> None:
    assert honcho.process is not None
    honcho.process.send_signal(signal.SIGINT)
    honcho.process.wait(timeout=60)
    honcho.process = None


def port_is_closed(port: str) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", int(port))) != 0


def test_native_mode_runs_stops_cleanly_and_keeps_data(native_env: dict[str, str]) -> None:
    base_url = f"http://127.0.0.1:{native_env['APP_PORT']}"
    honcho = start_native(native_env, run=1)
    try:
        browser = Browser(base_url)
        browser.sign_up()
        chat_id = chat_id_of(browser.submit("/chats"))
        browser.close()
        # The first account is the admin, as the operator's command line shows.
        listed = subprocess.run(
            ["make", "--no-print-directory", "admin", "ARGS=list-users"],
            cwd=REPO_ROOT,
            env=native_env,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert listed.returncode == 0, listed.stderr
        assert [browser.username, "admin", "active"] == listed.stdout.splitlines()[-1].split()[:3]
    finally:
        stop_like_ctrl_c(honcho)

    # Ctrl-C stops every service, not just honcho.
    assert all(port_is_closed(native_env[name]) for name in PORT_VARIABLES)
    secrets_file = Path(native_env["DATA_DIR"]) / "secrets.env"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    secrets_before = secrets_file.read_text()

    honcho = start_native(native_env, run=2)
    try:
        again = Browser(base_url)
        again.username, again.password = browser.username, browser.password
        response = again.submit(
            "/login",
            {"username": browser.username, "password": browser.password},
            form_page="/login",
        )
        assert response.url.path == "/chats"
        assert f'href="/chats/{chat_id}"' in response.text
        again.close()
    finally:
        stop_like_ctrl_c(honcho)
    assert secrets_file.read_text() == secrets_before

"""Figure 6: start-up, from the run command to nginx serving /login, caches warm.

Runs what `make run` runs after its install step (honcho with native/Procfile) on
free loopback ports and a private data directory. The first launch creates the
database and is not measured; each measured launch starts from the kept data
with the model file in the page cache. The baseline is the llama.cpp server of
the same launch answering /health: loading the model is the floor the rest of
the stack starts alongside.
"""

from __future__ import annotations

import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.results import Figure
from bench.stack import LOG_DIR
from harness.postgres import make_cluster_dir
from harness.processes import REPO_ROOT, VENV_BIN, ServiceProcess, free_port, service_env

PORT_VARIABLES = ("APP_PORT", "LM_API_PORT", "DB_API_PORT", "CHAT_UI_PORT", "POSTGRES_PORT")
SECTION = "6. Start-up (honcho + native/Procfile, warm caches)"
POLL_S = 0.05
LAUNCH_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class Launch:
    ready_s: float  # nginx answers /login
    model_s: float  # the llama.cpp server answers /health


def _answers(client: httpx.Client, url: str) -> bool:
    try:
        return client.get(url).status_code == 200
    except httpx.HTTPError:
        return False


def launch_once(env: dict[str, str], name: str) -> Launch:
    login = f"http://127.0.0.1:{env['APP_PORT']}/login"
    health = f"http://127.0.0.1:{env['LM_API_PORT']}/health"
    command = [str(VENV_BIN / "honcho"), "start", "-f", "native/Procfile", "-d", str(REPO_ROOT)]
    started = time.perf_counter()
    honcho = ServiceProcess(name, command, env=env, log_dir=LOG_DIR).start()
    model_s = 0.0
    try:
        with httpx.Client(timeout=1.0) as client:
            while time.perf_counter() - started < LAUNCH_TIMEOUT_S:
                if not honcho.running:
                    raise RuntimeError(f"native mode exited early:\n{honcho.log_tail()}")
                if not model_s and _answers(client, health):
                    model_s = time.perf_counter() - started
                if _answers(client, login):
                    return Launch(ready_s=time.perf_counter() - started, model_s=model_s)
                time.sleep(POLL_S)
        raise TimeoutError(f"native mode not ready in {LAUNCH_TIMEOUT_S} s:\n{honcho.log_tail()}")
    finally:
        # As Ctrl-C does: honcho passes SIGINT on to every service and waits for them.
        if honcho.process is not None:
            honcho.process.send_signal(signal.SIGINT)
            honcho.process.wait(timeout=60)
            honcho.process = None


def measure_startup(model_path: Path, *, rounds: int) -> tuple[Launch, list[Launch]]:
    """(the first launch, which creates the database; the measured warm launches)."""
    data_dir = make_cluster_dir("bench-native-")
    data_dir.chmod(0o755)
    env = service_env(
        {
            "DATA_DIR": str(data_dir),
            "LLAMA_ARG_MODEL": str(model_path),
            **{name: str(free_port()) for name in PORT_VARIABLES},
        }
    )
    try:
        first = launch_once(env, "bench-native-first")
        return first, [launch_once(env, f"bench-native-{n}") for n in range(rounds)]
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def startup_figures(first: Launch, warm: list[Launch]) -> list[Figure]:
    return [
        Figure(
            SECTION,
            "run command to /login served",
            "s",
            [launch.ready_s for launch in warm],
            "llama.cpp server ready (same launch)",
            [launch.model_s for launch in warm],
            higher_is_better=False,
            notes=f"first launch (creates the database): {first.ready_s:.1f} s",
        )
    ]

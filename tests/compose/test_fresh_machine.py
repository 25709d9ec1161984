"""The README's `make run`, exactly as written, on a machine that has only what the
README says a fresh machine has: Debian 12 with git, make and python3, used as root.

A plain bookworm container (docker/prepare.sh builds it with debootstrap) gets a copy
of the checkout; `make run` installs what is missing (apt packages, the virtualenv,
the model) and starts the stack. Then a browser journey goes through the URL it
printed, `make run` is stopped as Ctrl-C would, and started again: the second start
installs nothing and keeps the chats. Last, nginx is removed again, as on a machine
that has everything else: `make run` must notice and install it. The start times go
to test-artifacts/compose/fresh-machine-timings.json.

The container shares the host's network (so the browser reaches 127.0.0.1:8080 as
the README says, and apt and pip reach their registries as on the host); the ports
native mode uses must therefore be free on this machine.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from playwright.sync_api import expect

from harness.factories import unique_username
from harness.processes import ARTIFACTS_DIR, REPO_ROOT
from tests.compose.conftest import prepare_docker
from tests.e2e.test_browser_journey import QUESTION, assistant_messages, start_chat_and_get_reply
from tests.support.browser import OpenTab, save_screenshot
from tests.support.pages import sign_in, sign_up

IMAGE = "chat-app/fresh-debian:bookworm"
CONTAINER = "chat-app-fresh-machine-test"
CHECKOUT = "/root/chat-app"
# The URL `make run` prints, and every port native mode opens by default.
APP_URL = "http://127.0.0.1:8080"
NATIVE_PORTS = (8080, 8081, 8082, 8083, 54329)
READY_LINE = re.compile(r"Chat app ready: (http://\S+)/")
# Cold: apt packages, the Python dependencies and the ~490 MB model are all fetched.
FIRST_RUN_TIMEOUT = 1800.0
SECOND_RUN_TIMEOUT = 300.0
TIMINGS_FILE = ARTIFACTS_DIR / "compose" / "fresh-machine-timings.json"
LOG_DIR = ARTIFACTS_DIR / "compose"


def docker(*arguments: str, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *arguments], capture_output=True, text=True, timeout=timeout, check=False
    )


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class MakeRun:
    """One `make run` in the container, in its own process group, as in a terminal."""

    name: str
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)
    ready_url: str | None = None
    ready: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            if self.ready_url is None and (match := READY_LINE.search(line)):
                self.ready_url = match[1]
                self.ready.set()
        self.ready.set()

    def wait_until_ready(self, timeout: float) -> None:
        if not self.ready.wait(timeout) or self.ready_url is None:
            self.save_log()
            pytest.fail(
                f"`make run` ({self.name}) printed no ready URL within {timeout:.0f} s "
                f"(exit {self.process.poll()}):\n{''.join(self.output[-60:])}"
            )

    def interrupt(self) -> None:
        """Ctrl-C: SIGINT to the whole process group, then wait for make to end."""
        signalled = docker(
            "exec", CONTAINER, "bash", "-c", "kill -INT -- -$(cat /root/make-run.pgid)"
        )
        try:
            assert signalled.returncode == 0, signalled.stderr
            self.process.wait(timeout=60)
        finally:
            self.save_log()

    def save_log(self) -> None:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        (LOG_DIR / f"fresh-machine-{self.name}.log").write_text("".join(self.output))


def start_make_run(name: str) -> MakeRun:
    # setsid: make and everything it starts share one new process group, whose id is
    # the shell's pid (kept by exec), as a terminal's foreground job would.
    script = f"cd {CHECKOUT} && echo $$ > /root/make-run.pgid && exec make run"
    process = subprocess.Popen(
        ["docker", "exec", CONTAINER, "setsid", "--wait", "bash", "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return MakeRun(name=name, process=process)


def tracked_files() -> list[str]:
    """The checkout as a clone has it: tracked and new files, nothing ignored."""
    listed = subprocess.run(
        [
            "git",
            "-C",
            str(REPO_ROOT),
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [name for name in listed.split("\0") if name and (REPO_ROOT / name).exists()]


@pytest.fixture(scope="module")
def fresh_machine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running plain Debian container holding a copy of the checkout, and nothing else."""
    prepare_docker()  # builds the image; quick when it is there
    busy = [port for port in NATIVE_PORTS if not port_is_free(port)]
    if busy:
        pytest.fail(f"native mode's ports {busy} are in use on this machine; stop `make run` first")
    docker("rm", "--force", CONTAINER)
    started = docker("run", "--detach", "--name", CONTAINER, "--network", "host", IMAGE)
    assert started.returncode == 0, started.stderr
    try:
        archive = tmp_path_factory.mktemp("fresh") / "checkout.tar"
        subprocess.run(
            ["tar", "-C", str(REPO_ROOT), "-cf", str(archive), "--", *tracked_files()],
            check=True,
        )
        assert docker("exec", CONTAINER, "mkdir", CHECKOUT).returncode == 0
        copied = docker("cp", str(archive), f"{CONTAINER}:/root/checkout.tar")
        assert copied.returncode == 0, copied.stderr
        unpacked = docker("exec", CONTAINER, "tar", "-C", CHECKOUT, "-xf", "/root/checkout.tar")
        assert unpacked.returncode == 0, unpacked.stderr
        # Nothing the README's "fresh machine" lacks may be there already.
        for command in ("nginx", "chromium", "psql", "docker"):
            found = docker("exec", CONTAINER, "sh", "-c", f"command -v {command}")
            assert found.returncode != 0, f"{command} is already in the fresh machine"
        assert docker("exec", CONTAINER, "test", "-e", "/usr/lib/postgresql").returncode != 0
        yield CONTAINER
    finally:
        docker("rm", "--force", CONTAINER)


@dataclass
class Visit:
    username: str = ""
    chat_url: str = ""
    reply: str = ""


VISIT = Visit()
TIMINGS: dict[str, float] = {}


def record_timing(name: str, seconds: float) -> None:
    TIMINGS[name] = round(seconds, 1)
    TIMINGS_FILE.parent.mkdir(parents=True, exist_ok=True)
    TIMINGS_FILE.write_text(json.dumps(TIMINGS, indent=2) + "\n")


def test_first_make_run_installs_everything_and_serves_the_chat(
    fresh_machine: str, open_tab: OpenTab
) -> None:
    start = time.monotonic()
    run = start_make_run("first-run")
    try:
        run.wait_until_ready(FIRST_RUN_TIMEOUT)
        record_timing("first `make run` until ready (fresh machine)", time.monotonic() - start)
        assert run.ready_url == APP_URL

        tab = open_tab()
        page = tab.page
        VISIT.username = unique_username("fresh")
        sign_up(page, APP_URL, VISIT.username)
        VISIT.chat_url = start_chat_and_get_reply(page, APP_URL)
        VISIT.reply = assistant_messages(page)[0]
        save_screenshot(page, "fresh-machine-chat")
        page.reload()
        expect(page.locator(".message--user .message__content").last).to_have_text(QUESTION)
        assert assistant_messages(page)[0] == VISIT.reply
        page.get_by_role("button", name="Sign out").click()
        expect(page).to_have_url(re.compile(r"/login"))
        assert tab.script_errors == []
    finally:
        run.interrupt()
    assert run.process.returncode is not None


def test_second_make_run_starts_in_seconds_and_keeps_the_chats(
    fresh_machine: str, open_tab: OpenTab
) -> None:
    assert VISIT.chat_url, "the first run's test must pass first"
    start = time.monotonic()
    run = start_make_run("second-run")
    try:
        run.wait_until_ready(SECOND_RUN_TIMEOUT)
        record_timing("second `make run` until ready", time.monotonic() - start)
        installed_again = [line for line in run.output if re.search("installing|creating", line)]
        assert installed_again == [], installed_again

        page = open_tab().page
        sign_in(page, APP_URL, VISIT.username)
        page.goto(VISIT.chat_url)
        expect(page.locator(".message--assistant").first).to_have_attribute(
            "data-status", "complete"
        )
        assert assistant_messages(page)[0] == VISIT.reply
    finally:
        run.interrupt()


def test_make_run_installs_a_package_that_went_missing(fresh_machine: str) -> None:
    """The machine of the bug report: everything but nginx, whose name the checkout's
    own nginx/ folder shares. `make run` must install it, not trip over the folder."""
    removed = docker(
        *("exec", fresh_machine, "apt-get", "purge", "-y", "-qq", "nginx", "nginx-common"),
        timeout=300,
    )
    assert removed.returncode == 0, removed.stderr
    assert docker("exec", fresh_machine, "sh", "-c", "command -v nginx").returncode != 0
    start = time.monotonic()
    run = start_make_run("nginx-missing")
    try:
        run.wait_until_ready(SECOND_RUN_TIMEOUT)
        record_timing("`make run` that reinstalls nginx", time.monotonic() - start)
        assert any("installing system packages: nginx" in line for line in run.output)
        response = httpx.get(f"{APP_URL}/login", timeout=10)
        assert response.status_code == httpx.codes.OK
    finally:
        run.interrupt()


def test_make_run_installed_no_test_toolchain(fresh_machine: str) -> None:
    """`make run` brings the services' dependencies, not pytest, Playwright or Chromium."""
    pip = f"{CHECKOUT}/.venv/bin/pip"
    listed = docker("exec", fresh_machine, pip, "list", "--format", "json").stdout
    installed = {package["name"].lower() for package in json.loads(listed)}
    assert {"fastapi", "xllamacpp", "honcho"} <= installed
    assert not installed & {"pytest", "playwright", "schemathesis", "matplotlib", "mypy"}
    assert docker("exec", fresh_machine, "sh", "-c", "command -v chromium").returncode != 0

"""The compose stack as users run it: isolation, non-root, persistence, recovery, and
the browser journey through nginx's published port.

The tests share one stack and run in file order: the journey leaves a user and a chat
behind that the persistence test expects to find after `down` and `up`.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.compose.conftest import ComposeStack
from tests.e2e.test_browser_journey import QUESTION, assistant_messages, start_chat_and_get_reply
from tests.support.browser import OpenTab, save_screenshot
from tests.support.factories import unique_username
from tests.support.pages import sign_in, sign_up
from tests.support.processes import REPO_ROOT

# curl's exit codes for "could not resolve host", "could not connect", "timed out".
UNREACHABLE_EXIT_CODES = {6, 7, 28}


@dataclass
class Journey:
    username: str = ""
    chat_url: str = ""
    reply: str = ""


JOURNEY = Journey()


def compose_services(stack: ComposeStack) -> list[dict[str, Any]]:
    """`docker compose ps --format json`: one JSON object per line (or one array)."""
    output = stack.compose("ps", "--all", "--format", "json").stdout.strip()
    if output.startswith("["):
        parsed: list[dict[str, Any]] = json.loads(output)
        return parsed
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def test_only_nginx_publishes_a_port(compose_stack: ComposeStack) -> None:
    published = {
        service["Service"]: sorted(
            {p["PublishedPort"] for p in service.get("Publishers") or [] if p["PublishedPort"]}
        )
        for service in compose_services(compose_stack)
    }
    assert set(published) >= {"nginx", "chat-ui", "db-api", "lm-api", "postgres", "model"}
    # HTTP, and HTTPS (which answers once a certificate is mounted).
    assert published.pop("nginx") == sorted([compose_stack.port, compose_stack.tls_port])
    assert all(ports == [] for ports in published.values()), published


@pytest.mark.parametrize(
    "target",
    ["http://db-api:8000/health/live", "http://postgres:5432/", "http://lm-api:8080/health"],
)
def test_backend_is_unreachable_from_nginx(compose_stack: ComposeStack, target: str) -> None:
    result = compose_stack.compose(
        "exec", "-T", "nginx", "curl", "-sS", "--max-time", "3", target, check=False
    )
    assert result.returncode in UNREACHABLE_EXIT_CODES, (result.returncode, result.stderr)


def test_chat_ui_is_reachable_from_nginx(compose_stack: ComposeStack) -> None:
    """The control for the test above: the same probe does reach nginx's one upstream."""
    result = compose_stack.compose(
        "exec", "-T", "nginx", "curl", "-fsS", "--max-time", "3", "http://chat-ui:8000/health"
    )
    assert result.returncode == 0


@pytest.mark.parametrize("service", ["chat-ui", "db-api"])
def test_services_run_as_non_root(compose_stack: ComposeStack, service: str) -> None:
    uid = compose_stack.compose("exec", "-T", service, "id", "-u").stdout.strip()
    assert uid.isdigit() and int(uid) != 0, uid


def test_model_step_runs_as_non_root(compose_stack: ComposeStack) -> None:
    # The step has exited (successfully: lm-api waited for it); run its image again.
    uid = compose_stack.compose(
        "run", "--rm", "--no-deps", "-T", "--entrypoint", "id", "model", "-u"
    ).stdout.strip()
    assert uid.isdigit() and int(uid) != 0, uid
    services = {service["Service"]: service for service in compose_services(compose_stack)}
    assert services["model"]["ExitCode"] == 0


@pytest.mark.parametrize("secret", ["SERVICE_TOKEN", "SESSION_SECRET", "POSTGRES_PASSWORD"])
def test_missing_secret_stops_compose_with_a_clear_message(
    compose_stack: ComposeStack, tmp_path: Path, secret: str
) -> None:
    lines = compose_stack.env_file.read_text().splitlines()
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{line}\n" for line in lines if not line.startswith(secret)))
    environment = {name: value for name, value in os.environ.items() if name != secret}
    command = ["docker", "compose", "--project-directory", str(REPO_ROOT)]
    command += ["--env-file", str(env_file), "--file", str(REPO_ROOT / "compose.yml")]
    result = subprocess.run(
        [*command, "config", "--quiet"],
        capture_output=True,
        text=True,
        env=environment,
        check=False,
    )
    assert result.returncode != 0
    assert f"set {secret} in .env" in result.stderr


def test_browser_journey_through_published_port(
    compose_stack: ComposeStack, open_tab: OpenTab
) -> None:
    tab = open_tab()
    page = tab.page
    base_url = compose_stack.url
    JOURNEY.username = unique_username("compose")

    start = time.monotonic()
    sign_up(page, base_url, JOURNEY.username)
    JOURNEY.chat_url = start_chat_and_get_reply(page, base_url)
    save_screenshot(page, "compose-chat")
    JOURNEY.reply = assistant_messages(page)[1]

    page.reload()
    expect(page.locator(".message--user .message__content").last).to_have_text(QUESTION)
    assert assistant_messages(page)[1] == JOURNEY.reply

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login"))
    sign_in(page, base_url, JOURNEY.username)
    page.goto(JOURNEY.chat_url)
    assert assistant_messages(page)[1] == JOURNEY.reply
    assert tab.script_errors == []
    compose_stack.timings["browser journey"] = round(time.monotonic() - start, 1)


def test_data_survives_down_and_up(compose_stack: ComposeStack, open_tab: OpenTab) -> None:
    assert JOURNEY.chat_url, "the journey test must run first"
    # Without --volumes: containers and networks go, the named volumes stay.
    compose_stack.timed("docker compose down (keep volumes)", "down")
    compose_stack.timed("docker compose up -d (warm, no build)", "up", "--detach")
    compose_stack.wait_until_serving("nginx answers after second up")

    page = open_tab().page
    sign_in(page, compose_stack.url, JOURNEY.username)
    sidebar_link = page.locator(
        "nav.sidebar a.chat-list__link", has_text="What is the capital of France"
    )
    expect(sidebar_link).to_be_visible()
    sidebar_link.click()
    expect(page).to_have_url(JOURNEY.chat_url)
    assert assistant_messages(page)[1] == JOURNEY.reply


def test_killed_chat_ui_container_comes_back(compose_stack: ComposeStack) -> None:
    """A crash (here SIGKILL of the container's main process, as the OOM killer does)
    is undone by the restart policy, and nginx serves again.

    `docker kill` itself would not show this: Docker records it as a manual stop, for
    which no restart policy restarts a container (measured here: it stays exited).
    """
    container = compose_stack.container_id("chat-ui")
    restarts_before = int(inspect(container, "{{.RestartCount}}"))
    pid = int(inspect(container, "{{.State.Pid}}"))
    start = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if int(inspect(container, "{{.RestartCount}}")) > restarts_before:
            break
        time.sleep(0.5)
    assert int(inspect(container, "{{.RestartCount}}")) > restarts_before, (
        "chat-ui was not restarted after its process was killed"
    )
    assert inspect(container, "{{.State.Status}}") == "running"
    compose_stack.wait_until_serving("chat-ui back after kill", timeout=120)
    compose_stack.timings["chat-ui restart after kill"] = round(time.monotonic() - start, 1)


def inspect(container: str, template: str) -> str:
    return subprocess.run(
        ["docker", "inspect", "--format", template, container],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()

"""The compose stack as users run it: isolation, non-root, persistence, recovery, and
the browser journey through nginx's published port.

The tests share one stack and run in file order: the journey leaves a user and a chat
behind that the persistence test expects to find after `down` and `up`.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from harness.factories import unique_username
from harness.processes import REPO_ROOT
from tests.compose.conftest import ComposeStack
from tests.e2e.test_browser_journey import QUESTION, assistant_messages, start_chat_and_get_reply
from tests.support.browser import OpenTab, save_screenshot
from tests.support.pages import sign_in, sign_up

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


SECRETS = ("SERVICE_TOKEN", "SESSION_SECRET", "POSTGRES_PASSWORD")
PRODUCTION_PROJECT = "chat-app-compose-production-test"


def secret_digests(stack: ComposeStack) -> dict[str, str]:
    """sha256 of each secret file in the stack's `secrets` volume (never the values)."""
    digests = {}
    for name in SECRETS:
        result = stack.compose(
            *("run", "--rm", "--no-deps", "-T", "--entrypoint", "sh", "secrets"),
            *("-c", f"sha256sum < /run/secrets/chat-app/{name}"),
        )
        digests[name] = result.stdout.split()[0]
    return digests


def test_secrets_are_generated_into_private_files(compose_stack: ComposeStack) -> None:
    """No .env: each secret is a file only the services' user can read, and no service
    carries a secret in its environment."""
    for service in ("db-api", "chat-ui"):
        listing = compose_stack.compose(
            "exec",
            "-T",
            service,
            "stat",
            "-c",
            "%n %a %u",
            *(f"/run/secrets/chat-app/{name}" for name in SECRETS),
        ).stdout.split("\n")
        assert [line.split()[1:] for line in listing if line] == [["400", "10001"]] * 3
        environment = compose_stack.compose("exec", "-T", service, "env").stdout
        assert not re.search(rf"^({'|'.join(SECRETS)})=.", environment, re.MULTILINE)
    assert len(set(secret_digests(compose_stack).values())) == len(SECRETS)


@dataclass
class ProductionProject:
    """A second compose project (its own volumes) in production mode, db-api only."""

    env_file: Path

    def command(self, *arguments: str) -> list[str]:
        return [
            *("docker", "compose", "--project-name", PRODUCTION_PROJECT),
            *("--project-directory", str(REPO_ROOT), "--file", str(REPO_ROOT / "compose.yml")),
            *("--env-file", str(self.env_file), *arguments),
        ]

    def up(self, secrets: dict[str, str]) -> subprocess.CompletedProcess[str]:
        values = {"APP_ENV": "production", **secrets}
        self.env_file.write_text("".join(f"{name}={value}\n" for name, value in values.items()))
        # db-api needs PostgreSQL and the secrets, not the model: nothing is downloaded.
        return self.run("up", "--detach", "--wait", "db-api")

    def run(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*arguments), capture_output=True, text=True, timeout=600, check=False
        )


@pytest.fixture
def production_project(tmp_path: Path) -> Iterator[ProductionProject]:
    project = ProductionProject(env_file=tmp_path / ".env")
    project.run("down", "--volumes", "--remove-orphans")
    try:
        yield project
    finally:
        project.run("down", "--volumes", "--remove-orphans")


def real_secrets() -> dict[str, str]:
    return {name: secrets.token_urlsafe(32) for name in SECRETS}


@pytest.mark.parametrize("secret", SECRETS)
def test_production_without_a_secret_refuses_to_start_and_names_it(
    production_project: ProductionProject, secret: str
) -> None:
    given = {name: value for name, value in real_secrets().items() if name != secret}
    result = production_project.up(given)
    assert result.returncode != 0
    logs = production_project.run("logs", "--no-color", "secrets").stdout
    assert f"APP_ENV=production needs {secret}: set it in .env" in logs
    running = production_project.run("ps", "--quiet", "db-api", "postgres").stdout.split()
    assert running == []


def test_production_refuses_a_placeholder_secret(production_project: ProductionProject) -> None:
    result = production_project.up({**real_secrets(), "POSTGRES_PASSWORD": "changeme"})
    assert result.returncode != 0
    logs = production_project.run("logs", "--no-color", "secrets").stdout
    assert "APP_ENV=production refuses POSTGRES_PASSWORD: it is a placeholder" in logs


def test_production_with_its_secrets_in_env_starts(production_project: ProductionProject) -> None:
    result = production_project.up(real_secrets())
    assert result.returncode == 0, result.stdout + result.stderr
    health = production_project.run(
        "exec",
        "-T",
        "db-api",
        "python",
        "-c",
        "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8000/health/ready').status)",
    )
    assert health.stdout.strip() == "200", health.stdout + health.stderr


def test_an_operator_creates_an_admin_from_the_command_line(compose_stack: ComposeStack) -> None:
    """The README's recipe: `docker compose exec db-api python -m db_api.admin ...`."""
    name = unique_username("operator")
    admin = ("exec", "-T", "db-api", "python", "-m", "db_api.admin")
    compose_stack.compose(
        *admin, "create-admin", name, "--password-stdin", input="an operator passphrase\n"
    )
    listed = compose_stack.compose(*admin, "list-users").stdout
    row = next(line.split() for line in listed.splitlines() if line.startswith(name))
    assert row[1:3] == ["admin", "active"], listed


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
    JOURNEY.reply = assistant_messages(page)[0]

    page.reload()
    expect(page.locator(".message--user .message__content").last).to_have_text(QUESTION)
    assert assistant_messages(page)[0] == JOURNEY.reply

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login"))
    sign_in(page, base_url, JOURNEY.username)
    page.goto(JOURNEY.chat_url)
    assert assistant_messages(page)[0] == JOURNEY.reply
    assert tab.script_errors == []
    compose_stack.timings["browser journey"] = round(time.monotonic() - start, 1)


def test_data_secrets_and_sessions_survive_down_and_up(
    compose_stack: ComposeStack, open_tab: OpenTab
) -> None:
    assert JOURNEY.chat_url, "the journey test must run first"
    signed_in = open_tab().page
    sign_in(signed_in, compose_stack.url, JOURNEY.username)
    secrets_before = secret_digests(compose_stack)
    # Without --volumes: containers and networks go, the named volumes stay.
    compose_stack.timed("docker compose down (keep volumes)", "down")
    compose_stack.timed("docker compose up -d (warm, no build)", "up", "--detach")
    compose_stack.wait_until_serving("nginx answers after second up")
    assert secret_digests(compose_stack) == secrets_before

    # The sign-in from before `down` still holds: same signing key, same database.
    signed_in.goto(JOURNEY.chat_url)
    expect(signed_in).to_have_url(JOURNEY.chat_url)
    assert assistant_messages(signed_in)[0] == JOURNEY.reply

    page = open_tab().page
    sign_in(page, compose_stack.url, JOURNEY.username)
    sidebar_link = page.locator(
        "nav.sidebar a.chat-list__link", has_text="What is the capital of France"
    )
    expect(sidebar_link).to_be_visible()
    sidebar_link.click()
    expect(page).to_have_url(JOURNEY.chat_url)
    assert assistant_messages(page)[0] == JOURNEY.reply


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

"""APP_ENV=production refuses missing, placeholder and short secrets in both apps."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from chat_ui.config import Settings as ChatUiSettings
from db_api.config import Settings as DbApiSettings
from harness.processes import REPO_ROOT

REAL = "r" * 43
BAD_VALUES = {
    "missing": None,
    "empty": "",
    "blank": "   ",
    "placeholder": "changeme",
    "shouted placeholder": "CHANGEME",
    "padded placeholder": " change-me ",
    "word": "password",
    "short": "s" * 31,
}
SECRETS_BY_APP = {
    "chat-ui": ("service_token", "session_secret"),
    "db-api": ("service_token", "postgres_password"),
}


def build(app: str, values: dict[str, object]) -> object:
    settings = ChatUiSettings if app == "chat-ui" else DbApiSettings
    return settings.model_validate({"app_env": "production", **values})


CASES = [
    (app, secret, label)
    for app, secrets in SECRETS_BY_APP.items()
    for secret in secrets
    for label in BAD_VALUES
]


@pytest.mark.parametrize(("app", "secret", "label"), CASES)
def test_production_refuses(
    monkeypatch: pytest.MonkeyPatch, app: str, secret: str, label: str
) -> None:
    for name in ("SERVICE_TOKEN", "SESSION_SECRET", "POSTGRES_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    values: dict[str, object] = dict.fromkeys(SECRETS_BY_APP[app], REAL)
    if BAD_VALUES[label] is None:
        del values[secret]
    else:
        values[secret] = BAD_VALUES[label]
    with pytest.raises(ValidationError) as refused:
        build(app, values)
    assert secret.upper() in str(refused.value)


@pytest.mark.parametrize("app", sorted(SECRETS_BY_APP))
def test_production_accepts_real_secrets(app: str) -> None:
    build(app, dict.fromkeys(SECRETS_BY_APP[app], REAL))


@pytest.mark.parametrize(
    ("module", "env"),
    [
        ("chat_ui.main:app", {"SERVICE_TOKEN": REAL, "SESSION_SECRET": "changeme"}),
        ("db_api.main:app", {"SERVICE_TOKEN": REAL, "POSTGRES_PASSWORD": "short"}),
    ],
)
def test_the_real_process_will_not_start(module: str, env: dict[str, str]) -> None:
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("SERVICE_TOKEN", "SESSION_SECRET", "POSTGRES_PASSWORD")
    }
    environment |= {
        "APP_ENV": "production",
        "PYTHONPATH": "db-api:chat-ui:lm-api",
        **env,
    }
    # Port 9 on loopback: nothing is ever served; the process must stop before listening.
    result = subprocess.run(
        [sys.executable, "-m", "uvicorn", module, "--host", "127.0.0.1", "--port", "9"],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "production" in result.stderr


def clear_secret_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SERVICE_TOKEN", "SESSION_SECRET", "POSTGRES_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"{name}_FILE", raising=False)
    monkeypatch.setenv("APP_ENV", "production")


def from_environment(app: str) -> object:
    """Settings as the service reads them at start-up."""
    return ChatUiSettings() if app == "chat-ui" else DbApiSettings()


def plain(value: object) -> object:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


@pytest.mark.parametrize("app", SECRETS_BY_APP)
def test_secrets_can_come_from_files(
    app: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Compose's way: NAME_FILE names a file holding the secret (trailing newline dropped)."""
    clear_secret_environment(monkeypatch)
    for secret in SECRETS_BY_APP[app]:
        (tmp_path / secret).write_text(f"{secret}-{REAL}\n")
        monkeypatch.setenv(f"{secret.upper()}_FILE", str(tmp_path / secret))
    settings = from_environment(app)
    for secret in SECRETS_BY_APP[app]:
        assert plain(getattr(settings, secret)) == f"{secret}-{REAL}"


@pytest.mark.parametrize("app", SECRETS_BY_APP)
def test_a_secret_and_its_file_together_are_refused(
    app: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clear_secret_environment(monkeypatch)
    for secret in SECRETS_BY_APP[app]:
        monkeypatch.setenv(secret.upper(), REAL)
    name = SECRETS_BY_APP[app][0].upper()
    (tmp_path / "secret").write_text(REAL)
    monkeypatch.setenv(f"{name}_FILE", str(tmp_path / "secret"))
    with pytest.raises(ValidationError, match=f"set {name} or {name}_FILE, not both"):
        from_environment(app)


@pytest.mark.parametrize("app", SECRETS_BY_APP)
def test_an_unreadable_secret_file_names_the_variable(
    app: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clear_secret_environment(monkeypatch)
    name = SECRETS_BY_APP[app][1].upper()
    monkeypatch.setenv(f"{name}_FILE", str(tmp_path / "absent"))
    with pytest.raises(ValidationError, match=f"{name}_FILE=.*absent cannot be read"):
        from_environment(app)

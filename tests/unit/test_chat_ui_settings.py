"""chat-ui settings: defaults, environment names, and refusing placeholder secrets in production."""

from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError

from chat_ui.config import Settings

GOOD_SECRET = "s" * 32
SETTING_NAMES = (
    "APP_ENV",
    "SERVICE_TOKEN",
    "SESSION_SECRET",
    "DB_API_URL",
    "MAX_MESSAGE_CHARS",
    "SYSTEM_PROMPT",
    "COOKIE_SECURE",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICE_TOKEN", GOOD_SECRET)
    monkeypatch.setenv("SESSION_SECRET", GOOD_SECRET)
    settings = Settings()
    assert settings.app_env == "development"
    assert settings.system_prompt == "You are a helpful assistant."
    assert settings.opening_message == "Hello, how can I assist you today?"
    assert settings.max_message_chars == 4000
    assert settings.max_reply_tokens == 512
    assert settings.session_max_age_seconds == 1209600
    assert settings.cookie_secure is False


def test_reads_the_documented_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_API_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("MAX_MESSAGE_CHARS", "100")
    monkeypatch.setenv("COOKIE_SECURE", "true")
    monkeypatch.setenv("SYSTEM_PROMPT", "Answer in French.")
    settings = Settings()
    assert settings.db_api_url == "http://127.0.0.1:9"
    assert settings.max_message_chars == 100
    assert settings.cookie_secure is True
    assert settings.system_prompt == "Answer in French."


@pytest.mark.parametrize("placeholder", ["", "changeme", "CHANGEME", "short-but-not-empty"])
@pytest.mark.parametrize("name", ["SERVICE_TOKEN", "SESSION_SECRET"])
def test_production_refuses_placeholder_secrets(
    monkeypatch: pytest.MonkeyPatch, name: str, placeholder: str
) -> None:
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("SERVICE_TOKEN", GOOD_SECRET)
    monkeypatch.setenv("SESSION_SECRET", GOOD_SECRET)
    monkeypatch.setenv(name, placeholder)
    with pytest.raises(ValidationError, match=f"Refusing to start in production: {name}"):
        Settings()


def test_production_accepts_real_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("SERVICE_TOKEN", GOOD_SECRET)
    monkeypatch.setenv("SESSION_SECRET", GOOD_SECRET)
    assert Settings().app_env == "production"


def test_development_warns_and_still_signs_cookies(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SERVICE_TOKEN", "changeme")
    with caplog.at_level(logging.WARNING, logger="chat_ui.config"):
        settings = Settings()
    assert "SERVICE_TOKEN is empty or a placeholder" in caplog.text
    assert "SESSION_SECRET" in caplog.text
    # An empty key would make every cookie forgeable, so a random one is used instead.
    assert len(settings.session_secret) >= 32


def test_unknown_app_env_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_ENV", "staging")
    with pytest.raises(ValidationError):
        Settings()

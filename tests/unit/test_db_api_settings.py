"""db-api settings: production refuses placeholder secrets, development only warns."""

from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError

from db_api.config import RateLimit, Settings

STRONG_TOKEN = "s" * 32
STRONG_PASSWORD = "a-real-database-password-of-32-chars"


def _settings(**values: object) -> Settings:
    # Explicit values win over the environment, so the runner's variables cannot leak in.
    return Settings.model_validate(values)


@pytest.mark.parametrize(
    ("token", "password", "complaint"),
    [
        ("changeme", STRONG_PASSWORD, "SERVICE_TOKEN"),
        ("", STRONG_PASSWORD, "SERVICE_TOKEN"),
        ("s" * 31, STRONG_PASSWORD, "shorter than 32"),
        (STRONG_TOKEN, "changeme", "POSTGRES_PASSWORD"),
        (STRONG_TOKEN, "", "POSTGRES_PASSWORD"),
    ],
)
def test_production_refuses_placeholder_secrets(token: str, password: str, complaint: str) -> None:
    with pytest.raises(ValidationError) as error:
        _settings(app_env="production", service_token=token, postgres_password=password)
    assert "APP_ENV=production refuses placeholder secrets" in str(error.value)
    assert complaint in str(error.value)


def test_production_accepts_real_secrets() -> None:
    settings = _settings(
        app_env="production", service_token=STRONG_TOKEN, postgres_password=STRONG_PASSWORD
    )
    assert settings.app_env == "production"
    assert settings.service_token.get_secret_value() == STRONG_TOKEN


def test_development_accepts_placeholders_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="db_api.config"):
        settings = _settings(
            app_env="development", service_token="changeme", postgres_password="changeme"
        )
    assert settings.app_env == "development"
    assert "SERVICE_TOKEN" in caplog.text
    assert "POSTGRES_PASSWORD" in caplog.text


def test_development_with_real_secrets_is_silent(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="db_api.config"):
        _settings(service_token=STRONG_TOKEN, postgres_password=STRONG_PASSWORD)
    assert caplog.text == ""


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTGRES_HOST", "db.internal")
    monkeypatch.setenv("POSTGRES_PORT", "5433")
    monkeypatch.setenv("LOGIN_MAX_FAILURES", "7")
    monkeypatch.setenv("SERVICE_TOKEN", STRONG_TOKEN)
    monkeypatch.setenv("POSTGRES_PASSWORD", STRONG_PASSWORD)
    settings = Settings()
    assert settings.login_max_failures == 7
    assert settings.login_lock_seconds == 60
    url = settings.database_url
    assert (url.host, url.port, url.drivername) == ("db.internal", 5433, "postgresql+asyncpg")
    assert STRONG_PASSWORD not in repr(settings)


def test_unknown_app_env_is_refused() -> None:
    with pytest.raises(ValidationError):
        _settings(app_env="staging")


def test_rate_limits_default_to_a_households_pace() -> None:
    settings = _settings()
    assert settings.reply_limit == RateLimit(per_minute=6, burst=20)
    assert settings.chat_limit == RateLimit(per_minute=2, burst=20)


@pytest.mark.parametrize(
    "values",
    [
        {"replies_per_minute": 0},
        {"replies_per_minute": -1},
        {"reply_burst": 0},
        {"chats_per_minute": 0},
        {"chat_burst": 0},
    ],
)
def test_rate_limits_must_be_positive(values: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        _settings(**values)


def test_a_rate_limit_may_be_a_fraction_per_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPLIES_PER_MINUTE", "0.5")
    monkeypatch.setenv("CHAT_BURST", "3")
    settings = Settings()
    assert settings.reply_limit.per_minute == 0.5
    assert settings.chat_limit.burst == 3

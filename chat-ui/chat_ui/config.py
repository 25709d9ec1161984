"""chat-ui settings: every environment variable the service reads, typed and validated once."""

from __future__ import annotations

import logging
import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

logger = logging.getLogger(__name__)

# Values people leave in by mistake; compared trimmed and regardless of case.
PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "change_me", "secret", "password"})
MIN_SECRET_LENGTH = 32


def secret_problem(value: str) -> str | None:
    """Why `value` is not a real secret, or None when it is acceptable."""
    if value.strip().lower() in PLACEHOLDER_SECRETS:
        return "is empty or a placeholder"
    if len(value.strip()) < MIN_SECRET_LENGTH:
        return f"is shorter than {MIN_SECRET_LENGTH} characters"
    return None


def secrets_from_files(data: Any, names: tuple[str, ...]) -> Any:
    """Fill each secret NAME given as NAME_FILE=/path instead (the official images' way).

    Compose hands secrets over as files in a volume; Kubernetes and native mode set
    the variables themselves. Setting both for one secret is a mistake worth a stop.
    """
    if not isinstance(data, dict):
        return data
    for name in names:
        path = os.environ.get(f"{name}_FILE")
        if not path:
            continue
        if data.get(name.lower()):
            raise ValueError(f"set {name} or {name}_FILE, not both")
        try:
            data[name.lower()] = Path(path).read_text().rstrip("\r\n")
        except OSError as error:
            raise ValueError(f"{name}_FILE={path} cannot be read: {error.strerror}") from None
    return data


class Settings(BaseSettings):
    """chat-ui configuration, read from the environment (names are case-insensitive)."""

    model_config = SettingsConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def read_secret_files(cls, data: Any) -> Any:
        return secrets_from_files(data, ("SERVICE_TOKEN", "SESSION_SECRET"))

    db_api_url: str = Field(default="http://127.0.0.1:8082", description="Base URL of db-api.")
    lm_api_url: str = Field(
        default="http://127.0.0.1:8081", description="Base URL of the llama.cpp server."
    )
    service_token: str = Field(default="", description="Shared secret presented to db-api.")
    session_secret: str = Field(default="", description="Key that signs the session cookie.")
    app_env: Literal["development", "production"] = "development"
    system_prompt: str = "You are a helpful assistant."
    opening_message: str = "Hello, how can I assist you today?"
    max_message_chars: int = Field(default=4000, ge=1, le=32000)
    max_reply_tokens: int = Field(default=512, ge=1)
    session_max_age_seconds: int = Field(default=1209600, ge=60)
    page_cache_mb: int = Field(
        default=32,
        ge=0,
        description="Rendered chat pages kept in memory (0: render every view).",
    )
    cookie_secure: bool = False
    max_request_bytes: int | None = Field(
        default=None,
        ge=1024,
        description="Largest request body accepted (413 above it). Default: room for a "
        "form holding the longest message, at least 64 KiB.",
    )
    lm_timeout_seconds: float = Field(
        default=300.0,
        gt=0,
        description="Seconds one reply may take before we give up.",
    )

    @property
    def request_bytes_limit(self) -> int:
        if self.max_request_bytes is not None:
            return self.max_request_bytes
        # Percent-encoded UTF-8 takes up to 12 bytes a character (4 bytes, 3 each).
        return max(64 * 1024, 12 * self.max_message_chars + 8 * 1024)

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Settings:
        problems = {
            name: problem
            for name, value in (
                ("SERVICE_TOKEN", self.service_token),
                ("SESSION_SECRET", self.session_secret),
            )
            if (problem := secret_problem(value)) is not None
        }
        if not problems:
            return self
        described = "; ".join(f"{name} {problem}" for name, problem in problems.items())
        advice = (
            f"set a random value of at least {MIN_SECRET_LENGTH} characters, e.g. "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
        )
        if self.app_env == "production":
            raise ValueError(f"Refusing to start in production: {described}; {advice}.")
        logger.warning("Insecure development settings: %s; %s.", described, advice)
        if not self.session_secret:
            # Without any key every cookie would be forgeable; a per-process key keeps
            # development usable at the price of sessions not surviving a restart.
            self.session_secret = secrets.token_urlsafe(32)
        return self


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings()

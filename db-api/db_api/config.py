"""db-api settings: every environment variable the service reads, typed and checked at start-up."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import URL

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


@dataclass(frozen=True)
class RateLimit:
    """A token bucket: `burst` actions at once, then `per_minute` more every minute."""

    per_minute: float
    burst: int


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
    """Configuration of db-api, read from the environment (names are case-insensitive)."""

    model_config = SettingsConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def read_secret_files(cls, data: Any) -> Any:
        return secrets_from_files(data, ("SERVICE_TOKEN", "POSTGRES_PASSWORD"))

    app_env: Literal["development", "production"] = Field(
        default="development", description="`production` refuses placeholder secrets at start-up."
    )
    postgres_host: str = Field(default="127.0.0.1", description="PostgreSQL host name or address.")
    postgres_port: int = Field(default=54329, ge=1, le=65535, description="PostgreSQL TCP port.")
    postgres_user: str = Field(default="chat", description="PostgreSQL role db-api connects as.")
    postgres_password: SecretStr = Field(
        default=SecretStr("changeme"), description="Password of `POSTGRES_USER`."
    )
    postgres_db: str = Field(default="chat", description="Database holding the app's tables.")
    service_token: SecretStr = Field(
        default=SecretStr("changeme"),
        description="Shared secret callers present as `Authorization: Bearer ...`.",
    )
    login_max_failures: int = Field(
        default=5, ge=1, description="Consecutive failed logins before an account is locked."
    )
    login_lock_seconds: int = Field(
        default=60,
        ge=1,
        description="How long a locked account (from one client address) or a locked client "
        "address answers 429 to logins.",
    )
    login_ip_max_failures: int = Field(
        default=20,
        ge=1,
        description="Failed logins from one client address, on any accounts, within "
        "`LOGIN_IP_WINDOW_SECONDS` before that address is locked.",
    )
    login_ip_window_seconds: int = Field(
        default=300, ge=1, description="The window in which a client address's failures count."
    )
    login_account_max_failures: int = Field(
        default=10,
        ge=1,
        description="Failed logins to one account, from any addresses, within "
        "`LOGIN_ACCOUNT_WINDOW_SECONDS` before every further one waits, twice as long each time.",
    )
    login_account_window_seconds: int = Field(
        default=900, ge=1, description="The window in which an account's failures count."
    )
    login_max_delay_seconds: int = Field(
        default=300,
        ge=1,
        description="The longest wait between attempts on an account under attack.",
    )

    # Per user, in PostgreSQL, so they hold across replicas. A household never meets
    # them: typing and reading a reply take longer than the refill. A script that
    # starts and stops replies in a loop makes the model read a whole chat each time.
    replies_per_minute: float = Field(
        default=6,
        gt=0,
        description="Replies one user may start (send, retry, regenerate, edit) per minute, "
        "once `REPLY_BURST` is used up; beyond, 429 with `Retry-After`.",
    )
    reply_burst: int = Field(
        default=20, ge=1, description="Replies one user may start at once, in a row."
    )
    chats_per_minute: float = Field(
        default=2,
        gt=0,
        description="Chats one user may create per minute, once `CHAT_BURST` is used up; "
        "beyond, 429 with `Retry-After`.",
    )
    chat_burst: int = Field(
        default=20, ge=1, description="Chats one user may create at once, in a row."
    )

    # Per client address: every sign-up costs an argon2 hash (64 MiB and a core), and a
    # refused "username taken" tells whether a name exists. A household signs up a few
    # people at once; a script making accounts or probing names gets a few an hour.
    signups_per_hour: float = Field(
        default=6,
        gt=0,
        description="Sign-ups (accounts created, or names found taken) one client address may "
        "make per hour after `SIGNUP_BURST`; beyond, 429 with `Retry-After`.",
    )
    signup_burst: int = Field(
        default=5, ge=1, description="Sign-ups one client address may make at once, in a row."
    )

    signup_mode: Literal["open", "approval", "closed"] = Field(
        default="approval",
        description="Who may create an account, until an admin changes it on the settings "
        "page: `open` (anyone who reaches the app), `approval` (anyone, but an admin approves "
        "the account before it can chat) or `closed` (only with an admin's invite link). The "
        "first account is always allowed and is the admin.",
    )
    password_reset_hours: float = Field(
        default=24, gt=0, le=24 * 30, description="How long an admin's password-reset link works."
    )

    @property
    def signup_limit(self) -> RateLimit:
        return RateLimit(self.signups_per_hour / 60, self.signup_burst)

    @property
    def reply_limit(self) -> RateLimit:
        return RateLimit(self.replies_per_minute, self.reply_burst)

    @property
    def chat_limit(self) -> RateLimit:
        return RateLimit(self.chats_per_minute, self.chat_burst)

    @model_validator(mode="after")
    def refuse_placeholder_secrets(self) -> Self:
        problems = self.placeholder_secret_problems()
        if not problems:
            return self
        summary = "; ".join(problems)
        if self.app_env == "production":
            raise ValueError(
                f"APP_ENV=production refuses placeholder secrets: {summary}. "
                "Set real values in the environment before starting db-api."
            )
        logger.warning("Placeholder secrets in use (acceptable only in development): %s", summary)
        return self

    def placeholder_secret_problems(self) -> list[str]:
        """Human descriptions of every secret that is missing, a placeholder or too short."""
        values = {
            "SERVICE_TOKEN": self.service_token.get_secret_value(),
            "POSTGRES_PASSWORD": self.postgres_password.get_secret_value(),
        }
        return [
            f"{name} {problem}"
            for name, value in values.items()
            if (problem := secret_problem(value)) is not None
        ]

    @property
    def database_url(self) -> URL:
        """The service's URL (asyncpg); migrations swap in psycopg2, Alembic's own driver."""
        return URL.create(
            "postgresql+asyncpg",
            username=self.postgres_user,
            password=self.postgres_password.get_secret_value(),
            host=self.postgres_host,
            port=self.postgres_port,
            database=self.postgres_db,
        )


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()

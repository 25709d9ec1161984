"""The README's configuration table is the one reference of environment variables.

Every variable a settings class reads (by its env name), every variable native mode
defaults and every variable compose.yml takes from `.env` must be in that table and
in `.env.example`; the table must not list a variable that nothing reads. Fields
that users are not meant to set are in `INTERNAL`, each with its reason.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from pydantic_settings import BaseSettings

from chat_ui.config import Settings as ChatUiSettings
from db_api.config import Settings as DbApiSettings
from lm_api.config import ModelSettings, ServerSettings
from native.stack import DEFAULTS as NATIVE_DEFAULTS

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[2]
README = REPO_ROOT / "README.md"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
SETTINGS_CLASSES: tuple[type[BaseSettings], ...] = (
    DbApiSettings,
    ChatUiSettings,
    ModelSettings,
    ServerSettings,
)

# Settings fields read from the environment that are deliberately left out of the
# reference and .env.example.
INTERNAL: dict[str, str] = {
    "LLAMA_ARG_HOST": "where llama.cpp listens is fixed by each deployment: native mode "
    "binds 127.0.0.1 (LM_API_PORT sets the port), compose and Kubernetes in their manifests",
    "LLAMA_ARG_PORT": "set from LM_API_PORT by native mode; fixed by compose and Kubernetes",
    "LLAMA_ARG_CONT_BATCHING": "always on: parallel slots decode together",
    "LLAMA_ARG_ENDPOINT_METRICS": "always on: /metrics is how the tests see a freed slot",
    "LLAMA_ARG_ENDPOINT_SLOTS": "always on: /slots is how the tests see a freed slot",
    "LLAMA_ARG_ENDPOINT_PROPS": "always on: chat-ui reads the context size from /props",
}

_UPPER_NAME = re.compile(r"`([A-Z][A-Z0-9_]*)`")
# env["NAME"], env.get("NAME"), os.environ.get("NAME") in native/stack.py.
_NATIVE_READ = re.compile(r"""(?:env|environ)(?:\.get\(|\[)["']([A-Z][A-Z0-9_]*)["']""")
# ${NAME...} in compose.yml; $${NAME} is the container shell's, not compose's.
_COMPOSE_READ = re.compile(r"(?<!\$)\$\{([A-Z][A-Z0-9_]*)")


def settings_env_names(settings_class: type[BaseSettings]) -> set[str]:
    """The environment variable behind each field, as pydantic-settings looks it up."""
    prefix = settings_class.model_config.get("env_prefix", "")
    names = set()
    for field_name, field in settings_class.model_fields.items():
        alias = field.validation_alias
        names.add(alias.upper() if isinstance(alias, str) else f"{prefix}{field_name}".upper())
    return names


def all_settings_names() -> set[str]:
    return set().union(*(settings_env_names(cls) for cls in SETTINGS_CLASSES))


def reference_names() -> set[str]:
    """Names in the first column of the table under the README's `## Configuration`."""
    section = README.read_text().split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            names.update(_UPPER_NAME.findall(line.split("|")[1]))
    return names


def env_example_names() -> set[str]:
    """`NAME=` lines of .env.example, set or commented out (`# NAME=value`)."""
    pattern = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=", re.MULTILINE)
    return set(pattern.findall(ENV_EXAMPLE.read_text()))


def native_names() -> set[str]:
    source = (REPO_ROOT / "native" / "stack.py").read_text()
    return set(NATIVE_DEFAULTS) | set(_NATIVE_READ.findall(source))


def compose_names() -> set[str]:
    return set(_COMPOSE_READ.findall((REPO_ROOT / "compose.yml").read_text()))


def _field_value(settings: BaseSettings, field_name: str) -> object:
    value = getattr(settings, field_name)
    return value.get_secret_value() if hasattr(value, "get_secret_value") else value


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in all_settings_names():
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"{name}_FILE", raising=False)


@pytest.fixture
def file_names(clean_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> set[str]:
    """`NAME_FILE` variables the settings classes read, found by trying each field."""
    secret = tmp_path / "secret"
    secret.write_text("read-from-a-file-" + "x" * 32)
    found = set()
    for settings_class in SETTINGS_CLASSES:
        prefix = settings_class.model_config.get("env_prefix", "")
        for field_name in settings_class.model_fields:
            name = f"{prefix}{field_name}".upper()
            with monkeypatch.context() as env:
                env.setenv(f"{name}_FILE", str(secret))
                if _field_value(settings_class(), field_name) == secret.read_text():
                    found.add(f"{name}_FILE")
    return found


def test_the_reference_table_is_found() -> None:
    assert {"APP_ENV", "SERVICE_TOKEN", "LLAMA_ARG_CTX_SIZE"} <= reference_names()


def test_internal_names_are_settings_fields() -> None:
    assert set(INTERNAL) <= all_settings_names()


def test_every_setting_is_in_the_reference() -> None:
    expected = (all_settings_names() - set(INTERNAL)) | set(NATIVE_DEFAULTS) | compose_names()

    missing = sorted(expected - reference_names())
    assert not missing, f"add to the README's configuration table: {missing}"


def test_every_setting_is_in_env_example() -> None:
    expected = (all_settings_names() - set(INTERNAL)) | set(NATIVE_DEFAULTS) | compose_names()

    missing = sorted(expected - env_example_names())
    assert not missing, f"add to .env.example (commented out is fine): {missing}"


def test_secret_files_are_in_the_reference(file_names: set[str]) -> None:
    assert file_names >= {"SERVICE_TOKEN_FILE", "SESSION_SECRET_FILE", "POSTGRES_PASSWORD_FILE"}
    missing = sorted(file_names - reference_names())
    assert not missing, f"add to the README's configuration table: {missing}"


def test_the_reference_lists_nothing_unread(file_names: set[str]) -> None:
    read = all_settings_names() | file_names | native_names() | compose_names()

    unread = sorted(reference_names() - read)
    assert not unread, f"the README's configuration table lists what nothing reads: {unread}"


def test_env_example_sets_nothing_unread() -> None:
    read = all_settings_names() | native_names() | compose_names()

    unread = sorted(env_example_names() - read)
    assert not unread, f".env.example sets what nothing reads: {unread}"


def test_compose_runs_the_model_server_with_native_modes_defaults(clean_env: None) -> None:
    """compose.yml's `${LLAMA_ARG_…:-default}` values are lm-api's own defaults."""
    compose = (REPO_ROOT / "compose.yml").read_text()
    defaults = dict(re.findall(r"\$\{(LLAMA_ARG_[A-Z_]+):-([^}]*)\}", compose))
    assert {"LLAMA_ARG_CTX_SIZE", "LLAMA_ARG_N_PREDICT", "LLAMA_ARG_CACHE_RAM"} <= set(defaults)
    native = ServerSettings()
    for name, value in defaults.items():
        field = name.removeprefix("LLAMA_ARG_").lower()
        assert str(getattr(native, field)) == value, name


@pytest.mark.parametrize(
    ("service", "settings_class"), [("chat-ui", ChatUiSettings), ("db-api", DbApiSettings)]
)
def test_compose_gives_each_service_its_own_defaults(
    clean_env: None,
    monkeypatch: pytest.MonkeyPatch,
    service: str,
    settings_class: type[BaseSettings],
) -> None:
    """A `${NAME:-default}` in a service's compose environment is that service's default."""
    environment = yaml.safe_load((REPO_ROOT / "compose.yml").read_text())["services"][service][
        "environment"
    ]
    fields = {name.upper(): name for name in settings_class.model_fields}
    compared = 0
    for name, value in environment.items():
        match = re.fullmatch(r"\$\{([A-Z_]+):-(.*)\}", str(value))
        if match is None or match[1] != name or name not in fields:
            continue
        with monkeypatch.context() as env:
            env.setenv(name, match[2])
            from_compose = _field_value(settings_class(), fields[name])
        assert from_compose == _field_value(settings_class(), fields[name]), name
        compared += 1
    assert compared >= 5

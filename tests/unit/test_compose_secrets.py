"""deploy/compose/secrets.sh, compose's one-shot `secrets` step, run for real with sh."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from harness.processes import REPO_ROOT

pytestmark = pytest.mark.unit

SCRIPT = REPO_ROOT / "deploy" / "compose" / "secrets.sh"
SECRETS = ("POSTGRES_PASSWORD", "SERVICE_TOKEN", "SESSION_SECRET")
REAL = "r" * 43


def run_step(directory: Path, **environment: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"],
        "SECRETS_DIR": str(directory),
        # The real step hands the files to the services' user; here, to ourselves.
        "SECRETS_OWNER": f"{os.getuid()}:{os.getgid()}",
        **environment,
    }
    return subprocess.run(
        ["sh", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30, check=False
    )


def contents(directory: Path) -> dict[str, str]:
    return {name: (directory / name).read_text() for name in SECRETS}


def test_development_generates_private_random_secrets_once(tmp_path: Path) -> None:
    first = run_step(tmp_path)
    assert first.returncode == 0, first.stderr
    generated = contents(tmp_path)
    assert len(set(generated.values())) == len(SECRETS)
    assert all(len(value) >= 32 and value.isascii() for value in generated.values())
    for name in SECRETS:
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o400
    assert run_step(tmp_path).returncode == 0
    assert contents(tmp_path) == generated


def test_a_value_from_the_environment_wins_and_is_kept(tmp_path: Path) -> None:
    assert run_step(tmp_path).returncode == 0
    assert run_step(tmp_path, SESSION_SECRET=REAL).returncode == 0
    assert contents(tmp_path)["SESSION_SECRET"] == REAL
    assert run_step(tmp_path).returncode == 0
    assert contents(tmp_path)["SESSION_SECRET"] == REAL


@pytest.mark.parametrize("missing", SECRETS)
def test_production_refuses_a_missing_secret_and_names_it(tmp_path: Path, missing: str) -> None:
    given = {name: REAL for name in SECRETS if name != missing}
    result = run_step(tmp_path, APP_ENV="production", **given)
    assert result.returncode != 0
    assert f"APP_ENV=production needs {missing}: set it in .env" in result.stderr
    assert not (tmp_path / missing).exists()


@pytest.mark.parametrize("value", ["changeme", "CHANGEME", "password", "s" * 31])
def test_production_refuses_a_placeholder(tmp_path: Path, value: str) -> None:
    given = {**{name: REAL for name in SECRETS}, "SERVICE_TOKEN": value}
    result = run_step(tmp_path, APP_ENV="production", **given)
    assert result.returncode != 0
    assert "APP_ENV=production refuses SERVICE_TOKEN" in result.stderr


def test_production_keeps_secrets_already_in_the_volume(tmp_path: Path) -> None:
    """An install started in development can switch to production with its secrets."""
    assert run_step(tmp_path).returncode == 0
    generated = contents(tmp_path)
    result = run_step(tmp_path, APP_ENV="production")
    assert result.returncode == 0, result.stderr
    assert contents(tmp_path) == generated

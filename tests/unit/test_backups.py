"""Backups without a database: native/backup.py's archive, `make`'s verbs, the compose scripts."""

from __future__ import annotations

import io
import stat
import subprocess
import tarfile
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from native import backup, stack

COMPOSE_SCRIPTS = stack.REPO_ROOT / "deploy" / "compose"
SECRETS_MOUNT = "/run/secrets/chat-app"

pytestmark = pytest.mark.unit

SECRET = "s" * 43


def test_backups_go_to_backups_named_by_the_time() -> None:
    path = backup.default_backup_path(datetime(2026, 12, 1, 17, 5, 9))
    assert path == stack.REPO_ROOT / "backups" / "chat-20261201-170509.tar"


def test_an_archive_is_private_and_reads_back(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "database.dump").write_bytes(b"PGDMP dump bytes")
    output = tmp_path / "chat.tar"
    backup.write_archive(output, dump=work / "database.dump", carried={"SESSION_SECRET": SECRET})

    assert stat.S_IMODE(output.stat().st_mode) == 0o600
    with tarfile.open(output) as archive:
        members = {member.name: member for member in archive.getmembers()}
    assert sorted(members) == ["database.dump", "secrets.env"]
    assert {member.mode for member in members.values()} == {0o600}

    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    dump, carried = backup.read_archive(output, unpacked)
    assert dump.read_bytes() == b"PGDMP dump bytes"
    assert carried == {"SESSION_SECRET": SECRET}


def archive_of(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as archive:
        for name, content in files.items():
            member = tarfile.TarInfo(name)
            member.size = len(content)
            archive.addfile(member, io.BytesIO(content))
    return path


@pytest.mark.parametrize(
    ("files", "complaint"),
    [
        ({"database.dump": b"x"}, "is not a backup"),
        ({"database.dump": b"x", "secrets.env": b"SERVICE_TOKEN=x\n"}, "lacks SESSION_SECRET"),
    ],
)
def test_an_archive_without_its_parts_is_refused(
    tmp_path: Path, files: dict[str, bytes], complaint: str
) -> None:
    archive = archive_of(tmp_path / "other.tar", files)
    with pytest.raises(SystemExit, match=complaint):
        backup.read_archive(archive, tmp_path)


def test_a_file_that_is_no_archive_is_refused(tmp_path: Path) -> None:
    dump = tmp_path / "chat.dump"
    dump.write_bytes(b"PGDMP not in a tar")
    with pytest.raises(SystemExit, match="is not a backup: "):
        backup.read_archive(dump, tmp_path)


def test_restored_secrets_replace_only_their_own(tmp_path: Path) -> None:
    path = tmp_path / "secrets.env"
    generated = stack.ensure_secrets(path)
    stack.ensure_secrets(path, replace={"SESSION_SECRET": SECRET})
    assert stack.read_env_file(path) == {**generated, "SESSION_SECRET": SECRET}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def make_command(*arguments: str) -> str:
    """The command `make` would run (dry run)."""
    return subprocess.run(
        ["make", "--no-print-directory", "-n", *arguments],
        cwd=stack.REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_make_passes_file_and_only_force_1_on() -> None:
    assert make_command("backup").endswith("-m native.backup backup")
    assert make_command("backup", "FILE=my file.tar").endswith('backup --output "my file.tar"')
    assert make_command("restore", "FILE=b.tar").endswith('restore "b.tar"')
    assert make_command("restore", "FILE=b.tar", "FORCE=1").endswith('restore "b.tar" --force')
    assert make_command("restore", "FILE=b.tar", "FORCE=0").endswith('restore "b.tar"')


def test_the_compose_scripts_name_what_compose_yml_defines() -> None:
    compose_file = yaml.safe_load((stack.REPO_ROOT / "compose.yml").read_text())
    services = compose_file["services"]
    text = {name: (COMPOSE_SCRIPTS / name).read_text() for name in ("backup.sh", "restore.sh")}
    for script in text.values():
        assert "docker compose exec -T postgres" in script
    # The postgres service reads the secrets volume where the scripts look for the key.
    assert f"secrets:{SECRETS_MOUNT}:ro" in services["postgres"]["volumes"]
    assert f"{SECRETS_MOUNT}/SESSION_SECRET" in text["backup.sh"]
    assert services["chat-ui"]["environment"]["SESSION_SECRET_FILE"].startswith(SECRETS_MOUNT)
    # The secrets step takes SESSION_SECRET from the environment compose runs in.
    assert services["secrets"]["environment"]["SESSION_SECRET"] == "${SESSION_SECRET:-}"
    stopped = "docker compose stop nginx chat-ui db-api"
    assert stopped in text["restore.sh"]
    assert set(stopped.split()[3:]) | {"postgres", "secrets"} <= set(services)
    for name in ("backup.sh", "restore.sh"):
        assert (COMPOSE_SCRIPTS / name).stat().st_mode & stat.S_IXUSR

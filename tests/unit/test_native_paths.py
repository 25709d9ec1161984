"""Where native mode keeps the files of the processes that run as other users."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from native import stack

pytestmark = pytest.mark.unit


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A folder anyone may pass through (pytest's own tmp_path is private to its user)."""
    folder = Path(tempfile.mkdtemp(prefix="native-paths-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


def test_a_folder_behind_a_private_one_is_out_of_reach(open_dir: Path) -> None:
    home = open_dir / "home"
    checkout = home / "chat-app"
    checkout.mkdir(parents=True)
    home.chmod(0o755)
    assert stack.others_can_reach(checkout)
    home.chmod(0o700)
    assert not stack.others_can_reach(checkout)
    assert not stack.others_can_reach(checkout / "not-yet-made")


@pytest.mark.skipif(os.geteuid() != 0, reason="the rule concerns native mode run as root")
def test_as_root_a_private_checkout_puts_server_files_outside_it(open_dir: Path) -> None:
    home = open_dir / "root"
    data = home / "chat-app" / ".data"
    data.mkdir(parents=True)
    home.chmod(0o700)
    paths = stack.Paths(data)
    assert paths.server_root.parent == stack.SERVER_DIRS_HOME
    assert paths.postgres == paths.server_root / "postgres"
    assert paths.server_root == stack.Paths(data).server_root  # the same on every start
    assert stack.Paths(open_dir / "other" / ".data").server_root != paths.server_root
    home.chmod(0o755)
    assert paths.server_root == data

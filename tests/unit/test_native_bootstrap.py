"""native/bootstrap.sh decides what to install by what is on the machine, not in the checkout.

The script runs for real, in a copy of the checkout's files it reads (with the
repository's own `nginx/` folder, the name that once fooled it), on a PATH that holds
only the tools it needs plus recording stand-ins for `apt-get`, the virtualenv's pip
and the model step. Nothing is installed; the records say what would have been.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.processes import REPO_ROOT

pytestmark = pytest.mark.unit

FILES_READ = (
    "native/bootstrap.sh",
    "native/requirements.txt",
    "db-api/requirements.txt",
    "chat-ui/requirements.txt",
    "lm-api/requirements.txt",
    "requirements-dev.txt",
    "bench/requirements.txt",
)
# What the script and the stand-ins run; linked into the private PATH.
TOOLS = ("bash", "cat", "cut", "id", "sha256sum", "dirname", "basename", "mkdir", "chmod", "awk")
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def recorder(path: Path, log: Path, exit_code: int = 0) -> None:
    """An executable that appends its arguments to `log` and exits with `exit_code`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/sh\necho "$(basename "$0") $*" >> "{log}"\nexit {exit_code}\n')
    path.chmod(0o755)


@dataclass
class Sandbox:
    checkout: Path
    bin_dir: Path
    log: Path
    pg_bin: Path

    def provide(self, command: str) -> None:
        """Put a (do-nothing) command of this name on the private PATH."""
        recorder(self.bin_dir / command, self.log)

    def provide_library(self, name: str) -> None:
        """Make the dynamic linker's cache (as `ldconfig -p` prints it) list `name`."""
        libraries = self.bin_dir.parent / "libraries"
        with libraries.open("a") as listing:
            listing.write(f"\t{name} (libc6,x86-64) => /lib/x86_64-linux-gnu/{name}\n")

    def provide_postgres(self) -> None:
        recorder(self.pg_bin / "postgres", self.log)

    def provide_venv_support(self) -> None:
        """Make `python3 -c 'import ensurepip, venv'` succeed (python3-venv installed)."""
        python3 = self.bin_dir / "python3"
        python3.write_text(
            python3.read_text().replace(
                'if [ "$1" = -c ]; then exit 1', 'if [ "$1" = -c ]; then exit 0'
            )
        )

    def run(self, *arguments: str) -> list[str]:
        env = {
            "PATH": str(self.bin_dir),
            "HOME": str(self.checkout),
            "PG_BIN": str(self.pg_bin),
            "LDCONFIG": str(self.bin_dir / "ldconfig"),
        }
        result = subprocess.run(
            ["bash", str(self.checkout / "native" / "bootstrap.sh"), *arguments],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return self.log.read_text().splitlines() if self.log.exists() else []


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    checkout = tmp_path / "checkout"
    for name in FILES_READ:
        (checkout / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, checkout / name)
    # The repository's own folders of the same names as the commands.
    (checkout / "nginx").mkdir()
    (checkout / "chromium").mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found, tool
        os.symlink(found, bin_dir / tool)
    recorder(bin_dir / "apt-get", log)
    (tmp_path / "libraries").touch()
    (bin_dir / "ldconfig").write_text(f'#!/bin/sh\ncat "{tmp_path / "libraries"}"\n')
    (bin_dir / "ldconfig").chmod(0o755)
    # No systemd, no service: the script must carry on without them.
    recorder(bin_dir / "systemctl", log, exit_code=1)
    # python3 without venv's pip bootstrap (Debian's python3 before python3-venv);
    # `python3 -m venv .venv` makes a virtualenv of recorders.
    (bin_dir / "python3").write_text(
        "#!/bin/sh\n"
        f'echo "python3 $*" >> "{log}"\n'
        'if [ "$1" = -c ]; then exit 1; fi\n'
        'if [ "$1 $2" = "-m venv" ]; then\n'
        '  mkdir -p "$3/bin"\n'
        f"  for name in python pip; do\n"
        f'    printf \'#!/bin/sh\\necho "venv-$(basename "$0") $*" >> "{log}"\\n\' '
        '> "$3/bin/$name"\n'
        '    chmod +x "$3/bin/$name"\n'
        "  done\n"
        "fi\n"
    )
    (bin_dir / "python3").chmod(0o755)
    return Sandbox(checkout=checkout, bin_dir=bin_dir, log=log, pg_bin=tmp_path / "no-postgres")


def requested_packages(calls: list[str]) -> set[str]:
    installs = [
        call.split() for call in calls if call.startswith("apt-get") and " install " in call
    ]
    assert len(installs) <= 1, installs
    return {word for call in installs for word in call[1:] if not word.startswith("-")} - {
        "install"
    }


def pip_requirements(calls: list[str]) -> list[str]:
    return [call.split(" -r ")[1] for call in calls if call.startswith("venv-pip install")]


def test_nginx_is_installed_though_the_checkout_has_a_folder_of_its_name(
    sandbox: Sandbox,
) -> None:
    """A fresh machine with PostgreSQL's binaries and python3-venv, but no nginx."""
    sandbox.provide_postgres()
    sandbox.provide_library("libgomp.so.1")
    sandbox.provide_venv_support()
    calls = sandbox.run()
    assert requested_packages(calls) == {"nginx"}
    assert "apt-get update -qq" in calls


def test_every_missing_package_is_requested(sandbox: Sandbox) -> None:
    assert requested_packages(sandbox.run()) == {"nginx", "postgresql", "python3-venv", "libgomp1"}


def test_the_test_toolchain_asks_for_chromium_and_its_fonts_too(sandbox: Sandbox) -> None:
    calls = sandbox.run("--with-tests")
    expected = {"nginx", "postgresql", "python3-venv", "libgomp1", "chromium"}
    if not FONT.exists():
        expected.add("fonts-dejavu-core")
    assert requested_packages(calls) == expected


def test_bench_asks_for_wrk(sandbox: Sandbox) -> None:
    assert "wrk" in requested_packages(sandbox.run("--with-bench"))


def test_only_what_is_missing_is_requested(sandbox: Sandbox) -> None:
    sandbox.provide("nginx")
    sandbox.provide_postgres()
    assert requested_packages(sandbox.run("--with-tests")) >= {"chromium"}
    assert "nginx" not in requested_packages(sandbox.log.read_text().splitlines())


def test_nothing_is_installed_when_everything_is_present(sandbox: Sandbox) -> None:
    for command in ("nginx", "chromium", "wrk"):
        sandbox.provide(command)
    sandbox.provide_postgres()
    sandbox.provide_library("libgomp.so.1")
    sandbox.provide_venv_support()
    venv_bin = sandbox.checkout / ".venv" / "bin"
    recorder(venv_bin / "python", sandbox.log)
    recorder(venv_bin / "pip", sandbox.log)
    calls = sandbox.run("--with-bench")
    if FONT.exists():
        assert not [call for call in calls if call.startswith("apt-get")], calls


def test_run_installs_only_the_services_dependencies(sandbox: Sandbox) -> None:
    calls = sandbox.run()
    assert pip_requirements(calls) == ["native/requirements.txt"]
    assert any(call.startswith("venv-python -m lm_api.model") for call in calls)


def test_tests_add_the_toolchain_and_a_second_run_installs_nothing_again(
    sandbox: Sandbox,
) -> None:
    first = sandbox.run("--with-tests")
    assert pip_requirements(first) == ["native/requirements.txt", "requirements-dev.txt"]
    sandbox.log.unlink()
    assert pip_requirements(sandbox.run("--with-tests")) == []

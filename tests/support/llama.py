"""The real model and the session's llama.cpp server (lm-api), from harness.llama."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.llama import LlamaServer, ensure_model, start_llama_server
from harness.processes import free_port

__all__ = ["llama_server", "model_path"]


@pytest.fixture(scope="session")
def model_path() -> Path:
    return ensure_model()


@pytest.fixture(scope="session")
def llama_server(model_path: Path) -> Iterator[LlamaServer]:
    port = free_port()
    process = start_llama_server(model_path=model_path, port=port)
    try:
        yield LlamaServer(url=f"http://127.0.0.1:{port}", process=process, model_path=model_path)
    finally:
        process.stop()

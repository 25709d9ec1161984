"""Starting and stopping lm-api as a process: SIGTERM ends it cleanly, even mid-reply."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import httpx
import pytest

from harness.llama import start_llama_server
from harness.processes import ServiceProcess, free_port


def start_small_server(model_path: Path, port: int) -> ServiceProcess:
    # These tests need a process to stop, not capacity; keep it light beside the
    # session's server.
    return start_llama_server(
        model_path=model_path,
        port=port,
        ctx_size=1024,
        parallel=1,
        extra_env={"LLAMA_ARG_THREADS": "1"},
    )


def test_sigterm_exits_zero_and_frees_the_port(model_path: Path) -> None:
    port = free_port()
    service = start_small_server(model_path, port)
    assert service.process is not None
    process = service.process

    process.send_signal(signal.SIGTERM)

    assert process.wait(timeout=15) == 0
    assert "listening on http://127.0.0.1:" in service.log_tail(200)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)


def test_sigterm_during_a_streamed_reply_still_exits_zero(model_path: Path) -> None:
    port = free_port()
    service = start_small_server(model_path, port)
    assert service.process is not None
    first_chunk = threading.Event()

    def stream_a_long_reply() -> None:
        body = {
            "messages": [{"role": "user", "content": "Count from 1 to 500."}],
            "max_tokens": 400,
            "stream": True,
        }
        try:
            with httpx.stream(
                "POST", f"http://127.0.0.1:{port}/v1/chat/completions", json=body, timeout=60
            ) as response:
                for _ in response.iter_lines():
                    first_chunk.set()
        except httpx.HTTPError:
            pass  # The server going away mid-stream is the point of this test.

    reader = threading.Thread(target=stream_a_long_reply)
    reader.start()
    assert first_chunk.wait(timeout=60)

    service.process.send_signal(signal.SIGTERM)

    assert service.process.wait(timeout=15) == 0
    reader.join(timeout=30)
    assert not reader.is_alive()

"""A fake model server that streams part of a reply, then drops the connection or stalls.

Only for faults the real llama.cpp server cannot be made to produce on demand. It
answers what chat-ui asks before a reply (/props, /apply-template, /tokenize) so
that the failure happens mid-stream. Listens on loopback only.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__: list[str] = []

PARTIAL_TEXT = "Half of an answer"


class BreakingModelHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Set: after the partial text, go silent (keep the connection open) until it is set
    # again at shutdown, like a model that hangs mid-reply. None: drop the connection.
    stall_until: threading.Event | None = None

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _json(self, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        if self.path == "/props":
            self._json({"default_generation_settings": {"n_ctx": 2048}})
        else:
            self._json({"status": "ok"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        if self.path == "/apply-template":
            prompt = "".join(f"<{m['role']}>{m['content']}" for m in body["messages"])
            self._json({"prompt": prompt})
        elif self.path == "/tokenize":
            self._json({"tokens": list(range(len(body["content"].encode())))})
        else:
            self._stream_then_drop()

    def _stream_then_drop(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for word in PARTIAL_TEXT.split(" "):
            chunk = {"choices": [{"delta": {"content": word + " "}}]}
            line = f"data: {json.dumps(chunk)}\n\n".encode()
            self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
            self.wfile.flush()
            time.sleep(0.05)
        if self.stall_until is not None:
            self.stall_until.wait()
        # No terminating chunk and no [DONE]: the connection just goes away.
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True


@contextmanager
def serve_breaking_model(*, stall: bool = False) -> Iterator[str]:
    """Run the fake server in a thread; yields its base URL.

    `stall`: instead of dropping the connection after the partial text, stay silent.
    """
    released = threading.Event()
    handler = type("Handler", (BreakingModelHandler,), {"stall_until": released if stall else None})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        released.set()
        server.shutdown()
        server.server_close()

"""Drive wrk (HTTP load generator) and read its results as numbers.

wrk's own text summary rounds latencies and hides the error counts in prose, so a
small Lua `done` hook prints one JSON line with exact microseconds instead.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# Runs in wrk after the test; `latency` is in microseconds.
_REPORT_HOOK = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\nWRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, '
    .. '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, '
    .. '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}\\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


@dataclass(frozen=True)
class LoadResult:
    """One wrk run: throughput, latency percentiles (ms) and every kind of failure."""

    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int  # socket errors, timeouts and non-2xx/3xx answers together

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


def parse_report(output: str) -> LoadResult:
    """The LoadResult in wrk's output (the line the Lua hook printed)."""
    for line in output.splitlines():
        if line.startswith("WRK_JSON "):
            raw = json.loads(line.removeprefix("WRK_JSON "))
            errors = sum(raw[key] for key in ("connect", "read", "write", "status", "timeout"))
            return LoadResult(
                requests=raw["requests"],
                seconds=raw["duration_us"] / 1e6,
                p50_ms=raw["p50_us"] / 1000,
                p90_ms=raw["p90_us"] / 1000,
                p99_ms=raw["p99_us"] / 1000,
                max_ms=raw["max_us"] / 1000,
                errors=errors,
            )
    raise ValueError(f"no WRK_JSON line in wrk's output:\n{output[-2000:]}")


_LUA_PLAIN = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _-.:/,")


def lua_string(text: str) -> str:
    """A Lua string literal holding `text` exactly: other bytes as decimal escapes."""
    encoded = text.encode("utf-8")
    return '"' + "".join(chr(b) if b in _LUA_PLAIN else f"\\{b:03d}" for b in encoded) + '"'


def run_wrk(
    url: str,
    *,
    connections: int,
    seconds: float,
    threads: int = 2,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    body: str | None = None,
) -> LoadResult:
    """Load `url` with `connections` keep-alive connections for `seconds`."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed: run native/bootstrap.sh --with-bench")
    script = [f"wrk.method = {lua_string(method)}"]
    for name, value in (headers or {}).items():
        script.append(f"wrk.headers[{lua_string(name)}] = {lua_string(value)}")
    if body is not None:
        script.append(f"wrk.body = {lua_string(body)}")
    script.append(_REPORT_HOOK)
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as directory:
        script_path = Path(directory) / "report.lua"
        script_path.write_text("\n".join(script))
        command = [
            wrk,
            f"--threads={min(threads, connections)}",
            f"--connections={connections}",
            f"--duration={max(1, round(seconds))}s",
            "--timeout=5s",
            f"--script={script_path}",
            url,
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"wrk failed ({result.returncode}): {result.stderr}")
    return parse_report(result.stdout)

"""Figure 5: memory of each service, idle and under load, read from /proc.

A service is its main process and every descendant (PostgreSQL's backends,
nginx's workers). Per process we read PSS (proportional set size, from
/proc/PID/smaps_rollup): resident memory with each shared page divided among the
processes sharing it, so PostgreSQL's shared buffers and nginx's code are
counted once for the service instead of once per process. RSS is kept in the
raw results too. The llama.cpp server maps the GGUF file; "without the model
weights" subtracts that mapping's PSS (from /proc/PID/smaps).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.results import Figure, Target
from bench.stack import Stack

PROC = Path("/proc")
SECTION = "5. Memory (PSS, MB)"
IDLE_TARGET_MB = 300.0
SAMPLE_INTERVAL_S = 0.5


@dataclass(frozen=True)
class Reading:
    """One service at one moment, in MB (10^6 bytes)."""

    pss_mb: float
    rss_mb: float
    model_mb: float  # PSS of the mapped model file (the llama.cpp server only)
    processes: int

    @property
    def without_model_mb(self) -> float:
        return self.pss_mb - self.model_mb


def children_of(pid: int) -> list[int]:
    found: list[int] = []
    for task in (PROC / str(pid) / "task").glob("*"):
        children = task / "children"
        if children.exists():
            found += [int(child) for child in children.read_text().split()]
    return found


def process_tree(pid: int) -> list[int]:
    pending, tree = [pid], []
    while pending:
        current = pending.pop()
        tree.append(current)
        try:
            pending += children_of(current)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return tree


def _kilobytes(text: str, field: str) -> int:
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def mapped_file_kb(smaps: str, path: Path, field: str = "Pss") -> int:
    """kB of every mapping of `path` in a /proc/PID/smaps text (PSS: the pages shared with
    another process mapping the same file count in part, as in the process's own PSS)."""
    total, inside = 0, False
    target = str(path)
    for line in smaps.splitlines():
        head = line.split(maxsplit=5)
        if len(head) >= 5 and "-" in head[0] and not head[0].endswith(":"):
            inside = len(head) == 6 and head[5] == target
        elif inside and line.startswith(field + ":"):
            total += int(line.split()[1])
    return total


def read_service(pid: int, model_path: Path | None = None) -> Reading:
    pss = rss = model = count = 0
    for member in process_tree(pid):
        try:
            pss += _kilobytes((PROC / str(member) / "smaps_rollup").read_text(), "Pss")
            rss += _kilobytes((PROC / str(member) / "status").read_text(), "VmRSS")
            if model_path is not None:
                model += mapped_file_kb((PROC / str(member) / "smaps").read_text(), model_path)
            count += 1
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue  # a backend that ended while we looked
    return Reading(pss * 1.024e-3, rss * 1.024e-3, model * 1.024e-3, count)


def postgres_pid(stack: Stack) -> int:
    return int((stack.postgres.data_dir / "postmaster.pid").read_text().split()[0])


def service_pids(stack: Stack) -> dict[str, int]:
    pids = {"postgres": postgres_pid(stack)}
    for name, process in stack.processes.items():
        assert process.process is not None, name
        pids[name] = process.process.pid
    return pids


def read_stack(stack: Stack) -> dict[str, Reading]:
    model = stack.model_path.resolve()
    return {
        name: read_service(pid, model if name == "lm-api" else None)
        for name, pid in service_pids(stack).items()
    }


def peak(readings: Iterable[dict[str, Reading]]) -> dict[str, Reading]:
    """The highest reading of each service over a series."""
    best: dict[str, Reading] = {}
    for reading in readings:
        for name, value in reading.items():
            if name not in best or value.without_model_mb > best[name].without_model_mb:
                best[name] = value
    return best


@contextmanager
def sampling(stack: Stack, into: list[dict[str, Reading]]) -> Iterator[None]:
    """Read the stack's memory every SAMPLE_INTERVAL_S while the block runs."""
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(SAMPLE_INTERVAL_S):
            into.append(read_stack(stack))

    thread = threading.Thread(target=sample, name="memory-sampler", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def memory_figures(
    idle: list[dict[str, Reading]], loaded: list[dict[str, Reading]], baseline_mb: list[float]
) -> list[Figure]:
    """Per service: idle (vs a bare FastAPI app for the Python ones) and peak under load."""
    figures: list[Figure] = []
    names = list(idle[0])
    for name in names:
        idle_mb = [reading[name].without_model_mb for reading in idle]
        python = name in ("db-api", "chat-ui")
        figures.append(
            Figure(
                SECTION,
                f"{name} idle" + (" (without model weights)" if name == "lm-api" else ""),
                "MB",
                idle_mb,
                "bare FastAPI app under uvicorn" if python else "",
                baseline_mb[: len(idle_mb)] if python else (),
                higher_is_better=False,
            )
        )
        figures.append(
            Figure(
                SECTION,
                f"{name} peak under load",
                "MB",
                [reading[name].without_model_mb for reading in loaded],
                "idle",
                idle_mb[: len(loaded)],
                higher_is_better=False,
            )
        )
    totals = [sum(reading[name].without_model_mb for name in names) for reading in idle]
    model = [reading["lm-api"].model_mb for reading in idle]
    app_only = [sum(reading[name].pss_mb for name in names if name != "lm-api") for reading in idle]
    figures += [
        Figure(
            SECTION,
            "whole stack idle, lm-api counted without the mapped model file",
            "MB",
            totals,
            "model weights resident (not counted)",
            model,
            Target("value", "<=", IDLE_TARGET_MB, "MB"),
            higher_is_better=False,
        ),
        Figure(
            SECTION,
            "whole stack idle, lm-api left out",
            "MB",
            app_only,
            target=Target("value", "<=", IDLE_TARGET_MB, "MB"),
            higher_is_better=False,
        ),
    ]
    return figures

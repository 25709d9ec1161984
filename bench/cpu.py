"""CPU time each service spends, read from /proc: a cost per request that other load
on a shared machine does not distort the way it distorts requests per second."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from bench.memory import process_tree

PROC = Path("/proc")
_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
T = TypeVar("T")


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process (all its threads)."""
    # The command name (field 2) may hold spaces; the numbers start after its ")".
    fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_S


def tree_cpu_s(pid: int) -> float:
    total = 0.0
    for member in process_tree(pid):
        try:
            total += process_cpu_s(member)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def cpu_per_request_ms(
    pids: Mapping[str, int], run: Callable[[], T], requests: Callable[[T], int]
) -> tuple[T, dict[str, float]]:
    """Run `run`, then answer its result and each service's CPU ms per request it served."""
    before = {name: tree_cpu_s(pid) for name, pid in pids.items()}
    result = run()
    count = max(1, requests(result))
    return result, {
        name: (tree_cpu_s(pid) - before[name]) * 1000 / count for name, pid in pids.items()
    }

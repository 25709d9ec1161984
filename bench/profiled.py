"""uvicorn under cProfile: `python -m bench.profiled OUT.prof <uvicorn CLI arguments>`.

The profile covers the whole run and is written when the server stops (SIGTERM).
"""

from __future__ import annotations

import contextlib
import cProfile
import signal
import sys
from collections.abc import Iterator

import uvicorn.main
import uvicorn.server


@contextlib.contextmanager
def _capture_signals(server: uvicorn.server.Server) -> Iterator[None]:
    # uvicorn re-raises SIGTERM after its graceful shutdown, which would end the
    # process before the profile is written; here a stop just ends `run`.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, server.handle_exit)
    yield


def main() -> None:
    output, arguments = sys.argv[1], sys.argv[2:]
    uvicorn.server.Server.capture_signals = _capture_signals  # type: ignore[method-assign,assignment]
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        uvicorn.main.main(arguments, standalone_mode=False)
    finally:
        profiler.disable()
        profiler.dump_stats(output)


if __name__ == "__main__":
    main()

"""Run llama.cpp's HTTP server in this process, configured by ``LLAMA_ARG_*`` variables.

``python -m lm_api.server`` is the native-mode stand-in for the official
``ghcr.io/ggml-org/llama.cpp:server`` image: the same C++ server (through the
xllamacpp wheel), the same endpoints (``/v1/chat/completions``, ``/health``,
``/metrics``, ``/slots``, ``/props``, ``/tokenize``, ``/apply-template``) and the same
environment variable names. It blocks until SIGTERM or SIGINT, then stops the
server and exits 0.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from types import FrameType
from typing import get_args

import xllamacpp
from pydantic import ValidationError

from lm_api.config import KvCacheType, ServerSettings

logger = logging.getLogger("lm_api.server")

# A streaming handler only checks for shutdown between results or pings, so on
# SIGTERM mid-reply the server waits up to this long (llama.cpp's default is 30 s,
# past the 10 s compose and Kubernetes allow before SIGKILL). Idle streams get an
# SSE comment line (": ping") this often, which SSE clients ignore.
SSE_PING_INTERVAL = 3


_GGML_TYPES = {
    name: getattr(xllamacpp.ggml_type, f"GGML_TYPE_{name.upper()}")
    for name in get_args(KvCacheType)
}
_FLASH_ATTENTION = {
    "on": xllamacpp.llama_flash_attn_type.LLAMA_FLASH_ATTN_TYPE_ENABLED,
    "off": xllamacpp.llama_flash_attn_type.LLAMA_FLASH_ATTN_TYPE_DISABLED,
    "auto": xllamacpp.llama_flash_attn_type.LLAMA_FLASH_ATTN_TYPE_AUTO,
}


def build_params(settings: ServerSettings) -> xllamacpp.CommonParams:
    """Translate the settings into llama.cpp's own parameter struct."""
    params = xllamacpp.CommonParams()
    params.model.path = str(settings.model)
    params.n_ctx = settings.ctx_size
    params.n_parallel = settings.n_parallel
    params.n_predict = settings.n_predict
    params.cache_type_k = _GGML_TYPES[settings.cache_type_k]
    params.cache_type_v = _GGML_TYPES[settings.cache_type_v]
    params.flash_attn_type = _FLASH_ATTENTION[settings.flash_attn]
    params.n_cache_reuse = settings.cache_reuse
    params.cache_ram_mib = settings.cache_ram
    params.cpuparams.n_threads = settings.threads
    params.cpuparams_batch.n_threads = settings.threads_batch or settings.threads
    if settings.batch_size is not None:
        params.n_batch = settings.batch_size
    params.hostnames = [settings.host]
    params.port = settings.port
    params.cont_batching = settings.cont_batching
    params.endpoint_metrics = settings.endpoint_metrics
    params.endpoint_slots = settings.endpoint_slots
    params.endpoint_props = settings.endpoint_props
    params.sse_ping_interval = SSE_PING_INTERVAL
    return params


def wait_for_stop_signal() -> signal.Signals:
    """Block until SIGTERM or SIGINT arrives; return which one."""
    received: list[signal.Signals] = []
    stop = threading.Event()

    def handle(signum: int, _frame: FrameType | None) -> None:
        received.append(signal.Signals(signum))
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handle)
    # A timed wait keeps the main thread returning to the interpreter, where
    # Python runs signal handlers.
    while not stop.wait(timeout=1.0):
        pass
    return received[0]


def serve(settings: ServerSettings) -> None:
    if not settings.model.is_file():
        raise FileNotFoundError(
            f"no model at {settings.model}; run `python -m lm_api.model` first "
            "or set LLAMA_ARG_MODEL"
        )
    logger.info(
        "loading %s (ctx %d shared by %d slots, %d threads)",
        settings.model,
        settings.ctx_size,
        settings.n_parallel,
        settings.threads,
    )
    started = time.monotonic()
    # The constructor loads the model, then starts the HTTP listener on its own
    # threads and returns; deleting the object stops the listener and frees the model.
    server = xllamacpp.Server(build_params(settings))
    logger.info(
        "listening on %s (ready in %.1f s)", server.listening_address, time.monotonic() - started
    )
    received = wait_for_stop_signal()
    logger.info("%s received; stopping", received.name)
    # The destructor stops the HTTP listener, waits for in-flight handlers and frees
    # the model. A streaming handler notices within SSE_PING_INTERVAL seconds.
    del server
    logger.info("stopped")


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s lm-api: %(message)s")
    try:
        settings = ServerSettings()
    except ValidationError as error:
        logger.error("invalid LLAMA_ARG_* settings: %s", error)
        return 2
    try:
        serve(settings)
    except (FileNotFoundError, RuntimeError) as error:
        logger.error("%s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

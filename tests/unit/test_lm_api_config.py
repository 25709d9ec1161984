"""lm-api settings: llama-server's env names, defaults, and the CommonParams they build."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import xllamacpp
from pydantic import ValidationError

from lm_api.config import ModelSettings, ServerSettings
from lm_api.server import build_params


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("LLAMA_ARG_", "MODEL_")) or name == "HF_ENDPOINT":
            monkeypatch.delenv(name)


def test_server_defaults() -> None:
    settings = ServerSettings()

    assert settings.model == Path(".data/models/model.gguf")
    # 8,192 tokens for each of four slots, f16 with flash attention where available.
    assert (settings.ctx_size, settings.n_parallel) == (32768, 4)
    assert (settings.cache_type_k, settings.cache_type_v, settings.flash_attn) == (
        "f16",
        "f16",
        "auto",
    )
    assert (settings.cache_reuse, settings.cache_ram) == (256, 1024)
    assert settings.threads == (os.cpu_count() or 1)
    assert (settings.host, settings.port) == ("127.0.0.1", 8081)
    assert settings.n_predict == 512
    assert settings.endpoint_metrics is True


def test_server_reads_llama_arg_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLAMA_ARG_MODEL", "/models/other.gguf")
    monkeypatch.setenv("LLAMA_ARG_CTX_SIZE", "8192")
    monkeypatch.setenv("LLAMA_ARG_N_PARALLEL", "4")
    monkeypatch.setenv("LLAMA_ARG_THREADS", "3")
    monkeypatch.setenv("LLAMA_ARG_HOST", "0.0.0.0")
    monkeypatch.setenv("LLAMA_ARG_PORT", "8080")
    monkeypatch.setenv("LLAMA_ARG_N_PREDICT", "256")
    monkeypatch.setenv("LLAMA_ARG_CACHE_TYPE_K", "q8_0")
    monkeypatch.setenv("LLAMA_ARG_CACHE_TYPE_V", "q8_0")
    monkeypatch.setenv("LLAMA_ARG_FLASH_ATTN", "on")
    monkeypatch.setenv("LLAMA_ARG_CACHE_REUSE", "0")
    monkeypatch.setenv("LLAMA_ARG_CACHE_RAM", "0")

    settings = ServerSettings()

    assert settings.model == Path("/models/other.gguf")
    assert (settings.ctx_size, settings.n_parallel, settings.threads) == (8192, 4, 3)
    assert (settings.host, settings.port, settings.n_predict) == ("0.0.0.0", 8080, 256)
    assert (settings.cache_type_k, settings.cache_type_v, settings.flash_attn) == (
        "q8_0",
        "q8_0",
        "on",
    )
    assert (settings.cache_reuse, settings.cache_ram) == (0, 0)


@pytest.mark.parametrize("value", ["-1", "0"])
def test_the_reply_cap_must_be_positive(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    # -1 would be llama.cpp's "no limit": one reply could hold a slot for good.
    monkeypatch.setenv("LLAMA_ARG_N_PREDICT", value)
    with pytest.raises(ValidationError):
        ServerSettings()


def test_model_path_follows_model_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_DIR", "/models")

    assert ServerSettings().model == Path("/models/model.gguf")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", True),
        ("true", True),
        ("enabled", True),
        ("on", True),
        ("0", False),
        ("disabled", False),
    ],
)
def test_booleans_read_like_llama_server(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: bool
) -> None:
    monkeypatch.setenv("LLAMA_ARG_ENDPOINT_METRICS", value)

    assert ServerSettings().endpoint_metrics is expected


@pytest.mark.parametrize(
    ("name", "value"), [("LLAMA_ARG_CTX_SIZE", "0"), ("LLAMA_ARG_PORT", "70000")]
)
def test_invalid_server_values_are_rejected(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)

    with pytest.raises(ValidationError):
        ServerSettings()


def test_build_params_carries_every_setting() -> None:
    settings = ServerSettings(
        model=Path("/m/model.gguf"),
        ctx_size=2048,
        n_parallel=3,
        threads=2,
        batch_size=256,
        port=9000,
        cache_type_k="q8_0",
        cache_type_v="q4_0",
        flash_attn="on",
        cache_reuse=128,
        cache_ram=64,
    )

    params = build_params(settings)

    assert (params.cache_type_k, params.cache_type_v) == (
        xllamacpp.ggml_type.GGML_TYPE_Q8_0,
        xllamacpp.ggml_type.GGML_TYPE_Q4_0,
    )
    assert params.flash_attn_type == xllamacpp.llama_flash_attn_type.LLAMA_FLASH_ATTN_TYPE_ENABLED
    assert (params.n_cache_reuse, params.cache_ram_mib) == (128, 64)
    assert params.model.path == "/m/model.gguf"
    assert (params.n_ctx, params.n_parallel, params.n_predict) == (2048, 3, 512)
    assert params.cpuparams.n_threads == 2
    assert params.cpuparams_batch.n_threads == 2
    assert params.n_batch == 256
    assert (params.hostnames, params.port) == (["127.0.0.1"], 9000)
    assert params.endpoint_metrics and params.endpoint_slots and params.endpoint_props
    assert params.cont_batching


def test_model_settings_defaults_and_url(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ModelSettings()
    assert settings.source == "auto"
    assert settings.dir == Path(".data/models")
    assert settings.huggingface_url == (
        "https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct-GGUF/resolve/main/"
        "qwen2.5-0.5b-instruct-q5_k_m.gguf"
    )

    monkeypatch.setenv("HF_ENDPOINT", "http://mirror.local/")
    monkeypatch.setenv("MODEL_FILE", "other.gguf")
    monkeypatch.setenv("MODEL_SOURCE", "pypi")
    settings = ModelSettings()
    assert settings.huggingface_url.startswith("http://mirror.local/Qwen/")
    assert settings.huggingface_url.endswith("/other.gguf")
    assert settings.source == "pypi"


def test_unknown_model_source_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_SOURCE", "ftp")

    with pytest.raises(ValidationError):
        ModelSettings()

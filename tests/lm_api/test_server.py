"""lm-api's HTTP surface with the real model: the endpoints chat-ui relies on."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from harness.llama import LlamaServer

MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant. Answer in one sentence."},
    {"role": "user", "content": "What is the capital of France?"},
]


@pytest.fixture(scope="module")
def client(llama_server: LlamaServer) -> Iterator[httpx.Client]:
    # Idle connections expire before llama.cpp's 5 s keep-alive timeout closes them.
    limits = httpx.Limits(keepalive_expiry=2.0)
    with httpx.Client(base_url=llama_server.url, timeout=120.0, limits=limits) as client:
        yield client


def test_health_is_ok(client: httpx.Client) -> None:
    response = client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_chat_completion_returns_text(client: httpx.Client) -> None:
    response = client.post(
        "/v1/chat/completions",
        json={"messages": MESSAGES, "max_tokens": 32, "temperature": 0},
    )

    assert response.status_code == 200
    body = response.json()
    assert body["choices"][0]["message"]["content"].strip()
    assert "paris" in body["choices"][0]["message"]["content"].lower()
    assert 0 < body["usage"]["completion_tokens"] <= 32


def test_streaming_sends_sse_chunks_then_done(client: httpx.Client) -> None:
    events: list[str] = []
    with client.stream(
        "POST",
        "/v1/chat/completions",
        json={"messages": MESSAGES, "max_tokens": 16, "stream": True},
        # The server closes the connection after a stream without saying so.
        headers={"Connection": "close"},
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line[len("data: ") :] for line in response.iter_lines() if line]

    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    text = "".join(
        chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks if chunk["choices"]
    )
    assert len(chunks) > 2
    assert text.strip()


def test_apply_template_and_tokenize_count_the_prompt_exactly(client: httpx.Client) -> None:
    templated = client.post("/apply-template", json={"messages": MESSAGES})
    assert templated.status_code == 200
    prompt = templated.json()["prompt"]
    assert prompt.startswith("<|im_start|>system\n")
    assert prompt.endswith("<|im_start|>assistant\n")

    tokenized = client.post("/tokenize", json={"content": prompt})
    assert tokenized.status_code == 200
    tokens = tokenized.json()["tokens"]
    assert all(isinstance(token, int) for token in tokens)

    completion = client.post(
        "/v1/chat/completions", json={"messages": MESSAGES, "max_tokens": 1}
    ).json()
    assert completion["usage"]["prompt_tokens"] == len(tokens)


def test_tokenize_can_return_pieces(client: httpx.Client) -> None:
    response = client.post("/tokenize", json={"content": "Hello world", "with_pieces": True})

    assert response.status_code == 200
    pieces = response.json()["tokens"]
    assert "".join(piece["piece"] for piece in pieces) == "Hello world"
    assert all(isinstance(piece["id"], int) for piece in pieces)


def test_props_report_the_context_of_each_slot(client: httpx.Client) -> None:
    props = client.get("/props").json()

    # LLAMA_ARG_CTX_SIZE is the whole KV cache; each of the two slots gets half.
    assert props["total_slots"] == 2
    assert props["default_generation_settings"]["n_ctx"] == 4096 // 2


def test_slots_and_metrics_are_enabled(client: httpx.Client) -> None:
    slots = client.get("/slots")
    metrics = client.get("/metrics")

    assert slots.status_code == 200
    assert len(slots.json()) == 2
    assert metrics.status_code == 200
    assert "llamacpp:prompt_tokens_total" in metrics.text

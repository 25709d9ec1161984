"""Context fitting with the real server's chat template and tokenizer."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from chat_ui.context import REFILL_FRACTION, ChatMessage, fit_history_to_context
from chat_ui.errors import MessageTooLongForContext
from chat_ui.lm_client import LmClient
from harness.llama import LlamaServer

SYSTEM_PROMPT = "You are a helpful assistant."


@pytest.fixture
async def lm_client(llama_server: LlamaServer) -> AsyncIterator[LmClient]:
    client = LmClient(llama_server.url, timeout_seconds=120)
    try:
        yield client
    finally:
        await client.aclose()


def long_history(turns: int) -> list[ChatMessage]:
    history: list[ChatMessage] = []
    for index in range(turns):
        history.append(
            {"role": "user", "content": f"Question {index}: tell me about the number {index}."}
        )
        history.append(
            {
                "role": "assistant",
                "content": f"The number {index} is an integer; here are some facts about it. " * 3,
            }
        )
    history.append({"role": "user", "content": "And finally: what is 2 + 2?"})
    return history


async def test_count_matches_the_prompt_the_server_evaluates(
    lm_client: LmClient, llama_server: LlamaServer
) -> None:
    messages: list[ChatMessage] = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": "Say hi."},
        {"role": "assistant", "content": "Hi! How can I help?"},
        {"role": "user", "content": "Reply with one word."},
    ]
    counted = await lm_client.count_tokens(messages)
    async with httpx.AsyncClient(base_url=llama_server.url, timeout=120) as client:
        response = await client.post(
            "/v1/chat/completions", json={"messages": messages, "max_tokens": 1}
        )
    assert response.status_code == 200, response.text
    assert counted == response.json()["usage"]["prompt_tokens"]


async def test_context_size_is_read_per_slot(lm_client: LmClient) -> None:
    # The shared server has 4096 tokens split over 2 parallel slots.
    assert await lm_client.context_tokens() == 2048


async def test_long_history_is_fitted_within_the_budget(lm_client: LmClient) -> None:
    history = long_history(40)
    context_tokens, reply_tokens = 700, 200
    assert await lm_client.count_tokens(history) > context_tokens

    fitted = await fit_history_to_context(
        SYSTEM_PROMPT,
        history,
        context_tokens=context_tokens,
        reply_tokens=reply_tokens,
        count_tokens=lm_client.count_tokens,
    )

    assert fitted.dropped > 0
    assert fitted.messages[0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert fitted.messages[-1] == history[-1]
    assert fitted.messages[1:] == history[fitted.dropped :]
    assert fitted.messages[1]["role"] == "user"
    exact = await lm_client.count_tokens(fitted.messages)
    assert exact == fitted.prompt_tokens
    # Cut to half the budget, so the following turns fit with the same start.
    half = int((context_tokens - reply_tokens) * REFILL_FRACTION)
    assert exact <= half
    # Keeping one more turn (a question and its answer) would have been over that.
    one_more = [fitted.messages[0], *history[fitted.dropped - 2 :]]
    assert await lm_client.count_tokens(one_more) > half


async def test_newest_message_larger_than_the_window_is_refused(lm_client: LmClient) -> None:
    huge: list[ChatMessage] = [{"role": "user", "content": "lorem ipsum " * 400}]
    with pytest.raises(MessageTooLongForContext):
        await fit_history_to_context(
            SYSTEM_PROMPT,
            huge,
            context_tokens=await lm_client.context_tokens(),
            reply_tokens=1800,
            count_tokens=lm_client.count_tokens,
        )

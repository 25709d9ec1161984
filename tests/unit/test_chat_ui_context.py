"""fit_history_to_context with a word-counting stand-in for the model's tokenizer."""

from __future__ import annotations

import math

import pytest

from chat_ui.context import ChatMessage, fit_history_to_context
from chat_ui.errors import MessageTooLongForContext

SYSTEM = "be brief"  # 2 words


class WordCounter:
    """Counts words across all messages, and how often it was asked."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, messages: list[ChatMessage]) -> int:
        self.calls += 1
        return sum(len(message["content"].split()) for message in messages)


def conversation(turns: int, words_each: int = 10) -> list[ChatMessage]:
    roles = ("user", "assistant")
    return [
        {"role": roles[index % 2], "content": " ".join([f"m{index}"] * words_each)}
        for index in range(turns)
    ]


async def test_everything_fits_in_one_count() -> None:
    counter = WordCounter()
    messages = conversation(4)
    fitted = await fit_history_to_context(
        SYSTEM, messages, context_tokens=100, reply_tokens=10, count_tokens=counter
    )
    assert fitted.dropped == 0
    assert fitted.messages == [{"role": "system", "content": SYSTEM}, *messages]
    assert fitted.prompt_tokens == 42
    assert counter.calls == 1


async def test_keeps_system_and_newest_and_drops_oldest() -> None:
    messages = conversation(10)  # 100 words + 2 for the system prompt
    fitted = await fit_history_to_context(
        SYSTEM, messages, context_tokens=60, reply_tokens=20, count_tokens=WordCounter()
    )
    # Budget 40: the system prompt (2) and the three newest messages (30) fit, a fourth does not.
    assert fitted.messages[0] == {"role": "system", "content": SYSTEM}
    assert fitted.messages[1:] == messages[7:]
    assert fitted.dropped == 7
    assert fitted.prompt_tokens == 32


async def test_exact_boundary_fits() -> None:
    messages = conversation(10)
    fitted = await fit_history_to_context(
        SYSTEM, messages, context_tokens=52, reply_tokens=10, count_tokens=WordCounter()
    )
    # Budget 42 = 2 + 4 * 10 exactly: four messages kept.
    assert fitted.messages[1:] == messages[6:]
    assert fitted.prompt_tokens == 42

    one_less = await fit_history_to_context(
        SYSTEM, messages, context_tokens=51, reply_tokens=10, count_tokens=WordCounter()
    )
    assert one_less.messages[1:] == messages[7:]


async def test_only_the_newest_message_fits() -> None:
    messages = conversation(5)
    fitted = await fit_history_to_context(
        SYSTEM, messages, context_tokens=12, reply_tokens=0, count_tokens=WordCounter()
    )
    assert fitted.messages[1:] == messages[-1:]
    assert fitted.dropped == 4


@pytest.mark.parametrize("turns", [1, 6])
async def test_newest_message_too_long_raises(turns: int) -> None:
    messages = conversation(turns)
    with pytest.raises(MessageTooLongForContext):
        await fit_history_to_context(
            SYSTEM, messages, context_tokens=20, reply_tokens=10, count_tokens=WordCounter()
        )


async def test_reply_room_larger_than_context_raises() -> None:
    with pytest.raises(MessageTooLongForContext):
        await fit_history_to_context(
            SYSTEM, conversation(1), context_tokens=10, reply_tokens=512, count_tokens=WordCounter()
        )


async def test_input_list_is_not_changed() -> None:
    messages = conversation(6)
    snapshot = [dict(message) for message in messages]
    await fit_history_to_context(
        SYSTEM, messages, context_tokens=35, reply_tokens=0, count_tokens=WordCounter()
    )
    assert messages == snapshot


async def test_empty_history_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        await fit_history_to_context(
            SYSTEM, [], context_tokens=100, reply_tokens=10, count_tokens=WordCounter()
        )


@pytest.mark.parametrize("turns", [2, 17, 100, 1000, 4096])
async def test_number_of_counts_is_logarithmic(turns: int) -> None:
    counter = WordCounter()
    messages = conversation(turns)
    fitted = await fit_history_to_context(
        SYSTEM,
        messages,
        context_tokens=10 * max(turns // 3, 1) + 2,
        reply_tokens=0,
        count_tokens=counter,
    )
    assert fitted.messages[-1] == messages[-1]
    # One count for "everything", one for "only the newest", then a binary search.
    assert counter.calls <= 2 + math.ceil(math.log2(turns))

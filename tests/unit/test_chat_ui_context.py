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
    """Questions and answers in turn, ending with a question, as a prompt does."""
    roles = ("user", "assistant")
    return [
        {"role": roles[(turns - 1 - index) % 2], "content": " ".join([f"m{index}"] * words_each)}
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


async def test_an_overflow_drops_down_to_half_the_budget() -> None:
    messages = conversation(10)  # 100 words + 2 for the system prompt
    fitted = await fit_history_to_context(
        SYSTEM, messages, context_tokens=100, reply_tokens=20, count_tokens=WordCounter()
    )
    # Budget 80, so the prompt is cut to at most 40: the system prompt (2) and the three
    # newest messages (30); a fourth would make 42.
    assert fitted.messages[0] == {"role": "system", "content": SYSTEM}
    assert fitted.messages[1:] == messages[7:]
    assert fitted.dropped == 7
    assert fitted.prompt_tokens == 32


async def test_the_kept_part_starts_with_a_question() -> None:
    messages = conversation(10)
    fitted = await fit_history_to_context(
        SYSTEM, messages, context_tokens=104, reply_tokens=20, count_tokens=WordCounter()
    )
    # Half of 84 fits four messages, but the fourth newest is an answer: it goes too.
    assert messages[6]["role"] == "assistant"
    assert fitted.messages[1:] == messages[7:]
    assert fitted.prompt_tokens == 32


async def test_the_following_turns_start_where_the_last_one_did() -> None:
    messages = conversation(10)
    first = await fit_history_to_context(
        SYSTEM, messages, context_tokens=100, reply_tokens=20, count_tokens=WordCounter()
    )
    # Two more turns later the prompt still starts at the same message: a cached prefix.
    longer = conversation(14)
    for start in (first.dropped, first.dropped + 2):
        later = await fit_history_to_context(
            SYSTEM,
            longer[: start + 3],
            context_tokens=100,
            reply_tokens=20,
            count_tokens=WordCounter(),
            start=first.dropped,
        )
        assert later.dropped == first.dropped
        assert later.messages[1:] == longer[first.dropped : start + 3]


async def test_a_start_that_overflows_drops_down_to_half_again() -> None:
    messages = conversation(12)
    fitted = await fit_history_to_context(
        SYSTEM, messages, context_tokens=100, reply_tokens=20, count_tokens=WordCounter(), start=3
    )
    # From message 3 on: 90 words, over the budget of 80; cut to at most 40 again.
    assert fitted.messages[1:] == messages[9:]
    assert fitted.dropped == 9


async def test_exact_boundary_fits() -> None:
    messages = conversation(10)
    fitted = await fit_history_to_context(
        SYSTEM, messages, context_tokens=102, reply_tokens=0, count_tokens=WordCounter()
    )
    assert fitted.dropped == 0 and fitted.prompt_tokens == 102
    # Budget 64, half 32 = 2 + 3 * 10 exactly: three messages kept.
    cut = await fit_history_to_context(
        SYSTEM, messages, context_tokens=74, reply_tokens=10, count_tokens=WordCounter()
    )
    assert cut.messages[1:] == messages[7:]
    assert cut.prompt_tokens == 32
    one_less = await fit_history_to_context(
        SYSTEM, messages, context_tokens=73, reply_tokens=10, count_tokens=WordCounter()
    )
    # Two messages fit: an answer and the question after it. The answer stays, since it
    # is what the newest message replies to.
    assert one_less.messages[1:] == messages[8:]


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
    # One count for "everything", one for "only the newest", a binary search, and one
    # when the cut moves to the next question.
    assert counter.calls <= 3 + math.ceil(math.log2(turns))

"""Properties of fit_history_to_context over generated conversations and budgets.

Whatever the history, the budget, the previous turn's start and the tokenizer (any
counter where more messages never cost fewer tokens): the result fits, starts with the
system prompt, is a suffix of the history in its order and keeps the newest message. It
starts where the previous turn did while that fits; otherwise it is cut to half the
budget (or just into it, for a long newest message), dropping no more than that needs.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from chat_ui.context import REFILL_FRACTION, ChatMessage, FittedHistory, fit_history_to_context
from chat_ui.errors import MessageTooLongForContext

EXAMPLES = 400


@dataclass(frozen=True)
class Tokenizer:
    """A stand-in tokenizer: a fixed cost per prompt and per message, plus UTF-8 bytes / k."""

    fixed: int
    per_message: int
    bytes_per_token: int

    def count(self, messages: list[ChatMessage]) -> int:
        content = sum(len(m["content"].encode("utf-8")) for m in messages)
        return self.fixed + self.per_message * len(messages) + content // self.bytes_per_token

    async def __call__(self, messages: list[ChatMessage]) -> int:
        return self.count(messages)


tokenizers = st.builds(
    Tokenizer,
    fixed=st.integers(0, 20),
    per_message=st.integers(0, 10),
    bytes_per_token=st.integers(1, 4),
)
messages_strategy = st.lists(
    st.builds(
        lambda role, content: {"role": role, "content": content},
        st.sampled_from(["user", "assistant"]),
        st.text(max_size=120),
    ),
    min_size=1,
    max_size=25,
)


def fit(
    system: str,
    messages: list[ChatMessage],
    tokenizer: Tokenizer,
    context: int,
    reply: int,
    *,
    with_bound: bool,
    start: int = 0,
) -> FittedHistory:
    # A valid bound is never below the exact count; this one is a little above it.
    def bound(kept: list[ChatMessage]) -> int:
        return tokenizer.count(kept) + 3

    return asyncio.run(
        fit_history_to_context(
            system,
            messages,
            context_tokens=context,
            reply_tokens=reply,
            count_tokens=tokenizer,
            upper_bound=bound if with_bound else None,
            start=start,
        )
    )


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    system=st.text(max_size=60),
    messages=messages_strategy,
    tokenizer=tokenizers,
    context=st.integers(1, 800),
    reply=st.integers(0, 200),
    with_bound=st.booleans(),
    start=st.integers(0, 30),
)
def test_the_fitted_history_fits_and_keeps_its_start_while_it_can(
    system: str,
    messages: list[ChatMessage],
    tokenizer: Tokenizer,
    context: int,
    reply: int,
    with_bound: bool,
    start: int,
) -> None:
    budget = context - reply
    system_message = {"role": "system", "content": system}

    def cost(dropped: int) -> int:
        return tokenizer.count([system_message, *messages[dropped:]])

    newest = len(messages) - 1
    if cost(newest) > budget:
        event("the newest message alone is too long")
        with pytest.raises(MessageTooLongForContext):
            fit(system, messages, tokenizer, context, reply, with_bound=with_bound, start=start)
        return

    fitted = fit(system, messages, tokenizer, context, reply, with_bound=with_bound, start=start)
    kept = fitted.messages[1:]
    assert fitted.messages[0] == system_message
    # A suffix, in order, with the newest message, and `dropped` says how long.
    assert kept == messages[fitted.dropped :]
    assert kept[-1] == messages[-1]
    exact = tokenizer.count(fitted.messages)
    assert exact <= budget
    assert fitted.prompt_tokens >= exact
    start = min(start, newest)
    if cost(start) <= budget:
        event("kept the start")
        assert fitted.dropped == start
        return
    event("cut")
    half = int(budget * REFILL_FRACTION)
    target = half if cost(newest) <= half else budget
    # The fewest drops after `start` that meet the target, or one more to begin at a question.
    fewest = next(d for d in range(start + 1, newest + 1) if cost(d) <= target)
    moved = messages[fewest]["role"] != "user" and fewest + 1 < newest
    assert fitted.dropped == fewest + moved


@settings(max_examples=EXAMPLES // 4, deadline=None)
@given(messages=messages_strategy, tokenizer=tokenizers)
def test_the_input_is_never_changed(messages: list[ChatMessage], tokenizer: Tokenizer) -> None:
    before = [dict(message) for message in messages]
    fitted = fit("sys", messages, tokenizer, 10_000, 0, with_bound=False)
    for message in fitted.messages:
        message["content"] = "changed"
    assert messages == before

"""Fit a conversation into the model's context window, using exact token counts.

Pure logic: the token counter is passed in, so the lm client supplies the real
one (the server's own chat template and tokenizer) and unit tests a fake one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from chat_ui.errors import MessageTooLongForContext

ChatMessage = dict[str, str]
"""One chat turn as the model server takes it: {"role": ..., "content": ...}."""

TokenCounter = Callable[[list[ChatMessage]], Awaitable[int]]
"""Exact prompt token count of a full message list (system prompt included)."""


@dataclass(frozen=True)
class FittedHistory:
    """The messages to send (system prompt first) and what was left out."""

    messages: list[ChatMessage]
    dropped: int
    prompt_tokens: int


async def fit_history_to_context(
    system_prompt: str,
    messages: Sequence[ChatMessage],
    *,
    context_tokens: int,
    reply_tokens: int,
    count_tokens: TokenCounter,
) -> FittedHistory:
    """Keep the system prompt and the newest messages that fit, leaving room for the reply.

    Drops the oldest messages first. A binary search over how many to drop needs
    O(log n) exact counts instead of one per message; it relies on dropping more
    messages never making the prompt longer.

    Raises MessageTooLongForContext when even the system prompt plus the newest
    message leave no room for the reply.
    """
    if not messages:
        raise ValueError("fit_history_to_context needs at least the newest message")
    budget = context_tokens - reply_tokens
    system = {"role": "system", "content": system_prompt}

    def keep_after(dropped: int) -> list[ChatMessage]:
        return [system, *(dict(message) for message in messages[dropped:])]

    tokens = await count_tokens(keep_after(0))
    if tokens <= budget:
        return FittedHistory(messages=keep_after(0), dropped=0, prompt_tokens=tokens)

    # The newest message is never dropped, so the most we may drop is all the others.
    most_droppable = len(messages) - 1
    fitting_tokens = await count_tokens(keep_after(most_droppable)) if most_droppable else tokens
    if most_droppable == 0 or fitting_tokens > budget:
        raise MessageTooLongForContext()

    # Invariant: dropping `too_few` does not fit, dropping `enough` does.
    too_few, enough = 0, most_droppable
    while enough - too_few > 1:
        middle = (too_few + enough) // 2
        middle_tokens = await count_tokens(keep_after(middle))
        if middle_tokens <= budget:
            enough, fitting_tokens = middle, middle_tokens
        else:
            too_few = middle
    return FittedHistory(messages=keep_after(enough), dropped=enough, prompt_tokens=fitting_tokens)

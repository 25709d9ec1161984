"""Fit a conversation into the model's context window, using exact token counts.

Pure logic: the token counter is passed in, so the lm client supplies the real
one (the server's own chat template and tokenizer) and unit tests a fake one.

Counting exactly costs two HTTP calls to the model server per try, on the path
between "send" and the first token. Most chats are far from the limit, so a cheap
upper bound (`PromptSizeBound`) decides first and the exact counts are only needed
near the limit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise

from chat_ui.errors import MessageTooLongForContext

ChatMessage = dict[str, str]
"""One chat turn as the model server takes it: {"role": ..., "content": ...}."""

TokenCounter = Callable[[list[ChatMessage]], Awaitable[int]]
"""Exact prompt token count of a full message list (system prompt included)."""

# Slack on top of the measured template bytes (see PromptSizeBound.from_probe_lengths).
BOUND_MARGIN_FIXED = 32
BOUND_MARGIN_PER_MESSAGE = 8

TokenBound = Callable[[list[ChatMessage]], int]
"""A number never below the exact prompt token count of the same message list."""


@dataclass(frozen=True)
class PromptSizeBound:
    """A safe upper bound of a prompt's token count, computed without the model server.

    llama.cpp's byte-level BPE tokenizers turn every token into at least one byte of
    the prompt text (special tokens such as <|im_start|> are several bytes each), so
    the UTF-8 length of the templated prompt is at least its token count. The template
    adds a fixed part (and the generation prompt) plus a part per message, measured
    once from the server (`LmClient.prompt_size_bound`) with a margin on top.
    """

    fixed_bytes: int
    per_message_bytes: int

    @classmethod
    def from_probe_lengths(cls, lengths: Sequence[int], *, probe_bytes: int) -> PromptSizeBound:
        """The bound from templated byte lengths of 1, 2, 3... probe messages.

        Each probe message has `probe_bytes` of content, so the growth per message
        minus that is what the template adds per message; the first length minus one
        message is the fixed part. A margin covers a BOS token and templates that add
        slightly more in some positions than in the probe's.
        """
        per_message = max(later - earlier - probe_bytes for earlier, later in pairwise(lengths))
        fixed = lengths[0] - probe_bytes - per_message
        return cls(
            fixed_bytes=max(fixed, 0) + BOUND_MARGIN_FIXED,
            per_message_bytes=max(per_message, 0) + BOUND_MARGIN_PER_MESSAGE,
        )

    def __call__(self, messages: list[ChatMessage]) -> int:
        content_bytes = sum(len(message["content"].encode("utf-8")) for message in messages)
        return self.fixed_bytes + self.per_message_bytes * len(messages) + content_bytes


@dataclass(frozen=True)
class FittedHistory:
    """The messages to send (system prompt first) and what was left out."""

    messages: list[ChatMessage]
    dropped: int
    prompt_tokens: int


# When the history outgrows the window, old messages go until the prompt fills at most
# this share of it. Every turn until the window is full again then starts with the same
# messages, so llama.cpp finds the prompt in its cache and reads only the new turn;
# dropping one message per turn would change the prompt's start, and with it every
# cached token after it, on every turn.
REFILL_FRACTION = 0.5


async def fit_history_to_context(
    system_prompt: str,
    messages: Sequence[ChatMessage],
    *,
    context_tokens: int,
    reply_tokens: int,
    count_tokens: TokenCounter,
    upper_bound: TokenBound | None = None,
    start: int = 0,
) -> FittedHistory:
    """The system prompt and the messages from `start` on, or fewer once those overflow.

    `start` is how many of the oldest messages the chat's previous turn left out: while
    the rest fits next to the reply, the prompt starts there again, cache-friendly.
    Once it does not, the oldest go until the prompt is at most `REFILL_FRACTION` of
    the budget (or, for one very long newest message, until it fits at all), and the
    kept part starts with a user message where one more drop makes it so (never the
    answer the newest message replies to). A binary search over how many
    to drop needs O(log n) exact counts; it relies on dropping more messages never
    making the prompt longer.

    When `upper_bound` says the messages fit, no exact count is made and
    `prompt_tokens` is that bound (an over-estimate), not the exact count.

    Raises MessageTooLongForContext when even the system prompt plus the newest
    message leave no room for the reply.
    """
    if not messages:
        raise ValueError("fit_history_to_context needs at least the newest message")
    budget = context_tokens - reply_tokens
    system = {"role": "system", "content": system_prompt}
    # The newest message is never dropped, so the most we may drop is all the others.
    most_droppable = len(messages) - 1
    start = min(max(start, 0), most_droppable)

    def keep_after(dropped: int) -> list[ChatMessage]:
        return [system, *(dict(message) for message in messages[dropped:])]

    if upper_bound is not None:
        bound = upper_bound(keep_after(start))
        if bound <= budget:
            return FittedHistory(messages=keep_after(start), dropped=start, prompt_tokens=bound)

    tokens = await count_tokens(keep_after(start))
    if tokens <= budget:
        return FittedHistory(messages=keep_after(start), dropped=start, prompt_tokens=tokens)

    if most_droppable == start:
        raise MessageTooLongForContext()
    fewest_tokens = await count_tokens(keep_after(most_droppable))
    if fewest_tokens > budget:
        raise MessageTooLongForContext()
    target = int(budget * REFILL_FRACTION) if fewest_tokens <= budget * REFILL_FRACTION else budget

    # Invariant: dropping `too_few` is over the target, dropping `enough` is within it.
    too_few, enough, enough_tokens = start, most_droppable, fewest_tokens
    while enough - too_few > 1:
        middle = (too_few + enough) // 2
        middle_tokens = await count_tokens(keep_after(middle))
        if middle_tokens <= target:
            enough, enough_tokens = middle, middle_tokens
        else:
            too_few = middle
    if messages[enough]["role"] != "user" and enough + 1 < most_droppable:
        # Start the model's view at a question, not halfway through an answer to one
        # (unless that answer is what the newest message replies to).
        enough += 1
        enough_tokens = await count_tokens(keep_after(enough))
    return FittedHistory(messages=keep_after(enough), dropped=enough, prompt_tokens=enough_tokens)

"""Figure 7: a chat at the context limit answers as fast as a short one.

Ten consecutive turns in a chat whose history fills one slot's context, each paired
with a new short chat on the same stack: the first token's latency through nginx and
chat-ui, and how many prompt tokens llama.cpp had to read for it (its own
`/metrics` counter, which leaves out what its prompt cache already held). The long
chat overflows during the ten turns, so the turn that drops old messages is measured
too. Targets: the long chat's median within 1.5x of the short chats' median, its worst
turn within 3x.

Part of `make bench`; alone: `.venv/bin/python -m bench.long_chat`.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from dataclasses import dataclass

import httpx

from bench.results import Figure, Target
from bench.seed import message_content
from bench.stack import MAX_REPLY_TOKENS, Stack, running_stack
from bench.stream import sse_events
from harness.factories import auth_headers
from harness.forms import Browser, chat_id_of, csrf_from

SECTION = "7. Long chat (history at the context limit)"
TURNS = 10
QUESTION = "Thanks. In one sentence: which of these points matters most?"
# A different short question each time, so each short chat reads its own few tokens.
SHORT_QUESTIONS = tuple(f"Say hello in {count} words." for count in range(3, 3 + 20))
# Turns of headroom the history leaves: the chat fills up, then overflows, while measured.
HEADROOM_TURNS = 3
# Tokens one more turn adds: the question, a reply of at most MAX_REPLY_TOKENS, the template.
TOKENS_PER_TURN = MAX_REPLY_TOKENS + 40
TIMEOUT = httpx.Timeout(600.0, connect=5.0)


@dataclass(frozen=True)
class Turn:
    first_token_s: float
    prompt_tokens_read: int
    prompt_seconds: float  # llama.cpp's own time reading them


@dataclass(frozen=True)
class LongChat:
    long: list[Turn]
    short: list[Turn]
    slot_context: int
    history_tokens: int


def prompt_totals(llama: httpx.Client) -> tuple[int, float]:
    """llama.cpp's running totals of prompt tokens it read (cache hits excluded), and seconds."""
    totals: dict[str, float] = {}
    for line in llama.get("/metrics").text.splitlines():
        name, _, value = line.partition(" ")
        if name in ("llamacpp:prompt_tokens_total", "llamacpp:prompt_seconds_total"):
            totals[name] = float(value)
    if len(totals) != 2:
        raise RuntimeError("llama.cpp /metrics lacks the prompt totals")
    return int(totals["llamacpp:prompt_tokens_total"]), totals["llamacpp:prompt_seconds_total"]


def send_turn(browser: Browser, llama: httpx.Client, chat_id: str, question: str) -> Turn:
    """Send one message the way the page's script does; wait for the whole reply."""
    page = browser.get(f"/chats/{chat_id}")
    tokens_before, seconds_before = prompt_totals(llama)
    started = time.perf_counter()
    answer = browser.http.post(
        f"/chats/{chat_id}/messages",
        data={"content": question, "csrf_token": csrf_from(page.text)},
        headers={"Accept": "application/json"},
        timeout=TIMEOUT,
    )
    answer.raise_for_status()
    first = 0.0
    with browser.http.stream("GET", answer.json()["stream_url"], timeout=TIMEOUT) as response:
        response.raise_for_status()
        for event, data in sse_events(response):
            if event == "update" and not first and json.loads(data).get("tokens", 0) > 0:
                first = time.perf_counter()
            if event == "done":
                break
    if not first:
        raise RuntimeError(f"the reply in chat {chat_id} streamed no token")
    tokens_after, seconds_after = prompt_totals(llama)
    return Turn(first - started, tokens_after - tokens_before, seconds_after - seconds_before)


def tokens_of(llama: httpx.Client, text: str) -> int:
    response = llama.post("/tokenize", json={"content": text})
    response.raise_for_status()
    return len(response.json()["tokens"])


def seed_long_chat(
    stack: Stack, browser: Browser, llama: httpx.Client, budget: int
) -> tuple[str, int]:
    """A chat of questions and answers that leaves HEADROOM_TURNS of the budget free."""
    db_headers = auth_headers(stack.service_token)
    target = budget - HEADROOM_TURNS * TOKENS_PER_TURN
    with httpx.Client(base_url=stack.db_api_url, headers=db_headers, timeout=30) as db:
        verified = db.post(
            "/users/verify", json={"username": browser.username, "password": browser.password}
        )
        verified.raise_for_status()
        acting = {"X-User-Id": verified.json()["id"]}
        created = db.post("/chats", json={"title": "Long chat"}, headers=acting)
        created.raise_for_status()
        chat_id: str = created.json()["id"]
        # Each message costs its tokens plus the template's few around it.
        total, index = 0, 0
        while True:
            role, content = message_content(index)
            cost = tokens_of(llama, content) + 8
            if total + cost > target and role == "user":
                break
            added = db.post(
                f"/chats/{chat_id}/messages",
                json={"role": role, "content": content},
                headers=acting,
            )
            added.raise_for_status()
            total, index = total + cost, index + 1
    return chat_id, total


def measure_long_chat(stack: Stack, browser: Browser, *, turns: int = TURNS) -> LongChat:
    with httpx.Client(base_url=stack.llama_url, timeout=TIMEOUT) as llama:
        slot_context = int(llama.get("/props").json()["default_generation_settings"]["n_ctx"])
        chat_id, history = seed_long_chat(stack, browser, llama, slot_context - MAX_REPLY_TOKENS)
        # A chat in use: its first turn after the seeding reads the whole history once.
        send_turn(browser, llama, chat_id, QUESTION)
        long, short = [], []
        for turn in range(turns):
            long.append(send_turn(browser, llama, chat_id, QUESTION))
            new_chat = chat_id_of(browser.submit("/chats"))
            short.append(send_turn(browser, llama, new_chat, SHORT_QUESTIONS[turn]))
    return LongChat(long, short, slot_context, history)


def long_chat_figures(measured: LongChat) -> list[Figure]:
    baseline = "a new short chat, turn by turn"
    long_ms = [turn.first_token_s * 1000 for turn in measured.long]
    short_ms = [turn.first_token_s * 1000 for turn in measured.short]
    short_median = statistics.median(short_ms)
    read = [turn.prompt_tokens_read for turn in measured.long]
    setting = (
        f"{measured.history_tokens:,} tokens of history in a {measured.slot_context:,}-token "
        f"slot, {MAX_REPLY_TOKENS} tokens per reply"
    )
    return [
        Figure(
            SECTION,
            "first token, each of 10 turns",
            "ms",
            long_ms,
            baseline,
            short_ms,
            Target("ratio", "<=", 1.5),
            higher_is_better=False,
            notes=setting,
        ),
        Figure(
            SECTION,
            "first token, the slowest turn",
            "ms",
            [max(long_ms)],
            "the short chats' median",
            [short_median],
            Target("ratio", "<=", 3),
            higher_is_better=False,
        ),
        Figure(
            SECTION,
            "prompt tokens llama.cpp read per turn",
            "tokens",
            [float(count) for count in read],
            baseline,
            [float(turn.prompt_tokens_read) for turn in measured.short],
            higher_is_better=False,
            notes="per turn: "
            + ", ".join(
                f"{turn.prompt_tokens_read:,} in {turn.prompt_seconds:.2f} s"
                for turn in measured.long
            ),
        ),
    ]


def main() -> int:
    with running_stack() as stack:
        browser = Browser(stack.app_url)
        browser.sign_up()
        measured = measure_long_chat(stack, browser)
        browser.close()
    for figure in long_chat_figures(measured):
        print(f"{figure.name}: {figure.value.median:,.0f} {figure.unit} vs {figure.baseline}")
    for long, short in zip(measured.long, measured.short, strict=True):
        print(
            f"long {long.first_token_s * 1000:7.0f} ms ({long.prompt_tokens_read:5} read in "
            f"{long.prompt_seconds:6.2f} s) | short {short.first_token_s * 1000:5.0f} ms "
            f"({short.prompt_tokens_read} read in {short.prompt_seconds:.2f} s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

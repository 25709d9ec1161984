"""Figure 4: 1, 2, 4 and 8 chats replying at once, through nginx + chat-ui.

Each level starts N fresh chats, one per person, sends one message to each at the
same moment (a barrier), and follows every reply's stream; with more chats than the
model has slots, the rest wait in the app's queue. Aggregate tokens/s is all tokens
of the level divided by the time from the sends to the last token; first-token
latency is per chat, from its send. The baseline of each level is one chat
alone, measured in the same round. The same is measured against the llama.cpp
server directly (1 and 4 streams, no app): the ceiling the model server itself
sets on this machine.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

from bench.results import Figure, Target
from bench.stats import percentile
from bench.stream import QUESTION, measure_direct, sse_events
from harness.forms import Browser, chat_id_of, csrf_from

LEVELS = (1, 2, 4, 8)
SECTION = "4. Concurrent chats (through nginx + chat-ui)"


@dataclass(frozen=True)
class ChatTiming:
    first_token_s: float  # from the send
    last_token_s: float  # from the barrier
    tokens: int


@dataclass(frozen=True)
class Level:
    chats: int
    wall_s: float
    timings: list[ChatTiming]

    @property
    def tokens_per_s(self) -> float:
        return sum(t.tokens for t in self.timings) / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def p95_first_token_ms(self) -> float:
        return percentile([t.first_token_s for t in self.timings], 0.95) * 1000


def _reply(
    browser: Browser,
    path: str,
    form: dict[str, str],
    barrier: threading.Barrier,
    origin: list[float],
) -> ChatTiming:
    barrier.wait()
    sent = time.perf_counter()
    answer = browser.http.post(path, data=form, headers={"Accept": "application/json"})
    answer.raise_for_status()
    first = last = 0.0
    tokens = 0
    with browser.http.stream("GET", answer.json()["stream_url"]) as response:
        response.raise_for_status()
        for event, data in sse_events(response):
            state = json.loads(data)
            if event == "update" and state.get("tokens", 0) > tokens:
                last = time.perf_counter()
                first = first or last
                tokens = state["tokens"]
            if event == "done":
                break
    return ChatTiming(first_token_s=first - sent, last_token_s=last - origin[0], tokens=tokens)


def run_level(signed_in: Browser, chats: int) -> Level:
    browsers = []
    for _ in range(chats):
        # One person per chat: a user has one reply being written at a time.
        browser = Browser(str(signed_in.http.base_url))
        browser.sign_up()
        browsers.append(browser)
    forms = []
    for browser in browsers:
        page = browser.submit("/chats")
        forms.append(
            (
                f"/chats/{chat_id_of(page)}/messages",
                {"content": QUESTION, "csrf_token": csrf_from(page.text)},
            )
        )
    origin = [0.0]
    barrier = threading.Barrier(chats, action=lambda: origin.__setitem__(0, time.perf_counter()))
    with ThreadPoolExecutor(max_workers=chats) as pool:
        futures = [
            pool.submit(_reply, browser, path, form, barrier, origin)
            for browser, (path, form) in zip(browsers, forms, strict=True)
        ]
        timings = [future.result() for future in futures]
    for browser in browsers:
        browser.close()
    return Level(chats=chats, wall_s=max(t.last_token_s for t in timings), timings=timings)


def _direct_reply(llama_url: str, barrier: threading.Barrier, origin: list[float]) -> ChatTiming:
    barrier.wait()
    with httpx.Client(timeout=300) as client:
        sample = measure_direct(client, llama_url)
    # measure_direct times from its own start, which is the barrier's release.
    done = sample.first_token_s + sample.generation_s
    return ChatTiming(first_token_s=sample.first_token_s, last_token_s=done, tokens=sample.tokens)


def run_direct_level(llama_url: str, chats: int) -> Level:
    """`chats` streams straight to the llama.cpp server, started together."""
    origin = [0.0]
    barrier = threading.Barrier(chats, action=lambda: origin.__setitem__(0, time.perf_counter()))
    with ThreadPoolExecutor(max_workers=chats) as pool:
        futures = [pool.submit(_direct_reply, llama_url, barrier, origin) for _ in range(chats)]
        timings = [future.result() for future in futures]
    return Level(chats=chats, wall_s=max(t.last_token_s for t in timings), timings=timings)


@dataclass(frozen=True)
class ConcurrencyRound:
    levels: list[Level]  # through nginx + chat-ui, one per LEVELS
    direct: list[Level]  # straight to llama.cpp, one per DIRECT_LEVELS


# 8 streams straight to llama.cpp: its own first-come-first-served queue, the baseline
# of the app's fair queue at 8 chats.
DIRECT_LEVELS = (1, 4, 8)


def measure_concurrency(
    signed_in: Browser, llama_url: str, *, rounds: int
) -> list[ConcurrencyRound]:
    """rounds x LEVELS; a first unmeasured single chat warms the model's caches."""
    run_level(signed_in, 1)
    measured: list[ConcurrencyRound] = []
    for _ in range(rounds):
        levels = [run_level(signed_in, chats) for chats in LEVELS]
        direct = [run_direct_level(llama_url, chats) for chats in DIRECT_LEVELS]
        measured.append(ConcurrencyRound(levels, direct))
    return measured


def concurrency_figures(measured: list[ConcurrencyRound], parallel_slots: int) -> list[Figure]:
    figures: list[Figure] = []
    rounds = [r.levels for r in measured]
    single = [levels[0] for levels in rounds]
    for index, chats in enumerate(LEVELS):
        levels = [r[index] for r in rounds]
        figures.append(
            Figure(
                SECTION,
                f"{chats} chats: aggregate tokens/s",
                "tokens/s",
                [level.tokens_per_s for level in levels],
                "1 chat alone" if chats > 1 else "",
                [level.tokens_per_s for level in single] if chats > 1 else (),
                Target("ratio", ">=", 1.8) if chats == 4 else None,
                notes=f"{parallel_slots} parallel slots" if chats == 1 else "",
            )
        )
        figures.append(
            Figure(
                SECTION,
                f"{chats} chats: p95 first token",
                "ms",
                [level.p95_first_token_ms for level in levels],
                "1 chat alone" if chats > 1 else "",
                [level.p95_first_token_ms for level in single] if chats > 1 else (),
                higher_is_better=False,
            )
        )
    alone, four, eight = (
        [r.direct[index] for r in measured] for index in range(len(DIRECT_LEVELS))
    )
    figures.append(
        Figure(
            SECTION,
            "4 streams straight to llama.cpp: aggregate tokens/s",
            "tokens/s",
            [level.tokens_per_s for level in four],
            "1 stream straight to llama.cpp",
            [level.tokens_per_s for level in alone],
            notes="no app: the model server's own scaling on this CPU",
        )
    )
    figures.append(
        Figure(
            SECTION,
            "8 chats through the fair queue: aggregate tokens/s",
            "tokens/s",
            [r.levels[LEVELS.index(8)].tokens_per_s for r in measured],
            "8 streams straight to llama.cpp (first come, first served)",
            [level.tokens_per_s for level in eight],
            Target("ratio", ">=", 0.95),
            notes=f"{parallel_slots} slots: the chats beyond them wait in db-api's queue; "
            "the baseline waits in llama.cpp's own",
        )
    )
    return figures

"""Figure 1, second part: the chat page right after something changed.

Figure 1 loads one unchanged chat, so chat-ui sends the page it kept (db-api only
confirms the session and that nothing changed). Here a message is added to another
chat of the same user before every view (straight through db-api, as another tab or
replica would), so every view reads the chat and renders the page afresh: what a
user waits for after each message. One view at a time, so the figures are the
page's own cost; the baseline is the same views with nothing changed in between.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from bench.cpu import tree_cpu_s
from bench.memory import service_pids
from bench.results import Figure
from bench.seed import SeededChat
from bench.stack import Stack
from bench.stats import percentile
from harness.factories import auth_headers

SECTION = "1. Chat page (100 messages, nginx, 16 connections)"
VIEWS = 60


@dataclass(frozen=True)
class ViewRound:
    p50_ms: float
    p99_ms: float
    chat_ui_cpu_ms: float  # per view


@dataclass(frozen=True)
class ChangedRounds:
    changed: list[ViewRound]
    unchanged: list[ViewRound]


def _views(
    stack: Stack, chat: SeededChat, change: httpx.Client | None, other_chat: str
) -> ViewRound:
    chat_ui = service_pids(stack)["chat-ui"]
    latencies: list[float] = []
    cpu = 0.0
    for index in range(VIEWS):
        if change is not None:
            change.post(
                f"/chats/{other_chat}/messages",
                json={"role": "user", "content": f"Change {index}"},
            ).raise_for_status()
        before = tree_cpu_s(chat_ui)
        started = time.perf_counter()
        chat.browser.get(chat.path).raise_for_status()
        latencies.append(time.perf_counter() - started)
        cpu += tree_cpu_s(chat_ui) - before
    return ViewRound(
        p50_ms=percentile(latencies, 0.5) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        chat_ui_cpu_ms=cpu * 1000 / VIEWS,
    )


def measure_changed_page(stack: Stack, chat: SeededChat, *, rounds: int) -> ChangedRounds:
    headers = {**auth_headers(stack.service_token, chat.user_id)}
    with httpx.Client(base_url=stack.db_api_url, headers=headers, timeout=30) as db:
        other = db.post("/chats", json={"title": "Elsewhere"})
        other.raise_for_status()
        other_chat: str = other.json()["id"]
        _views(stack, chat, db, other_chat)  # warm-up
        changed: list[ViewRound] = []
        unchanged: list[ViewRound] = []
        for _ in range(rounds):
            changed.append(_views(stack, chat, db, other_chat))
            unchanged.append(_views(stack, chat, None, other_chat))
    return ChangedRounds(changed, unchanged)


def changed_page_figures(measured: ChangedRounds) -> list[Figure]:
    baseline = "nothing changed (the kept page), one view at a time"
    changed, unchanged = measured.changed, measured.unchanged
    return [
        Figure(
            SECTION,
            "after a change, one view at a time: p50 latency",
            "ms",
            [r.p50_ms for r in changed],
            baseline,
            [r.p50_ms for r in unchanged],
            higher_is_better=False,
            notes=f"{VIEWS} views per round, each after a new message in another chat",
        ),
        Figure(
            SECTION,
            "after a change: p99 latency",
            "ms",
            [r.p99_ms for r in changed],
            baseline,
            [r.p99_ms for r in unchanged],
            higher_is_better=False,
        ),
        Figure(
            SECTION,
            "after a change: chat-ui CPU per view",
            "ms",
            [r.chat_ui_cpu_ms for r in changed],
            baseline,
            [r.chat_ui_cpu_ms for r in unchanged],
            higher_is_better=False,
            notes="reading and rendering 100 messages (their markdown is cached)",
        ),
    ]

"""Figure 8: one user cannot starve another.

User A sends long questions in four chats at once; then user B asks a short one. B's
first token (through nginx and chat-ui) is compared with B's first token on an idle
model, measured in the same round. A has one reply written at a time (the other sends
are refused and keep their text), so B finds a free slot and shares the CPU with one
of A's replies, not four. Target: within 2x of idle.

Part of `make bench`; alone: `.venv/bin/python -m bench.fairness`.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

from bench.results import Figure, Target
from bench.stack import Stack, running_stack
from bench.stream import sse_events
from harness.forms import Browser, chat_id_of, csrf_from

SECTION = "8. Fairness (one user's many chats against another's question)"
ROUNDS = 8
HOG_CHATS = 4
# A list: the model sometimes refuses "write a long story", never this.
LONG_QUESTION = (
    "Write a numbered list of 60 animals, one per line, with a short sentence about each."
)
# A different question each time, so no answer comes from the prompt cache whole.
SHORT_QUESTIONS = tuple(f"Name {count} colours, nothing else." for count in range(2, 40))
TIMEOUT = httpx.Timeout(300.0, connect=5.0)


@dataclass(frozen=True)
class FairnessRound:
    idle_first_token_s: float
    loaded_first_token_s: float
    hog_statuses: list[int]  # what A's sends were answered


def new_chat(browser: Browser) -> tuple[str, str]:
    """A new chat's id and its page's CSRF token."""
    page = browser.submit("/chats")
    return chat_id_of(page), csrf_from(page.text)


def send(browser: Browser, chat: tuple[str, str], content: str) -> httpx.Response:
    chat_id, csrf = chat
    return browser.http.post(
        f"/chats/{chat_id}/messages",
        data={"content": content, "csrf_token": csrf},
        headers={"Accept": "application/json"},
        timeout=TIMEOUT,
    )


def wait_for_first_token(browser: Browser, stream_url: str) -> float:
    """When the reply's first token arrived (perf_counter); the stream is left then."""
    with browser.http.stream("GET", stream_url, timeout=TIMEOUT) as response:
        response.raise_for_status()
        for event, data in sse_events(response):
            if event == "update" and json.loads(data).get("tokens", 0) > 0:
                return time.perf_counter()
            if event == "done":
                break
    raise RuntimeError(f"the reply at {stream_url} streamed no token")


def stop(browser: Browser, chat: tuple[str, str]) -> None:
    chat_id, csrf = chat
    browser.http.post(
        f"/chats/{chat_id}/stop",
        data={"csrf_token": csrf},
        headers={"Accept": "application/json"},
        timeout=TIMEOUT,
    ).raise_for_status()


def short_first_token(browser: Browser, question: str) -> float:
    """Seconds from sending a short question in a new chat to its first token."""
    chat = new_chat(browser)
    started = time.perf_counter()
    answer = send(browser, chat, question)
    answer.raise_for_status()
    first = wait_for_first_token(browser, answer.json()["stream_url"]) - started
    stop(browser, chat)  # only the first token is measured; free the slot
    return first


def wait_for_idle_model(llama: httpx.Client) -> None:
    while any(slot["is_processing"] for slot in llama.get("/slots").json()):
        time.sleep(0.05)


def measure_fairness(stack: Stack, *, rounds: int = ROUNDS) -> list[FairnessRound]:
    hog, other = Browser(stack.app_url), Browser(stack.app_url)
    hog.sign_up()
    other.sign_up()
    questions = iter(SHORT_QUESTIONS)
    measured = []
    try:
        with httpx.Client(base_url=stack.llama_url, timeout=TIMEOUT) as llama:
            short_first_token(other, next(questions))  # warm-up, not measured
            for _ in range(rounds):
                wait_for_idle_model(llama)
                idle = short_first_token(other, next(questions))
                wait_for_idle_model(llama)
                chats = [new_chat(hog) for _ in range(HOG_CHATS)]
                with ThreadPoolExecutor(max_workers=HOG_CHATS) as pool:
                    answers = list(pool.map(lambda chat: send(hog, chat, LONG_QUESTION), chats))
                accepted = [
                    (chat, answer)
                    for chat, answer in zip(chats, answers, strict=True)
                    if answer.status_code == 202
                ]
                for _chat, answer in accepted:
                    wait_for_first_token(hog, answer.json()["stream_url"])
                loaded = short_first_token(other, next(questions))
                for chat, _answer in accepted:
                    stop(hog, chat)
                measured.append(FairnessRound(idle, loaded, [a.status_code for a in answers]))
    finally:
        hog.close()
        other.close()
    return measured


def fairness_figures(measured: list[FairnessRound]) -> list[Figure]:
    statuses = Counter(status for r in measured for status in r.hog_statuses)
    answered = ", ".join(f"{count} x {status}" for status, count in sorted(statuses.items()))
    return [
        Figure(
            SECTION,
            f"B's first token while A has sent in {HOG_CHATS} chats",
            "ms",
            [r.loaded_first_token_s * 1000 for r in measured],
            "B's first token on an idle model",
            [r.idle_first_token_s * 1000 for r in measured],
            Target("ratio", "<=", 2),
            higher_is_better=False,
            notes=f"A's sends over all rounds: {answered} (one reply per user; 409 keeps the text)",
        )
    ]


def main() -> int:
    with running_stack() as stack:
        measured = measure_fairness(stack)
    for figure in fairness_figures(measured):
        print(f"{figure.name}: {figure.notes}")
    for r in measured:
        print(
            f"idle {r.idle_first_token_s * 1000:6.0f} ms | while A writes "
            f"{r.loaded_first_token_s * 1000:6.0f} ms "
            f"({r.loaded_first_token_s / r.idle_first_token_s:.2f}x) | A: {r.hog_statuses}"
        )
    idle = statistics.median(r.idle_first_token_s for r in measured)
    loaded = statistics.median(r.loaded_first_token_s for r in measured)
    print(f"median ratio {loaded / idle:.2f}x (target <= 2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

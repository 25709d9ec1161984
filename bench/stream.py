"""Figure 3: the model path through nginx + chat-ui versus llama.cpp directly.

Alternates the same request both ways and reports, per path, the median
first-token latency and the generation rate, with the ratio and the targets:

- tokens/s through the app >= 0.97 x direct
- first token through the app <= direct + 20 ms (medians)

Part of `make bench`; alone: `.venv/bin/python -m bench.stream --runs 10`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx

from bench.results import Figure, Target
from bench.stack import MAX_REPLY_TOKENS, SYSTEM_PROMPT, running_stack
from harness.forms import Browser, chat_id_of, csrf_from

QUESTION = "Write a short story about a lighthouse keeper, in about 150 words."
MAX_TOKENS = MAX_REPLY_TOKENS
TIMEOUT = httpx.Timeout(300.0, connect=5.0)
SECTION = "3. Model path (llama.cpp direct vs nginx + chat-ui)"


@dataclass(frozen=True)
class Sample:
    first_token_s: float
    tokens: int
    generation_s: float  # from the first token to the last

    @property
    def tokens_per_s(self) -> float:
        return (self.tokens - 1) / self.generation_s if self.generation_s > 0 else 0.0


def sse_events(response: httpx.Response) -> Iterator[tuple[str, str]]:
    """(event, data) pairs of a server-sent event stream; comments are skipped."""
    event, data = "message", list[str]()
    for line in response.iter_lines():
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())


def measure_direct(client: httpx.Client, llama_url: str) -> Sample:
    body = {
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": QUESTION},
        ],
        "max_tokens": MAX_TOKENS,
        "stream": True,
    }
    started = time.perf_counter()
    first = last = 0.0
    tokens = 0
    # As chat-ui does: llama.cpp closes the connection after a stream without saying so.
    headers = {"Connection": "close"}
    url = f"{llama_url}/v1/chat/completions"
    with client.stream("POST", url, json=body, headers=headers) as response:
        response.raise_for_status()
        for _, data in sse_events(response):
            if data == "[DONE]":
                break
            delta = json.loads(data)["choices"][0].get("delta", {}).get("content")
            if delta:
                last = time.perf_counter()
                if tokens == 0:
                    first = last
                tokens += 1
    return Sample(first_token_s=first - started, tokens=tokens, generation_s=last - first)


def measure_through_app(browser: Browser, app_url: str) -> Sample:
    """A new chat, one message sent the way the page's script sends it, its stream read."""
    chat_page = browser.submit("/chats")
    chat_id = chat_id_of(chat_page)
    form = {"content": QUESTION, "csrf_token": csrf_from(chat_page.text)}
    started = time.perf_counter()
    answer = browser.http.post(
        f"/chats/{chat_id}/messages", data=form, headers={"Accept": "application/json"}
    )
    answer.raise_for_status()
    stream_url = answer.json()["stream_url"]
    first = last = 0.0
    tokens_at_first = tokens = 0
    with browser.http.stream("GET", stream_url) as response:
        response.raise_for_status()
        for event, data in sse_events(response):
            state = json.loads(data)
            if event == "update" and state.get("tokens", 0) > tokens:
                last = time.perf_counter()
                if tokens == 0:
                    first, tokens_at_first = last, state["tokens"]
                tokens = state["tokens"]
            if event == "done":
                break
    # Coalesced events may deliver several tokens at once; count from the first seen.
    return Sample(
        first_token_s=first - started,
        tokens=tokens - tokens_at_first + 1,
        generation_s=last - first,
    )


def summarize(samples: list[Sample]) -> tuple[float, float]:
    """(median first-token seconds, aggregate tokens/s)."""
    first = statistics.median(sample.first_token_s for sample in samples)
    rate = sum(s.tokens - 1 for s in samples) / sum(s.generation_s for s in samples)
    return first, rate


def measure_stream(
    stack_llama_url: str, browser: Browser, *, runs: int, warmup: int
) -> tuple[list[Sample], list[Sample]]:
    """(direct, through the app) samples, the paths alternated run by run."""
    direct: list[Sample] = []
    through_app: list[Sample] = []
    with httpx.Client(timeout=TIMEOUT) as client:
        for run in range(warmup + runs):
            # Alternate the paths so drift on a shared machine hits both alike.
            direct_sample = measure_direct(client, stack_llama_url)
            app_sample = measure_through_app(browser, str(browser.http.base_url))
            if run >= warmup:
                direct.append(direct_sample)
                through_app.append(app_sample)
    return direct, through_app


def stream_figures(direct: list[Sample], through_app: list[Sample]) -> list[Figure]:
    baseline = "llama.cpp server directly"
    direct_rate, app_rate = summarize(direct)[1], summarize(through_app)[1]
    return [
        Figure(
            SECTION,
            "first token",
            "ms",
            [sample.first_token_s * 1000 for sample in through_app],
            baseline,
            [sample.first_token_s * 1000 for sample in direct],
            Target("difference", "<=", 20, "ms"),
            higher_is_better=False,
            notes=f"{MAX_TOKENS} tokens per reply",
        ),
        Figure(
            SECTION,
            "tokens/s",
            "tokens/s",
            [sample.tokens_per_s for sample in through_app],
            baseline,
            [sample.tokens_per_s for sample in direct],
            Target("ratio", ">=", 0.97),
            notes=f"all runs pooled: {app_rate:.1f} vs {direct_rate:.1f} tokens/s",
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=10, help="measured runs per path")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured runs per path")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    arguments = parser.parse_args()

    with running_stack() as stack:
        browser = Browser(stack.app_url)
        browser.sign_up()
        direct, through_app = measure_stream(
            stack.llama_url, browser, runs=arguments.runs, warmup=arguments.warmup
        )
        browser.close()

    direct_first, direct_rate = summarize(direct)
    app_first, app_rate = summarize(through_app)
    rate_ratio = app_rate / direct_rate
    extra_first_ms = (app_first - direct_first) * 1000
    print(f"streaming benchmark: {arguments.runs} runs per path, {MAX_TOKENS} max tokens")
    print("| path | first token (median) | tokens/s |")
    print("|---|---|---|")
    print(f"| llama.cpp direct | {direct_first * 1000:.1f} ms | {direct_rate:.1f} |")
    print(f"| nginx + chat-ui | {app_first * 1000:.1f} ms | {app_rate:.1f} |")
    rate_ok, first_ok = rate_ratio >= 0.97, extra_first_ms <= 20.0
    print(f"tokens/s ratio: {rate_ratio:.3f}x (target >= 0.97x) {'ok' if rate_ok else 'MISSED'}")
    print(
        f"first token: {extra_first_ms:+.1f} ms (target <= +20 ms) {'ok' if first_ok else 'MISSED'}"
    )
    return 0 if (rate_ok and first_ok) or not arguments.check else 1


if __name__ == "__main__":
    sys.exit(main())

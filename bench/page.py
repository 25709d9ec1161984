"""Figure 1: the chat page with 100 messages through nginx, against the same HTML as a file.

wrk holds 16 keep-alive connections on the page (signed-in cookie) and then on a
static copy of the very same HTML served by the same nginx, round after round.
The static copy is the floor: what nginx alone costs for those bytes. A last pair
of rounds asks for gzip, as browsers do: nginx then compresses every response.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from bench.cpu import cpu_per_request_ms
from bench.memory import service_pids
from bench.results import Figure, Target
from bench.seed import SeededChat
from bench.stack import Stack
from bench.wrk import LoadResult, run_wrk

CONNECTIONS = 16
STATIC_NAME = "bench-chat-page.html"
SECTION = "1. Chat page (100 messages, nginx, 16 connections)"


@dataclass(frozen=True)
class PageRounds:
    app: list[LoadResult]
    static: list[LoadResult]
    page_bytes: int
    # CPU ms per request by service, per round: where the time goes.
    app_cpu: list[dict[str, float]]
    static_cpu: list[dict[str, float]]
    # The same with `Accept-Encoding: gzip`.
    app_gzip: list[LoadResult]
    static_gzip: list[LoadResult]
    app_gzip_cpu: list[dict[str, float]]


def measure_page(stack: Stack, chat: SeededChat, *, rounds: int, seconds: float) -> PageRounds:
    page = chat.browser.get(chat.path)
    page.raise_for_status()
    (stack.static_dir / STATIC_NAME).write_bytes(page.content)
    app_url = f"{stack.app_url}{chat.path}"
    static_url = f"{stack.app_url}/static/{STATIC_NAME}"
    headers = {"Cookie": chat.cookie_header}
    copy = chat.browser.get(static_url)
    if copy.content != page.content:
        raise RuntimeError(f"nginx does not serve the page's static copy: {copy.status_code}")
    # Warm both paths (imports, template compilation, the page cache) before measuring.
    run_wrk(app_url, connections=CONNECTIONS, seconds=2, headers=headers)
    run_wrk(static_url, connections=CONNECTIONS, seconds=1)
    pids = service_pids(stack)
    app: list[LoadResult] = []
    static: list[LoadResult] = []
    app_cpu: list[dict[str, float]] = []
    static_cpu: list[dict[str, float]] = []
    app_gzip: list[LoadResult] = []
    static_gzip: list[LoadResult] = []
    app_gzip_cpu: list[dict[str, float]] = []
    gzip = {"Accept-Encoding": "gzip"}
    for _ in range(rounds):
        result, cpu = cpu_per_request_ms(
            pids,
            lambda: run_wrk(app_url, connections=CONNECTIONS, seconds=seconds, headers=headers),
            lambda load: load.requests,
        )
        app.append(result)
        app_cpu.append(cpu)
        result, cpu = cpu_per_request_ms(
            pids,
            lambda: run_wrk(static_url, connections=CONNECTIONS, seconds=seconds),
            lambda load: load.requests,
        )
        static.append(result)
        static_cpu.append(cpu)
        result, cpu = cpu_per_request_ms(
            pids,
            lambda: run_wrk(
                app_url, connections=CONNECTIONS, seconds=seconds, headers={**headers, **gzip}
            ),
            lambda load: load.requests,
        )
        app_gzip.append(result)
        app_gzip_cpu.append(cpu)
        static_gzip.append(
            run_wrk(static_url, connections=CONNECTIONS, seconds=seconds, headers=gzip)
        )
    return PageRounds(
        app, static, len(page.content), app_cpu, static_cpu, app_gzip, static_gzip, app_gzip_cpu
    )


def page_figures(measured: PageRounds) -> list[Figure]:
    app, static = measured.app, measured.static
    baseline = "nginx, same HTML as a static file"
    note = f"page {measured.page_bytes / 1024:.0f} KiB, no compression requested"
    return [
        Figure(
            SECTION,
            "requests/s",
            "req/s",
            [r.requests_per_s for r in app],
            baseline,
            [r.requests_per_s for r in static],
            Target("value", ">=", 500),
            notes=note,
        ),
        Figure(
            SECTION,
            "p50 latency",
            "ms",
            [r.p50_ms for r in app],
            baseline,
            [r.p50_ms for r in static],
            higher_is_better=False,
        ),
        Figure(
            SECTION,
            "p99 latency",
            "ms",
            [r.p99_ms for r in app],
            baseline,
            [r.p99_ms for r in static],
            Target("value", "<=", 50, "ms"),
            higher_is_better=False,
        ),
        Figure(
            SECTION,
            "CPU per request, all services",
            "ms",
            [sum(cpu.values()) for cpu in measured.app_cpu],
            baseline,
            [sum(cpu.values()) for cpu in measured.static_cpu],
            higher_is_better=False,
            notes=cpu_breakdown(measured.app_cpu),
        ),
        Figure(
            SECTION,
            "with gzip, as browsers ask: requests/s",
            "req/s",
            [r.requests_per_s for r in measured.app_gzip],
            "nginx, same HTML as a static file, gzip",
            [r.requests_per_s for r in measured.static_gzip],
            notes=f"p99 {statistics.median(r.p99_ms for r in measured.app_gzip):.0f} ms; "
            f"CPU ms per request: {cpu_breakdown(measured.app_gzip_cpu)}",
        ),
        Figure(
            SECTION,
            "errors (all rounds)",
            "",
            [float(sum(r.errors for r in [*app, *measured.app_gzip]))],
            baseline,
            [float(sum(r.errors for r in [*static, *measured.static_gzip]))],
            Target("value", "<=", 0),
            higher_is_better=False,
        ),
    ]


def cpu_breakdown(rounds: list[dict[str, float]]) -> str:
    """Median CPU ms per request of each service that spent any, biggest first."""
    medians = {name: statistics.median(r[name] for r in rounds) for name in rounds[0]}
    spent = sorted(((ms, name) for name, ms in medians.items() if ms >= 0.05), reverse=True)
    return ", ".join(f"{name} {ms:.1f}" for ms, name in spent)

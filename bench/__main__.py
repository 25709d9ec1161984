"""`make bench`: every figure against its baseline on one stack, then the report.

Order matters on two shared cores: the HTTP figures run before any model load,
memory is sampled while the page and the concurrent chats load the stack, and
start-up runs last, after the benchmark stack has stopped.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import pstats
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import (
    changed_page,
    concurrency,
    db_api,
    fairness,
    long_chat,
    memory,
    page,
    startup,
    stream,
)
from bench.report import REPORT_DIR, write_report
from bench.results import Figure
from bench.seed import seed_chat
from bench.stack import LOG_DIR, Stack, running_stack
from harness.processes import ServiceProcess, free_port, service_env
from lm_api.config import ServerSettings
from native.stack import db_api_workers, uvicorn_arguments

FIGURES = ("page", "db", "stream", "concurrency", "long", "fairness", "memory", "startup")


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def bare_app_mb(rounds: int) -> list[float]:
    """PSS of an empty FastAPI app under uvicorn after one request (the Python floor)."""
    port = free_port()
    arguments = uvicorn_arguments("bench.bare_app:app", str(port))
    process = ServiceProcess(
        "bare-app", [sys.executable, *arguments], env=service_env({}), log_dir=LOG_DIR
    ).start()
    try:
        process.wait_for_http(f"http://127.0.0.1:{port}/health/ready")
        assert process.process is not None
        return [memory.read_service(process.process.pid).pss_mb for _ in range(rounds)]
    finally:
        process.stop()


def hot_spots(profile: Path, lines: int = 40) -> str:
    """The functions with the most time of their own, then by time including callees."""
    text = io.StringIO()
    stats = pstats.Stats(str(profile), stream=text).strip_dirs()
    stats.sort_stats("tottime").print_stats(lines)
    stats.sort_stats("cumulative").print_stats(lines)
    return text.getvalue()


def machine() -> dict[str, Any]:
    cpu = "unknown"
    for line in open("/proc/cpuinfo").read().splitlines():  # noqa: SIM115 - read once
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "machine": f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}",
        "commit": commit or "unknown",
    }


def run_on_stack(stack: Stack, arguments: argparse.Namespace, raw: dict[str, Any]) -> list[Figure]:
    rounds, seconds = arguments.rounds, arguments.seconds
    figures: list[Figure] = []
    log("seeding a chat of 100 messages")
    chat = seed_chat(stack)
    idle = [memory.read_stack(stack)]
    loaded: list[dict[str, memory.Reading]] = []

    only = arguments.only
    if "page" in only:
        log("1. chat page vs static file")
        samples: list[dict[str, memory.Reading]] = []
        with memory.sampling(stack, samples):
            measured_page = page.measure_page(stack, chat, rounds=rounds, seconds=seconds)
        loaded.append(memory.peak(samples))
        figures += page.page_figures(measured_page)
        raw["page"] = asdict(measured_page)
        log("1. chat page after a change")
        measured_changes = changed_page.measure_changed_page(stack, chat, rounds=rounds)
        figures += changed_page.changed_page_figures(measured_changes)
        raw["changed_page"] = asdict(measured_changes)

    if "db" in only:
        log("2. db-api vs psycopg2")
        measured_db = db_api.measure_db_api(stack, chat, rounds=rounds, seconds=seconds)
        figures += db_api.db_api_figures(measured_db)
        raw["db_api"] = asdict(measured_db)

    idle.append(memory.read_stack(stack))
    if "stream" in only:
        log("3. model path: llama.cpp direct vs through the app")
        direct, through_app = stream.measure_stream(
            stack.llama_url, chat.browser, runs=arguments.stream_runs, warmup=2
        )
        figures += stream.stream_figures(direct, through_app)
        raw["stream"] = {
            "direct": [asdict(s) for s in direct],
            "app": [asdict(s) for s in through_app],
        }

    if "concurrency" in only:
        log("4. concurrent chats")
        samples = []
        with memory.sampling(stack, samples):
            levels = concurrency.measure_concurrency(chat.browser, stack.llama_url, rounds=rounds)
        loaded.append(memory.peak(samples))
        slots = int(os.environ.get("LLAMA_ARG_N_PARALLEL", ServerSettings().n_parallel))
        figures += concurrency.concurrency_figures(levels, slots)
        raw["concurrency"] = [asdict(r) for r in levels]

    if "long" in only:
        log("7. long chat at the context limit")
        measured_long = long_chat.measure_long_chat(stack, chat.browser)
        figures += long_chat.long_chat_figures(measured_long)
        raw["long_chat"] = asdict(measured_long)

    if "fairness" in only:
        log("8. fairness: one user's four chats against another's question")
        measured_fairness = fairness.measure_fairness(stack)
        figures += fairness.fairness_figures(measured_fairness)
        raw["fairness"] = [asdict(r) for r in measured_fairness]

    time.sleep(2)  # let finished replies linger out before the last idle reading
    idle.append(memory.read_stack(stack))
    if "memory" not in only or not loaded:
        chat.browser.close()
        return figures
    log("5. memory")
    figures += memory.memory_figures(idle, loaded, bare_app_mb(len(idle)))
    raw["memory"] = {
        "idle": [{k: asdict(v) for k, v in r.items()} for r in idle],
        "loaded": [{k: asdict(v) for k, v in r.items()} for r in loaded],
    }
    chat.browser.close()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3, help="rounds per figure")
    parser.add_argument("--seconds", type=float, default=8, help="seconds per load round")
    parser.add_argument("--stream-runs", type=int, default=8, help="replies per model path")
    parser.add_argument(
        "--only",
        type=lambda text: set(text.split(",")),
        default=set(FIGURES),
        help=f"comma-separated subset of {','.join(FIGURES)}",
    )
    parser.add_argument("--out", default=str(REPORT_DIR), help="report directory")
    parser.add_argument(
        "--uvicorn-env",
        action="append",
        default=[],
        metavar="UVICORN_OPTION=VALUE",
        help="extra uvicorn setting for db-api and chat-ui, e.g. UVICORN_WORKERS=2",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run db-api and chat-ui under cProfile; write the hot spots next to the report",
    )
    arguments = parser.parse_args()
    # SIGTERM (a timeout, a CI cancel) unwinds like Ctrl-C, so every service is stopped.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))

    settings = ServerSettings()
    context: dict[str, Any] = {
        **machine(),
        "rounds": f"{arguments.rounds} per figure, {arguments.seconds:g} s per load round, "
        f"{arguments.stream_runs} replies per model path",
        "db-api": f"{db_api_workers(os.environ)} uvicorn worker processes",
        "lm-api": f"{settings.n_parallel} parallel slots, ctx {settings.ctx_size}, "
        f"{settings.threads} threads, batch {settings.batch_size or 'default'}",
    }
    raw: dict[str, Any] = {}
    started = time.perf_counter()
    log("starting the stack")
    out = Path(arguments.out)
    profile_dir = out / "profiles" if arguments.profile else None
    if profile_dir is not None:
        profile_dir.mkdir(parents=True, exist_ok=True)
    uvicorn_env = dict(setting.split("=", 1) for setting in arguments.uvicorn_env)
    if uvicorn_env:
        context["uvicorn (db-api, chat-ui)"] = " ".join(arguments.uvicorn_env)
    with running_stack(profile_dir=profile_dir, uvicorn_env=uvicorn_env) as stack:
        figures = run_on_stack(stack, arguments, raw)
    if profile_dir is not None:
        for profile in profile_dir.glob("*.prof"):
            profile.with_suffix(".txt").write_text(hot_spots(profile))
    if "startup" in arguments.only:
        log("6. start-up")
        first, warm = startup.measure_startup(stack.model_path, rounds=arguments.rounds)
        figures += startup.startup_figures(first, warm)
        raw["startup"] = {"first": asdict(first), "warm": [asdict(w) for w in warm]}
    context["duration"] = f"{time.perf_counter() - started:.0f} s"
    report = write_report(figures, context=context, raw=raw, directory=out)
    log(f"report: {report}")
    print(report.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())

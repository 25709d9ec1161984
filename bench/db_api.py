"""Figure 2: db-api reading a 100-message chat and appending a message, against raw SQL.

wrk loads db-api's HTTP routes (16 keep-alive connections, service token and
acting user as chat-ui sends them). The baseline runs the same SQL db-api issues
for each request (ownership check, then the messages; or the chat bump and the
insert) through psycopg2 on one connection in a tight loop: the database's own
cost, with no HTTP, no ORM and no JSON.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import psycopg2
from psycopg2 import extensions

from bench.cpu import cpu_per_request_ms
from bench.memory import service_pids
from bench.page import cpu_breakdown
from bench.results import Figure, Target
from bench.seed import SeededChat
from bench.stack import Stack
from bench.stats import percentile
from bench.wrk import LoadResult, run_wrk
from harness.factories import auth_headers

CONNECTIONS = 16
CPU_SERVICES = ("db-api", "postgres")
SECTION = "2. db-api (16 connections)"
APPENDED_TEXT = "A message appended by the benchmark."

READ_SQL = (
    "SELECT id, owner_id, title, created_at, updated_at, request_id FROM chats "
    "WHERE id = %(chat)s AND owner_id = %(owner)s",
    "SELECT id, chat_id, role, content, status, created_at, updated_at, context_start_id, "
    "request_id FROM messages WHERE chat_id = %(chat)s ORDER BY id",
)
APPEND_SQL = (
    "UPDATE chats SET updated_at = now() WHERE id = %(chat)s AND owner_id = %(owner)s "
    "RETURNING id, owner_id, title, created_at, updated_at, request_id",
    "INSERT INTO messages (chat_id, role, content, status) "
    "VALUES (%(chat)s, 'user', %(content)s, 'complete') RETURNING id, chat_id, role, content, "
    "status, created_at, updated_at, context_start_id, request_id",
)


@dataclass(frozen=True)
class SqlLoop:
    """The psycopg2 loop's result, shaped like wrk's."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds


@dataclass(frozen=True)
class DbApiRounds:
    reads: list[LoadResult]
    read_baseline: list[SqlLoop]
    appends: list[LoadResult]
    append_baseline: list[SqlLoop]
    # CPU ms per request by service, per round: where the time goes.
    read_cpu: list[dict[str, float]]
    append_cpu: list[dict[str, float]]


def sql_loop(
    connection: extensions.connection,
    statements: tuple[str, ...],
    params: dict[str, str],
    *,
    seconds: float,
) -> SqlLoop:
    """Run the statements as one transaction, again and again, for `seconds`."""
    latencies: list[float] = []
    started = time.perf_counter()
    deadline = started + seconds
    with connection.cursor() as cursor:
        while (now := time.perf_counter()) < deadline:
            for statement in statements:
                cursor.execute(statement, params)
                cursor.fetchall()
            connection.commit()
            latencies.append(time.perf_counter() - now)
    elapsed = time.perf_counter() - started
    return SqlLoop(
        requests=len(latencies),
        seconds=elapsed,
        p50_ms=percentile(latencies, 0.5) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
    )


def _new_chat(stack: Stack, user_id: str) -> str:
    headers = {**auth_headers(stack.service_token, user_id)}
    response = httpx.post(f"{stack.db_api_url}/chats", json={"title": "Appends"}, headers=headers)
    response.raise_for_status()
    chat_id: str = response.json()["id"]
    return chat_id


def measure_db_api(stack: Stack, chat: SeededChat, *, rounds: int, seconds: float) -> DbApiRounds:
    headers = auth_headers(stack.service_token, chat.user_id)
    read_url = f"{stack.db_api_url}/chats/{chat.chat_id}"
    # Appends go to a chat of their own, so the read figure's chat stays at 100 messages.
    append_chat = _new_chat(stack, chat.user_id)
    append_url = f"{stack.db_api_url}/chats/{append_chat}/messages"
    body = json.dumps({"role": "user", "content": APPENDED_TEXT})
    post_headers = {**headers, "Content-Type": "application/json"}
    read_params = {"chat": chat.chat_id, "owner": chat.user_id}
    append_params = {"chat": append_chat, "owner": chat.user_id, "content": APPENDED_TEXT}

    def load_reads(duration: float) -> LoadResult:
        return run_wrk(read_url, connections=CONNECTIONS, seconds=duration, headers=headers)

    def load_appends(duration: float) -> LoadResult:
        return run_wrk(
            append_url,
            connections=CONNECTIONS,
            seconds=duration,
            method="POST",
            headers=post_headers,
            body=body,
        )

    connection = psycopg2.connect(
        host=stack.postgres.host,
        port=stack.postgres.port,
        user=stack.postgres.user,
        password=stack.postgres.password,
        dbname="bench",
    )
    try:
        loops: list[tuple[Callable[[float], LoadResult], tuple[str, ...], dict[str, str]]] = [
            (load_reads, READ_SQL, read_params),
            (load_appends, APPEND_SQL, append_params),
        ]
        for load, statements, params in loops:  # warm-up
            load(1)
            sql_loop(connection, statements, params, seconds=0.5)
        pids = {name: pid for name, pid in service_pids(stack).items() if name in CPU_SERVICES}
        results: list[list[LoadResult]] = [[], []]
        baselines: list[list[SqlLoop]] = [[], []]
        cpu: list[list[dict[str, float]]] = [[], []]
        for _ in range(rounds):
            for index, (load, statements, params) in enumerate(loops):
                result, spent = cpu_per_request_ms(
                    pids, functools.partial(load, seconds), lambda r: r.requests
                )
                results[index].append(result)
                cpu[index].append(spent)
                baselines[index].append(sql_loop(connection, statements, params, seconds=seconds))
    finally:
        connection.close()
    return DbApiRounds(
        reads=results[0],
        read_baseline=baselines[0],
        appends=results[1],
        append_baseline=baselines[1],
        read_cpu=cpu[0],
        append_cpu=cpu[1],
    )


def db_api_figures(measured: DbApiRounds) -> list[Figure]:
    baseline = "same SQL via psycopg2, one connection, loop"
    figures: list[Figure] = []
    for label, loads, loops, cpu, rate_target, p99_target in (
        (
            "read chat (100 messages)",
            measured.reads,
            measured.read_baseline,
            measured.read_cpu,
            1000.0,
            30.0,
        ),
        (
            "append message",
            measured.appends,
            measured.append_baseline,
            measured.append_cpu,
            None,
            None,
        ),
    ):
        errors = sum(load.errors for load in loads)
        figures += [
            Figure(
                SECTION,
                f"{label}: requests/s",
                "req/s",
                [load.requests_per_s for load in loads],
                baseline,
                [loop.requests_per_s for loop in loops],
                Target("value", ">=", rate_target) if rate_target else None,
                notes=f"{errors} errors; CPU ms per request: {cpu_breakdown(cpu)}",
            ),
            Figure(
                SECTION,
                f"{label}: p50",
                "ms",
                [load.p50_ms for load in loads],
                baseline,
                [loop.p50_ms for loop in loops],
                higher_is_better=False,
            ),
            Figure(
                SECTION,
                f"{label}: p99",
                "ms",
                [load.p99_ms for load in loads],
                baseline,
                [loop.p99_ms for loop in loops],
                Target("value", "<=", p99_target, "ms") if p99_target else None,
                higher_is_better=False,
            ),
        ]
    return figures

"""Per-user rate limits on starting replies and creating chats, kept in PostgreSQL.

A db-api with small buckets (module fixture) and a second replica on the same database;
time passes by moving a bucket's `refilled_at` back in SQL, never by sleeping.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from db_api.config import RateLimit
from db_api.errors import RateLimitedError
from db_api.queries.rate_limits import take_token
from harness.db_api import DbApiServer, running_db_api, start_db_api
from harness.factories import (
    auth_headers,
    create_chat,
    create_turn,
    create_user,
    finish_reply,
    user_headers,
)
from harness.postgres import PostgresCluster
from harness.processes import ServiceProcess, free_port

REPLY_BURST = 3
REPLIES_PER_MINUTE = 6  # a token every 10 s
CHAT_BURST = 5
CHATS_PER_MINUTE = 2  # a token every 30 s
LIMITS = {
    "REPLY_BURST": str(REPLY_BURST),
    "REPLIES_PER_MINUTE": str(REPLIES_PER_MINUTE),
    "CHAT_BURST": str(CHAT_BURST),
    "CHATS_PER_MINUTE": str(CHATS_PER_MINUTE),
}
DATABASE = "db_api_rate_limits"
TOO_MANY_REPLIES = "Too many replies started in a short time"
TOO_MANY_CHATS = "Too many chats created in a short time"


@pytest.fixture(scope="module")
def limited_db_api(postgres: PostgresCluster) -> Iterator[DbApiServer]:
    with running_db_api(postgres, database=DATABASE, extra_env=LIMITS) as server:
        yield server


@pytest.fixture(scope="module")
def second_replica(limited_db_api: DbApiServer, postgres: PostgresCluster) -> Iterator[DbApiServer]:
    """Another db-api process on the same database, as a second replica would be."""
    port = free_port()
    process: ServiceProcess = start_db_api(
        postgres=postgres,
        database=DATABASE,
        port=port,
        service_token=limited_db_api.service_token,
        extra_env=LIMITS,
    )
    try:
        yield DbApiServer(
            url=f"http://127.0.0.1:{port}",
            service_token=limited_db_api.service_token,
            process=process,
            database_url=limited_db_api.database_url,
        )
    finally:
        process.stop()


@pytest.fixture
def client(limited_db_api: DbApiServer) -> Iterator[httpx.Client]:
    headers = auth_headers(limited_db_api.service_token)
    with httpx.Client(base_url=limited_db_api.url, headers=headers) as http:
        yield http


def _turn(
    client: httpx.Client, user: dict[str, Any], chat: dict[str, Any], **body: Any
) -> httpx.Response:
    return client.post(
        f"/chats/{chat['id']}/turns",
        json={"content": "Hello?", **body},
        headers=user_headers(user["id"]),
    )


def _replies_used_up(client: httpx.Client, user: dict[str, Any], chat: dict[str, Any]) -> None:
    """Start (and finish) replies until the user's bucket is empty."""
    for _ in range(REPLY_BURST):
        finish_reply(client, user_id=user["id"], turn=create_turn(client, **_ids(user, chat)))


def _ids(user: dict[str, Any], chat: dict[str, Any]) -> dict[str, Any]:
    return {"user_id": user["id"], "chat_id": chat["id"]}


def _messages(client: httpx.Client, user: dict[str, Any], chat: dict[str, Any]) -> list[Any]:
    detail = client.get(f"/chats/{chat['id']}", headers=user_headers(user["id"])).json()
    messages: list[Any] = detail["messages"]
    return messages


def _run_sql(db_api: DbApiServer, statement: str, **values: Any) -> None:
    engine = create_engine(db_api.database_url)
    try:
        with engine.begin() as connection:
            connection.execute(text(statement), values)
    finally:
        engine.dispose()


def _let_time_pass(db_api: DbApiServer, key: str, seconds: float) -> None:
    """As if the bucket's last take were `seconds` earlier."""
    _run_sql(
        db_api,
        "UPDATE rate_limit_buckets SET refilled_at = refilled_at - make_interval(secs => :s) "
        "WHERE key = :key",
        s=seconds,
        key=key,
    )


def _assert_refused(response: httpx.Response, detail: str, *, longest_wait: int) -> int:
    assert response.status_code == 429, response.text
    body = response.json()
    assert body["detail"] == detail
    wait = int(response.headers["Retry-After"])
    assert body["retry_after_seconds"] == wait
    assert 1 <= wait <= longest_wait
    return wait


def test_a_burst_of_replies_then_429_saying_when(
    client: httpx.Client, limited_db_api: DbApiServer
) -> None:
    user = create_user(client)
    chat = create_chat(client, user_id=user["id"])
    _replies_used_up(client, user, chat)
    before = _messages(client, user, chat)

    refused = _turn(client, user, chat)
    # One token every 10 s, and the last one was taken just now.
    _assert_refused(refused, TOO_MANY_REPLIES, longest_wait=10)
    assert _messages(client, user, chat) == before

    _let_time_pass(limited_db_api, f"reply:{user['id']}", 10)
    assert _turn(client, user, chat).status_code == 201


def test_retry_after_is_when_the_next_token_arrives(
    client: httpx.Client, limited_db_api: DbApiServer
) -> None:
    user = create_user(client)
    chat = create_chat(client, user_id=user["id"])
    _replies_used_up(client, user, chat)
    # Half a token back: the next whole one is 5 s away (4 if this test ran slowly).
    _run_sql(
        limited_db_api,
        "UPDATE rate_limit_buckets SET tokens = 0, refilled_at = clock_timestamp() - "
        "interval '5 seconds' WHERE key = :key",
        key=f"reply:{user['id']}",
    )
    refused = _turn(client, user, chat)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] in ("4", "5")


def test_the_bucket_refills_with_time_up_to_the_burst(
    client: httpx.Client, limited_db_api: DbApiServer
) -> None:
    user = create_user(client)
    chat = create_chat(client, user_id=user["id"])
    _replies_used_up(client, user, chat)
    # An hour is 360 tokens' worth; the bucket holds REPLY_BURST.
    _let_time_pass(limited_db_api, f"reply:{user['id']}", 3600)
    statuses = []
    for _ in range(REPLY_BURST + 1):
        started = _turn(client, user, chat)
        statuses.append(started.status_code)
        if started.status_code == 201:
            finish_reply(client, user_id=user["id"], turn=started.json())
    assert statuses == [201] * REPLY_BURST + [429]


def test_each_user_has_their_own_replies(client: httpx.Client) -> None:
    hasty, calm = create_user(client), create_user(client)
    hasty_chat = create_chat(client, user_id=hasty["id"])
    _replies_used_up(client, hasty, hasty_chat)
    assert _turn(client, hasty, hasty_chat).status_code == 429

    calm_chat = create_chat(client, user_id=calm["id"])
    assert _turn(client, calm, calm_chat).status_code == 201


def test_a_refused_turn_writes_nothing(client: httpx.Client) -> None:
    """Not the title of a new chat, not an edit's deletion, not the message."""
    user = create_user(client)
    chat, untouched = (create_chat(client, user_id=user["id"]) for _ in range(2))
    _replies_used_up(client, user, chat)
    before = _messages(client, user, chat)

    edit = _turn(client, user, chat, content="Edited", replace_after_id=before[0]["id"])
    assert edit.status_code == 429
    assert _messages(client, user, chat) == before

    first = _turn(client, user, untouched, title="A new name")
    assert first.status_code == 429
    detail = client.get(f"/chats/{untouched['id']}", headers=user_headers(user["id"])).json()
    assert (detail["title"], detail["messages"]) == (untouched["title"], [])


def test_retry_and_regenerate_take_replies_and_saves_never_do(client: httpx.Client) -> None:
    user = create_user(client)
    chat = create_chat(client, user_id=user["id"])
    headers = user_headers(user["id"])
    turn = create_turn(client, **_ids(user, chat))  # 1
    reply_url = f"/chats/{chat['id']}/messages/{turn['reply']['id']}"
    # A reply's saves while it is written, and its end, take nothing.
    for content in ("Par", "Partial", "Partial text"):
        assert (
            client.patch(reply_url, json={"content": content}, headers=headers).status_code == 200
        )
    failed = {"content": "Partial text", "status": "error"}
    assert client.patch(reply_url, json=failed, headers=headers).status_code == 200
    # A retry that reuses the failed row (2), then one that adds a row (3).
    again = {"content": "", "status": "generating", "if_status": "error"}
    assert client.patch(reply_url, json=again, headers=headers).status_code == 200
    assert client.patch(reply_url, json=failed, headers=headers).status_code == 200
    added = client.post(
        f"/chats/{chat['id']}/messages",
        json={"role": "assistant", "content": "", "status": "generating"},
        headers=headers,
    )
    assert added.status_code == 201
    added_url = f"/chats/{chat['id']}/messages/{added.json()['id']}"
    assert client.patch(added_url, json=failed, headers=headers).status_code == 200

    refused_patch = client.patch(reply_url, json=again, headers=headers)
    refused_post = client.post(
        f"/chats/{chat['id']}/messages",
        json={"role": "assistant", "content": "", "status": "generating"},
        headers=headers,
    )
    _assert_refused(refused_patch, TOO_MANY_REPLIES, longest_wait=10)
    _assert_refused(refused_post, TOO_MANY_REPLIES, longest_wait=10)
    assert [m["status"] for m in _messages(client, user, chat)] == ["complete", "error", "error"]
    # Finished messages are not replies being started.
    done = client.post(
        f"/chats/{chat['id']}/messages", json={"role": "user", "content": "Hi"}, headers=headers
    )
    assert done.status_code == 201


def test_a_resent_turn_takes_no_reply(client: httpx.Client) -> None:
    user = create_user(client)
    chat = create_chat(client, user_id=user["id"])
    request_id = str(uuid.uuid4())
    sent = _turn(client, user, chat, request_id=request_id)
    assert sent.status_code == 201
    finish_reply(client, user_id=user["id"], turn=sent.json())
    for _ in range(REPLY_BURST + 2):
        assert _turn(client, user, chat, request_id=request_id).status_code == 200
    # The rest of the burst is still there.
    for _ in range(REPLY_BURST - 1):
        finish_reply(client, user_id=user["id"], turn=create_turn(client, **_ids(user, chat)))
    assert _turn(client, user, chat).status_code == 429
    # Used up, a resend still finds what it stored.
    assert _turn(client, user, chat, request_id=request_id).status_code == 200


def test_a_turn_refused_for_a_busy_chat_takes_no_reply(client: httpx.Client) -> None:
    user = create_user(client)
    chat, other = (create_chat(client, user_id=user["id"]) for _ in range(2))
    busy = create_turn(client, **_ids(user, chat))  # 1
    # The chat's own reply (the unique index, after the take: rolled back), another chat's.
    for _ in range(REPLY_BURST + 2):
        assert _turn(client, user, chat).status_code == 409
        assert _turn(client, user, other).status_code == 409
    finish_reply(client, user_id=user["id"], turn=busy)
    for _ in range(REPLY_BURST - 1):
        finish_reply(client, user_id=user["id"], turn=create_turn(client, **_ids(user, chat)))
    assert _turn(client, user, chat).status_code == 429


def test_a_burst_of_chats_then_429(client: httpx.Client, limited_db_api: DbApiServer) -> None:
    user = create_user(client)
    headers = user_headers(user["id"])
    request_id = str(uuid.uuid4())
    first = client.post("/chats", json={"request_id": request_id}, headers=headers)
    assert first.status_code == 201
    for _ in range(CHAT_BURST - 1):
        create_chat(client, user_id=user["id"])

    refused = client.post("/chats", json={"title": "One more"}, headers=headers)
    _assert_refused(refused, TOO_MANY_CHATS, longest_wait=30)
    listed = client.get("/chats", headers=headers).json()
    assert listed["total"] == CHAT_BURST
    # The same form sent again finds its chat, used up or not; replies are apart.
    again = client.post("/chats", json={"request_id": request_id}, headers=headers)
    assert (again.status_code, again.json()["id"]) == (200, first.json()["id"])
    assert _turn(client, user, first.json()).status_code == 201

    _let_time_pass(limited_db_api, f"chat:{user['id']}", 30)
    assert client.post("/chats", json={}, headers=headers).status_code == 201


def test_chats_created_at_once_on_two_replicas_stay_within_the_burst(
    limited_db_api: DbApiServer, second_replica: DbApiServer
) -> None:
    """Both replicas take from one bucket: the burst, and not one chat more, is created."""
    with httpx.Client(
        base_url=limited_db_api.url, headers=auth_headers(limited_db_api.service_token)
    ) as http:
        user = create_user(http)
        # A user who has been here before: the bucket exists, with one token taken.
        create_chat(http, user_id=user["id"])
    attempts = 4 * CHAT_BURST
    barrier = threading.Barrier(attempts)

    def create(index: int) -> int:
        replica = (limited_db_api, second_replica)[index % 2]
        headers = auth_headers(replica.service_token, user["id"])
        with httpx.Client(base_url=replica.url, headers=headers) as http:
            http.get("/health/live")  # connected first, so the posts really start together
            barrier.wait(timeout=30)
            return http.post("/chats", json={"title": f"Chat {index}"}).status_code

    with ThreadPoolExecutor(max_workers=attempts) as pool:
        statuses = Counter(pool.map(create, range(attempts)))
    assert statuses == {201: CHAT_BURST - 1, 429: attempts - CHAT_BURST + 1}
    with httpx.Client(
        base_url=second_replica.url,
        headers=auth_headers(second_replica.service_token, user["id"]),
    ) as http:
        assert http.get("/chats").json()["total"] == CHAT_BURST


def test_the_defaults_let_twenty_replies_start_at_once(db_api_client: httpx.Client) -> None:
    """The session's db-api runs the defaults: REPLY_BURST=20, REPLIES_PER_MINUTE=6."""
    user = create_user(db_api_client)
    chat = create_chat(db_api_client, user_id=user["id"])
    for _ in range(20):
        turn = create_turn(db_api_client, **_ids(user, chat))
        finish_reply(db_api_client, user_id=user["id"], turn=turn)
    refused = _turn(db_api_client, user, chat)
    _assert_refused(refused, TOO_MANY_REPLIES, longest_wait=10)


async def test_takes_at_once_on_separate_connections_never_exceed_the_bucket(
    limited_db_api: DbApiServer,
) -> None:
    """The take alone, without the writers' other locks: one statement, one row lock."""
    url = make_url(limited_db_api.database_url).set(drivername="postgresql+asyncpg")
    engine = create_async_engine(url, pool_size=12, max_overflow=0)
    user_id, burst, attempts = uuid.uuid4(), 4, 12
    # Nearly no refill while the test runs: what the bucket holds is the burst.
    limit = RateLimit(per_minute=0.001, burst=burst)
    started = asyncio.Barrier(attempts)

    async def take() -> bool:
        async with AsyncSession(engine) as db:
            await db.execute(text("SELECT 1"))  # connected and in a transaction first
            await started.wait()
            try:
                await take_token(db, action="chat", subject=user_id, limit=limit)
            except RateLimitedError:
                return False
            # Held a moment, as a writer holds it until its commit.
            await asyncio.sleep(0.05)
            await db.commit()
            return True

    try:
        async with AsyncSession(engine) as db:  # the bucket exists, one token taken
            await take_token(db, action="chat", subject=user_id, limit=limit)
            await db.commit()
        taken = await asyncio.gather(*(take() for _ in range(attempts)))
    finally:
        await engine.dispose()
    assert taken.count(True) == burst - 1

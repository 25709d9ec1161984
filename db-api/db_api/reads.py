"""The reads every page makes, on asyncpg in the event loop, rows straight to JSON.

Each page view checks its session (and on a change reads the chat list and one
chat), so these reads are db-api's hottest path. Everything else goes through
SQLAlchemy and psycopg2 in the thread pool, where writes get their transactions
and locks. For these reads that route cost twice the CPU: measured with 16
requests in flight, a worker thread waiting on PostgreSQL has to win the GIL back
from the event loop after every round trip, about 0.5 ms per request. asyncpg
waits inside the event loop instead. The answers keep the shapes of `schemas`:
the columns are the response models' fields, and the contract tests check them.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import asyncpg
import orjson
from fastapi import Response

from db_api.config import Settings
from db_api.db import CONNECT_TIMEOUT_SECONDS
from db_api.errors import DatabaseUnavailableError, SessionNotFoundError
from db_api.schemas import ChatPublic, MessagePublic, UserPublic

T = TypeVar("T")

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection = PoolConnectionProxy[asyncpg.Record]

# last_seen_at is for people reviewing their sign-ins; minute precision spares a write
# on almost every request.
LAST_SEEN_PRECISION = timedelta(minutes=1)
# A small pool per worker process: each read holds a connection for well under a
# millisecond, and PostgreSQL's connections are shared with the SQLAlchemy pools.
POOL_SIZE = 4
QUERY_TIMEOUT_SECONDS = 10

# Failures that mean "PostgreSQL is not there for us right now" (refused, reset, shut
# down, restarting, full, too slow), as opposed to a bug in a query.
CONNECTION_LOST = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.InterfaceError,
    # A connection cut off mid-query is left mid-protocol; this is what using it says.
    asyncpg.exceptions.InternalClientError,
)

# The response models' field names, never input: the f-strings below are safe.
_CHAT_COLUMNS = ", ".join(ChatPublic.model_fields)
_MESSAGE_COLUMNS = ", ".join(MessagePublic.model_fields)

_LIVE_SESSION = """
    SELECT s.id, s.created_at, s.expires_at, s.last_seen_at,
           u.id AS user_id, u.username, u.created_at AS user_created_at, u.revision
      FROM sessions s JOIN users u ON u.id = s.user_id
     WHERE s.token_hash = $1 AND s.expires_at > $2
"""
_TOUCH_SESSION = "UPDATE sessions SET last_seen_at = $2 WHERE id = $1"
_CHAT = f"SELECT {_CHAT_COLUMNS} FROM chats WHERE id = $1 AND owner_id = $2"  # noqa: S608
_MESSAGES = f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE chat_id = $1 ORDER BY id"  # noqa: S608
_CHAT_LIST = (
    f"SELECT {_CHAT_COLUMNS} FROM chats WHERE owner_id = $1 "  # noqa: S608
    "ORDER BY updated_at DESC, created_at DESC, id LIMIT $2 OFFSET $3"
)
_CHAT_COUNT = "SELECT count(*) FROM chats WHERE owner_id = $1"

_pool: asyncpg.Pool | None = None


async def open_pool(settings: Settings) -> None:
    """Create the pool; it connects on first use, so db-api starts while PostgreSQL is down."""
    global _pool
    _pool = await asyncpg.create_pool(
        host=settings.postgres_host,
        port=settings.postgres_port,
        user=settings.postgres_user,
        password=settings.postgres_password.get_secret_value(),
        database=settings.postgres_db,
        min_size=0,
        max_size=POOL_SIZE,
        timeout=CONNECT_TIMEOUT_SECONDS,
        command_timeout=QUERY_TIMEOUT_SECONDS,
    )


async def close_pool() -> None:
    global _pool
    if _pool is not None:
        await _pool.close()
        _pool = None


async def with_connection(work: Callable[[Connection], Awaitable[T]]) -> T:
    """Run `work` on a pooled connection; a lost connection is retried once, then 503.

    After PostgreSQL restarts, every pooled connection is dead: the first failure
    retires them all, and the retry connects afresh (the reads are idempotent).
    """
    if _pool is None:
        raise RuntimeError("the read pool is not open (see main.lifespan)")
    for attempt in (1, 2):
        try:
            async with _pool.acquire(timeout=CONNECT_TIMEOUT_SECONDS) as connection:
                try:
                    return await work(connection)
                except CONNECTION_LOST:
                    # Never hand a connection that failed mid-query back to the pool.
                    connection.terminate()
                    raise
        except CONNECTION_LOST as error:
            if attempt == 2:
                raise DatabaseUnavailableError() from error
            await _pool.expire_connections()
    raise AssertionError("unreachable")


def json_response(
    body: Any, *, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """`body` as JSON, UTC times ending in "Z" like pydantic writes them."""
    return Response(
        # asyncpg's UUIDs are a subclass orjson leaves to `default`.
        orjson.dumps(body, option=orjson.OPT_UTC_Z, default=str),
        status_code=status_code,
        headers=headers,
        media_type="application/json",
    )


class LiveSession(NamedTuple):
    """A sign-in that is neither expired nor revoked, with its account's public fields."""

    id: uuid.UUID
    created_at: datetime
    expires_at: datetime
    last_seen_at: datetime
    user_id: uuid.UUID
    username: str
    user_created_at: datetime
    # The account's data revision (see migration 0005): the pages' ETag.
    revision: int

    def user(self) -> UserPublic:
        return UserPublic(id=self.user_id, username=self.username, created_at=self.user_created_at)

    def etag(self) -> str:
        """Names one state of everything the user's pages show."""
        return f'"{self.user_id}.{self.revision}"'


async def live_session(connection: Connection, token_hash: str) -> LiveSession:
    """The live sign-in with this token hash; expired or revoked is not found."""
    now = datetime.now(UTC)
    found = await connection.fetchrow(_LIVE_SESSION, token_hash, now)
    if found is None:
        raise SessionNotFoundError()
    live = LiveSession(*found.values())
    if now - live.last_seen_at >= LAST_SEEN_PRECISION:
        await connection.execute(_TOUCH_SESSION, live.id, now)
    return live


async def chat_detail(
    connection: Connection, *, owner_id: uuid.UUID, chat_id: uuid.UUID
) -> dict[str, Any] | None:
    """The owner's chat with its messages (schemas.ChatDetail), or None if it is not theirs."""
    chat = await connection.fetchrow(_CHAT, chat_id, owner_id)
    if chat is None:
        return None
    messages = await connection.fetch(_MESSAGES, chat_id)
    return {**chat, "messages": [dict(message) for message in messages]}


async def chat_list(
    connection: Connection, *, owner_id: uuid.UUID, limit: int, offset: int = 0
) -> list[dict[str, Any]]:
    """One page of the owner's chats (schemas.ChatPublic), most recently active first."""
    return [dict(chat) for chat in await connection.fetch(_CHAT_LIST, owner_id, limit, offset)]


async def chat_count(connection: Connection, *, owner_id: uuid.UUID) -> int:
    count: int = await connection.fetchval(_CHAT_COUNT, owner_id)
    return count


async def page_view(
    connection: Connection, *, live: LiveSession, chat_id: uuid.UUID | None, limit: int
) -> dict[str, Any]:
    """What a chat page shows (schemas.PageView): the user, their chats and one chat."""
    owner = live.user_id
    chat = (
        None if chat_id is None else await chat_detail(connection, owner_id=owner, chat_id=chat_id)
    )
    return {
        "user": live.user().model_dump(),
        "revision": live.revision,
        "chats": await chat_list(connection, owner_id=owner, limit=limit),
        "chat": chat,
    }


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an If-None-Match header names `etag` (weak or strong, or `*`)."""
    if not if_none_match:
        return False
    candidates = (tag.strip().removeprefix("W/") for tag in if_none_match.split(","))
    return any(tag in ("*", etag) for tag in candidates)

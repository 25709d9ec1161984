"""How db-api talks to PostgreSQL: the one rule, the one pool, three ways to borrow from it.

The rule:

- Every query runs on SQLAlchemy's async engine over asyncpg, awaited in an
  `async def` route. Nothing blocks the event loop; only argon2 (CPU work) goes to
  the thread pool.
- Queries live in `db_api.queries`, one module per table they are about. Every query on
  a user's data filters by its owner through `queries.chats.owned_by`.
- A route that changes data declares `WriteSession`: an `AsyncSession` (always named
  `db`, never "session": in this service a session is a user's sign-in) with one
  transaction, committed by the query once everything it wrote is consistent.
- A route that only reads declares `ReadSession`: the same, in autocommit, so a read
  costs no BEGIN/ROLLBACK round trips.
- The reads every page view makes (the sign-in check, the chat list, one chat) declare
  `PageConnection`: the pooled connection's asyncpg driver itself, running `HotRead`s,
  Core statements compiled once, whose rows are answered straight as JSON. Measured
  per read of a 100-message chat with 16 in flight, db-api's CPU was 0.9 ms this way
  (as on a plain asyncpg pool), 1.3 ms through an `AsyncSession`, and 1.7 ms with
  SQLAlchemy's result rows; validating the answer through pydantic adds 0.24 ms.
- A lost or refused connection is one failure everywhere: `errors` answers it 503.
  A pooled connection that PostgreSQL closed (a restart) is discarded when it is taken
  from the pool, before any statement, so the first request after a restart succeeds.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any

import asyncpg
from fastapi import Depends, Request
from sqlalchemy import ClauseElement, event
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.sql.compiler import SQLCompiler

from db_api.config import Settings

if TYPE_CHECKING:
    DriverConnection = asyncpg.Connection[Any]
else:  # asyncpg's connection is generic only in its type stubs
    DriverConnection = asyncpg.Connection

# Fail fast when PostgreSQL is unreachable so callers get a 503 instead of a hang.
CONNECT_TIMEOUT_SECONDS = 5
QUERY_TIMEOUT_SECONDS = 10
# Connections per worker process, all kept open: a request holds one for a few
# milliseconds, and PostgreSQL's connections are shared by every worker and replica.
# No overflow: a connection opened for a burst and closed after it costs more CPU (TCP,
# SCRAM, asyncpg's set-up) than the burst's queries; in the benchmark it doubled db-api's
# CPU per read.
POOL_SIZE = 10


def _discard_closed_connection(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Checkout hook: a connection the server has closed is replaced, without a round trip.

    asyncpg notices the server's goodbye (shutdown, restart, terminated backend) as soon
    as the event loop reads the socket, so asking costs nothing; a ping would cost three
    round trips (BEGIN, the ping, ROLLBACK) on every request.
    """
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("connection closed by the server")


class Database:
    """The process's connection pool and the sessions made on it (opened in main.lifespan)."""

    def __init__(self, settings: Settings) -> None:
        self.engine: AsyncEngine = create_async_engine(
            settings.database_url,
            pool_size=POOL_SIZE,
            max_overflow=0,
            connect_args={
                "timeout": CONNECT_TIMEOUT_SECONDS,
                "command_timeout": QUERY_TIMEOUT_SECONDS,
            },
        )
        event.listen(self.engine.sync_engine, "checkout", _discard_closed_connection)
        # Objects stay readable after commit, so routes can serialise what they just wrote.
        self.write_sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # The same pool; each connection is switched to autocommit while it is lent out.
        self._autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self.read_sessions = async_sessionmaker(self._autocommit, expire_on_commit=False)
        # Requests wait for a connection here, in arrival order. SQLAlchemy's own pool
        # queue lets a newcomer take a returned connection ahead of those waiting: under
        # load some requests starved past any timeout.
        self._connections = asyncio.Semaphore(POOL_SIZE)

    @asynccontextmanager
    async def session(
        self, sessions: async_sessionmaker[AsyncSession]
    ) -> AsyncIterator[AsyncSession]:
        async with self._connections, sessions() as db:
            yield db

    @asynccontextmanager
    async def page_connection(self) -> AsyncIterator[DriverConnection]:
        """A pooled connection's asyncpg driver for `HotRead`s.

        Taken from the pool itself, not through an `AsyncConnection`: that wrapper costs
        three greenlet hops a request, about 0.2 ms of db-api's CPU per page read (measured).
        asyncpg runs each statement in its own implicit transaction (autocommit), and
        giving the connection back runs no statement, since none was started through
        SQLAlchemy.
        """
        async with self._connections:
            pooled = await self.engine.raw_connection()
            try:
                driver: DriverConnection | None = pooled.driver_connection
                if driver is None:
                    raise RuntimeError("a pooled connection without its asyncpg connection")
                yield driver
            finally:
                pooled.close()

    async def close(self) -> None:
        await self.engine.dispose()


def database_of(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


async def write_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request; closing rolls back whatever was not committed."""
    database = database_of(request)
    async with database.session(database.write_sessions) as db:
        yield db


async def read_session(request: Request) -> AsyncIterator[AsyncSession]:
    database = database_of(request)
    async with database.session(database.read_sessions) as db:
        yield db


async def page_connection(request: Request) -> AsyncIterator[DriverConnection]:
    async with database_of(request).page_connection() as connection:
        yield connection


WriteSession = Annotated[AsyncSession, Depends(write_session)]
ReadSession = Annotated[AsyncSession, Depends(read_session)]
PageConnection = Annotated[DriverConnection, Depends(page_connection)]

# SQLAlchemy leaves its dialect constructors untyped.
_ASYNCPG = asyncpg_dialect()  # type: ignore[no-untyped-call]


class HotRead:
    """A Core statement compiled once for asyncpg, run on a `PageConnection`.

    The rows come back as asyncpg records, which `dict()` and orjson take directly.
    Parameters are `bindparam`s, passed by name.
    """

    def __init__(self, statement: ClauseElement) -> None:
        compiled = statement.compile(dialect=_ASYNCPG)
        self.sql = str(compiled)
        # asyncpg's placeholders are positional ($1, $2, ...): the bind names in that order.
        assert isinstance(compiled, SQLCompiler)
        self.parameter_names: Sequence[str] = tuple(compiled.positiontup or ())

    def _arguments(self, values: dict[str, Any]) -> list[Any]:
        return [values[name] for name in self.parameter_names]

    async def fetch(self, connection: DriverConnection, **values: Any) -> list[asyncpg.Record]:
        return await connection.fetch(self.sql, *self._arguments(values))

    async def fetchrow(self, connection: DriverConnection, **values: Any) -> asyncpg.Record | None:
        return await connection.fetchrow(self.sql, *self._arguments(values))

    async def execute(self, connection: DriverConnection, **values: Any) -> None:
        await connection.execute(self.sql, *self._arguments(values))

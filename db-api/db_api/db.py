"""Database plumbing: the engine, the session factory and the per-request session dependency."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import TypeVar

from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from db_api.config import get_settings

T = TypeVar("T")

# Fail fast when PostgreSQL is unreachable so callers get a 503 instead of a hang.
CONNECT_TIMEOUT_SECONDS = 5


@lru_cache
def get_engine() -> Engine:
    settings = get_settings()
    return create_engine(
        settings.database_url,
        # A restarted PostgreSQL leaves dead connections in the pool; ping before reuse.
        pool_pre_ping=True,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS},
    )


@lru_cache
def get_session_factory() -> sessionmaker[Session]:
    # Objects stay readable after commit, so routes can serialise what they just wrote.
    return sessionmaker(bind=get_engine(), expire_on_commit=False)


def get_session() -> Iterator[Session]:
    """One session per request, closed (and rolled back if unfinished) afterwards."""
    with get_session_factory()() as session:
        yield session


@lru_cache
def get_read_session_factory() -> sessionmaker[Session]:
    """Sessions whose every statement commits on its own (PostgreSQL autocommit).

    A read then costs its queries alone: no BEGIN before them and no ROLLBACK after,
    two of the four round trips a one-query read otherwise makes (the fourth is the
    pre-ping). Each statement sees the data as of its own start.
    """
    return sessionmaker(
        bind=get_engine().execution_options(isolation_level="AUTOCOMMIT"),
        expire_on_commit=False,
    )


async def in_read_session(work: Callable[[Session], T]) -> T:
    """Run `work`, which reads (and at most writes single rows), in one worker thread.

    A plain `def` route with `SessionDep` crosses into the thread pool three times (to
    open the session, for the route, to close it); the hot read routes use this instead.
    While the worker waits on PostgreSQL it hands the GIL to the event loop and must
    win it back, so every round trip saved is CPU saved under load.
    """

    def run() -> T:
        with get_read_session_factory()() as session:
            return work(session)

    return await run_in_threadpool(run)

"""Database plumbing: the engine, the session factory and the per-request session dependency."""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from db_api.config import get_settings

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

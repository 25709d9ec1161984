"""Which database failures db-api answers 503 ("try again soon") rather than 500 (a bug)."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi
from sqlalchemy.exc import OperationalError

from db_api.errors import connection_lost

SHUTTING_DOWN = asyncpg.exceptions.CannotConnectNowError("the database system is shutting down")


def adapter_error(cause: BaseException) -> Exception:
    """The error SQLAlchemy's asyncpg adapter raises, with asyncpg's as its cause."""
    error = AsyncAdapt_asyncpg_dbapi.Error(str(cause))  # type: ignore[no-untyped-call]
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(
    "error",
    [
        SHUTTING_DOWN,
        ConnectionRefusedError(111, "Connection refused"),
        # A page read's connection that the pool could not open (no Connection wraps it).
        adapter_error(SHUTTING_DOWN),
        # The same through a Connection: SQLAlchemy's DBAPIError around the adapter's.
        OperationalError("SELECT 1", {}, adapter_error(SHUTTING_DOWN)),
    ],
    ids=["driver", "refused", "adapter", "wrapped"],
)
def test_a_database_away_is_a_lost_connection(error: Exception) -> None:
    assert connection_lost(error)


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.UndefinedColumnError("column x does not exist"),
        adapter_error(asyncpg.exceptions.UndefinedColumnError("column x does not exist")),
        ValueError("not a database error"),
    ],
    ids=["driver", "adapter", "other"],
)
def test_a_broken_query_is_not(error: Exception) -> None:
    assert not connection_lost(error)

"""Every failure a caller can act on, with its HTTP status and human message, in one place."""

from __future__ import annotations

import json
import logging
import math
import uuid
from typing import Any, ClassVar

import asyncpg
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError, EmulatedDBAPIException
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)

DATABASE_UNAVAILABLE = "Database unavailable"


class AppError(Exception):
    """Base of the expected failures; subclasses set the status and the message."""

    status_code: ClassVar[int] = 400
    detail: ClassVar[str] = "Bad request"

    def headers(self) -> dict[str, str] | None:
        return None

    def body(self) -> dict[str, Any]:
        return {"detail": self.detail}


class InvalidServiceTokenError(AppError):
    status_code = 401
    detail = "Missing or invalid service token"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class InvalidCredentialsError(AppError):
    status_code = 401
    detail = "Wrong username or password"


class WrongPasswordError(AppError):
    """The acting user's password, asked again before changing or deleting the account."""

    status_code = 403
    detail = "Wrong password"


class UsernameTakenError(AppError):
    status_code = 409
    detail = "Username is already taken"


class UserNotFoundError(AppError):
    status_code = 404
    detail = "User not found"


class SessionNotFoundError(AppError):
    """Unknown, expired or signed-out session token: all look the same to the caller."""

    status_code = 404
    detail = "Session expired or signed out"


class ChatNotFoundError(AppError):
    status_code = 404
    detail = "Chat not found"


class MessageNotFoundError(AppError):
    status_code = 404
    detail = "Message not found"


class EmptyMessageContentError(AppError):
    """Raised when an update would leave a finished message without text."""

    status_code = 422
    detail = "content must not be empty (only an unfinished assistant reply may be empty)"

    def body(self) -> dict[str, Any]:
        # Same list shape as FastAPI's own validation errors, so callers parse one format.
        return {"detail": [{"type": "value_error", "loc": ["body", "content"], "msg": self.detail}]}


class MessageStatusConflictError(AppError):
    """Raised when a conditional update finds the message in another status than expected."""

    status_code = 409

    def __init__(self, *, expected: str, current: str) -> None:
        self.message = f"The message is no longer {expected}"
        super().__init__(self.message)
        self.current = current

    def body(self) -> dict[str, Any]:
        # The current status lets the caller act (e.g. a generator stops on "stopped").
        return {"detail": self.message, "status": self.current}


class ReplyInProgressError(AppError):
    """Raised when a chat would get a second reply being written (one at a time per chat)."""

    status_code = 409
    detail = "A reply is already being written in this chat"

    def __init__(self, *, current: str | None = None) -> None:
        super().__init__(self.detail)
        self.current = current

    def body(self) -> dict[str, Any]:
        # A refused message update also says the message's (unchanged) status, as 409s
        # of that route always do.
        if self.current is None:
            return {"detail": self.detail}
        return {"detail": self.detail, "status": self.current}


class ReplyInOtherChatError(AppError):
    """Raised when a user would have a second reply being written (one at a time per user).

    The model's slots are shared by everyone on the install; one user's replies run one
    after the other, so nobody can take every slot. `busy_chat_id` says where the reply
    being written is.
    """

    status_code = 409
    detail = "A reply is already being written in another of your chats"

    def __init__(self, *, busy_chat_id: uuid.UUID, current: str | None = None) -> None:
        super().__init__(self.detail)
        self.busy_chat_id = busy_chat_id
        self.current = current

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"detail": self.detail, "busy_chat_id": str(self.busy_chat_id)}
        if self.current is not None:
            body["status"] = self.current
        return body


class RequestAlreadyHandledError(AppError):
    """Raised when a request id was used before but what it stored can no longer be answered."""

    status_code = 409
    detail = "This request was already handled"


class TooManyLoginFailuresError(AppError):
    status_code = 429
    detail = "Too many failed logins; try again later"

    def __init__(self, retry_after_seconds: float) -> None:
        super().__init__(self.detail)
        # Round up so a client that waits exactly this long is never early.
        self.retry_after_seconds = max(1, math.ceil(retry_after_seconds))

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_seconds)}


class RateLimitedError(AppError):
    """Raised when one user does something faster than the install allows (a token bucket).

    `retry_after_seconds` is when the next token arrives, so a caller can say when to try again.
    """

    status_code = 429

    def __init__(self, detail: str, *, retry_after_seconds: float) -> None:
        super().__init__(detail)
        self.message = detail
        # Round up so a client that waits exactly this long is never early.
        self.retry_after_seconds = max(1, math.ceil(retry_after_seconds))

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_seconds)}

    def body(self) -> dict[str, Any]:
        return {"detail": self.message, "retry_after_seconds": self.retry_after_seconds}


class AccountPendingError(AppError):
    """Signed up under the approval policy: may sign in, may not chat until approved."""

    status_code = 403
    detail = "Account waiting for approval"


class AccountDisabledError(AppError):
    """The password was right, but an admin disabled the account."""

    status_code = 403
    detail = "Account disabled"


class SignUpClosedError(AppError):
    status_code = 403
    detail = "Sign-up is closed; an invite link is needed"


class LinkNotFoundError(AppError):
    """An invite or password-reset link that is unknown, used or expired: all alike."""

    status_code = 404
    detail = "Link unknown, used or expired"


class NotAdminError(AppError):
    """The acting user is not an active admin (chat-ui answers its normal 404)."""

    status_code = 403
    detail = "Admins only"


class AdminSelfChangeError(AppError):
    """An admin's own account is changed on the account page, not through the admin's list:
    disabling, deleting or demoting oneself could leave the install with no admin."""

    status_code = 409
    detail = "Use the account page to change your own account"


class AccountNotActiveError(AppError):
    status_code = 409
    detail = "Approve or enable the account first"


class LastAdminError(AppError):
    status_code = 409
    detail = "The install needs at least one active admin"


class DatabaseUnavailableError(AppError):
    status_code = 503
    detail = DATABASE_UNAVAILABLE


def _app_error_response(error: AppError) -> JSONResponse:
    return JSONResponse(
        status_code=error.status_code, content=error.body(), headers=error.headers()
    )


async def handle_app_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, AppError)
    return _app_error_response(error)


# What asyncpg raises when PostgreSQL is not there for us right now: refused, reset,
# shut down, restarting ("the database system is shutting down"), full, or a connection
# cut off mid-query (left mid-protocol), as opposed to a bug in a query.
_DRIVER_CONNECTION_LOST = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
)


def connection_lost(error: Exception) -> bool:
    """Whether `error` means "PostgreSQL is not there for us right now".

    db-api talks to nothing but PostgreSQL, so a raw OSError is the database too (asyncpg
    raises it unwrapped when it cannot connect at all); a full pool is a timeout.
    """
    if isinstance(error, (PoolTimeoutError, *_DRIVER_CONNECTION_LOST)):
        # Raw driver errors come from the hot reads (database.HotRead).
        return True
    if isinstance(error, EmulatedDBAPIException):
        # A connection the pool failed to open for a page read (database.page_connection),
        # unwrapped by any Connection: SQLAlchemy's adapter error, asyncpg's as its cause.
        return isinstance(error.__cause__, _DRIVER_CONNECTION_LOST)
    if not isinstance(error, DBAPIError):
        return False
    # SQLAlchemy wraps asyncpg's exception; the original is the adapter's cause.
    driver_error = getattr(error.orig, "__cause__", None)
    return error.connection_invalidated or isinstance(driver_error, _DRIVER_CONNECTION_LOST)


async def handle_database_error(_request: Request, error: Exception) -> JSONResponse:
    """Lost or refused connections become 503; anything else is a bug, logged, and a plain 500."""
    if connection_lost(error):
        logger.warning("Database unavailable: %s", getattr(error, "orig", None) or error)
        return _app_error_response(DatabaseUnavailableError())
    logger.error("Unexpected database error", exc_info=error)
    return JSONResponse(status_code=500, content={"detail": "Unexpected database error"})


class AsciiJSONResponse(JSONResponse):
    """JSON with non-ASCII escaped, so echoing invalid text (lone surrogates) cannot fail."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False).encode("ascii")


async def handle_http_error(request: Request, error: Exception) -> Response:
    """A body that is not even text (bad UTF-8) is a 422 like any other malformed JSON."""
    assert isinstance(error, StarletteHTTPException)
    if error.status_code == 400 and isinstance(error.__cause__, ValueError):
        problem = {"type": "json_invalid", "loc": ["body"], "msg": "Body is not UTF-8 JSON"}
        return JSONResponse(status_code=422, content={"detail": [problem]})
    return await http_exception_handler(request, error)


async def handle_validation_error(_request: Request, error: Exception) -> JSONResponse:
    """FastAPI's own 422 body, but safe to encode whatever input the caller sent."""
    assert isinstance(error, RequestValidationError)
    return AsciiJSONResponse(status_code=422, content={"detail": jsonable_encoder(error.errors())})


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, handle_http_error)
    app.add_exception_handler(AppError, handle_app_error)
    database_failures = (
        DBAPIError,
        EmulatedDBAPIException,
        PoolTimeoutError,
        asyncpg.PostgresError,
    )
    for database_failure in database_failures + _DRIVER_CONNECTION_LOST:
        app.add_exception_handler(database_failure, handle_database_error)

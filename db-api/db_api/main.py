"""The db-api application: settings check, routers and error handlers."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.routing import APIRoute

from db_api.config import get_settings
from db_api.database import Database
from db_api.docs import install_docs_pages
from db_api.errors import install_error_handlers
from db_api.limits import BodySizeLimitMiddleware
from db_api.routes import (
    account,
    admin,
    chats,
    health,
    links,
    messages,
    reply_jobs,
    sessions,
    turns,
    users,
)

DESCRIPTION = """
Stores users, chats and messages for the chat app in PostgreSQL.

Every route except `/health/*` needs `Authorization: Bearer <SERVICE_TOKEN>`.
Routes under `/chats` and `/users/me`, and those that list or end a user's sessions,
also need `X-User-Id: <uuid>`, the acting user: another user's chat (or session)
answers 404 exactly like a missing one. A new password and deleting the account ask
for the password again; a wrong one answers 403. Errors are
`{"detail": "human message"}`; 422 keeps FastAPI's list of problems; a conditional
message update (`if_status`) that no longer applies answers 409 with the message's
current `status`. Starting replies and creating chats are rate-limited per user: beyond
the limit the answer is 429 with `Retry-After` and `retry_after_seconds`, and nothing
is written. While PostgreSQL is unreachable every route answers 503
`{"detail": "Database unavailable"}`.
"""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Reading the settings here makes a misconfigured service refuse to start. The pool
    # connects on first use, so db-api starts (and answers 503) while PostgreSQL is down.
    database = Database(get_settings())
    app.state.database = database
    # Everything imported so far lives as long as the process. Frozen, the collector
    # stops re-scanning it: full collections took 60-80 ms, the slowest 1% of requests.
    gc.freeze()
    yield
    await database.close()


def operation_id_from_name(route: APIRoute) -> str:
    """`create_user` rather than FastAPI's `create_user_users_post`."""
    return route.name


app = FastAPI(
    title="db-api",
    version="2.0.0",
    summary="Users, chats and messages of the chat app.",
    description=DESCRIPTION,
    lifespan=lifespan,
    # FastAPI's own pages load their assets from a CDN; install_docs_pages serves them here.
    docs_url=None,
    redoc_url=None,
    generate_unique_id_function=operation_id_from_name,
    openapi_tags=[
        {
            "name": "users",
            "description": "Accounts, password checks, and the acting user's own account.",
        },
        {"name": "sessions", "description": "Sign-ins: start, resolve, end."},
        {"name": "chats", "description": "The acting user's chats."},
        {
            "name": "messages",
            "description": "Messages inside a chat, and turns (a message and its reply).",
        },
        {"name": "health", "description": "Probes; no token needed."},
    ],
)
install_error_handlers(app)
install_docs_pages(app)
app.add_middleware(BodySizeLimitMiddleware)
for router in (
    users.router,
    account.router,
    sessions.router,
    chats.router,
    messages.router,
    turns.router,
    reply_jobs.router,
    links.router,
    admin.router,
    health.router,
):
    app.include_router(router)

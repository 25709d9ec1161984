"""The chat-ui application: middleware, routers, exception handlers and the upstream clients."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from chat_ui.config import get_settings
from chat_ui.conversation import adopt_waiting_replies
from chat_ui.db_client import DbClient
from chat_ui.errors import ChatUiError, MalformedForm, PageNotFound, SignInRequired
from chat_ui.generation import GenerationRegistry
from chat_ui.head_requests import HeadAsGet
from chat_ui.lm_client import LmClient
from chat_ui.middleware import SecurityHeadersMiddleware, SessionCookie
from chat_ui.page_cache import PageCache
from chat_ui.pages import STATIC_DIR
from chat_ui.routes import account, admin, auth, chats, health, manage, messages
from chat_ui.runtime_settings import keep_settings_fresh
from chat_ui.views import error_page, show_failure, show_route_failure, sign_in_redirect

logger = logging.getLogger("chat_ui")

settings = get_settings()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.configured_settings = app.state.settings = settings
    app.state.public_settings = None
    app.state.db_client = DbClient(settings.db_api_url, service_token=settings.service_token)
    app.state.lm_client = LmClient(settings.lm_api_url, timeout_seconds=settings.lm_timeout_seconds)
    app.state.generations = GenerationRegistry()
    app.state.page_cache = PageCache(max_bytes=settings.page_cache_mb * 1024 * 1024)
    # Measured now so the first message need not wait for it; kept referenced until done.
    warm_up = asyncio.create_task(app.state.lm_client.warm_up(), name="lm-warm-up")
    adopter = asyncio.create_task(
        adopt_waiting_replies(
            app.state.db_client,
            app.state.lm_client,
            lambda: app.state.settings,
            app.state.generations,
        ),
        name="adopt-waiting-replies",
    )
    settings_reader = asyncio.create_task(keep_settings_fresh(app), name="admin-settings")
    # Everything imported so far lives as long as the process. Frozen, the collector
    # stops re-scanning it: full collections were the slowest 1% of page views.
    gc.freeze()
    try:
        yield
    finally:
        warm_up.cancel()
        adopter.cancel()
        settings_reader.cancel()
        # Live replies are stopped and saved before the clients they save through close.
        await app.state.generations.shutdown()
        await app.state.db_client.aclose()
        await app.state.lm_client.aclose()


app = FastAPI(title="chat-ui", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

app.add_middleware(
    SessionCookie,
    secret_key=settings.session_secret,
    max_age=settings.session_max_age_seconds,
    always_secure=settings.cookie_secure,
)
app.add_middleware(SecurityHeadersMiddleware, max_body_bytes=settings.request_bytes_limit)
# Outermost, so a HEAD gets the very headers a GET gets (less its cookie, see there).
app.add_middleware(HeadAsGet)

app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
app.include_router(health.router)
app.include_router(auth.router)
app.include_router(chats.router)
app.include_router(messages.router)
app.include_router(manage.router)
app.include_router(account.router)
app.include_router(admin.router)


async def show_error(request: Request, error: ChatUiError) -> Response:
    """The error as a page, or as JSON for the page's script."""
    return await show_failure(request, error, error_page(request))


@app.exception_handler(SignInRequired)
async def redirect_to_sign_in(request: Request, error: SignInRequired) -> Response:
    return sign_in_redirect(error)


@app.exception_handler(ChatUiError)
async def show_failure_page(request: Request, error: ChatUiError) -> Response:
    """Every failure a route raises, its form check's too, on the page the route declared."""
    return await show_route_failure(request, error)


@app.exception_handler(StarletteHTTPException)
async def show_http_error_page(request: Request, error: StarletteHTTPException) -> Response:
    if error.status_code == 404:
        return await show_error(request, PageNotFound())
    if error.status_code == 400:
        # FastAPI's 400 is a body it could not parse, e.g. multipart without a boundary.
        return await show_error(request, MalformedForm())
    page_error = ChatUiError("That request did not work. Go back and try again.")
    page_error.status_code = error.status_code
    return await show_error(request, page_error)


@app.exception_handler(RequestValidationError)
async def show_validation_error_page(request: Request, error: RequestValidationError) -> Response:
    # A malformed id in the URL is simply a page that does not exist.
    if any(detail.get("loc", ("",))[0] == "path" for detail in error.errors()):
        return await show_error(request, PageNotFound())
    # Form fields are text with defaults (see forms), so no form of ours gets here.
    return await show_error(request, MalformedForm())


@app.exception_handler(Exception)
async def show_server_error_page(request: Request, error: Exception) -> Response:
    logger.exception("Unhandled error on %s %s", request.method, request.url.path)
    return await show_error(request, ChatUiError())

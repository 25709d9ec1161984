"""Annotated dependencies, so routes read as plain typed functions."""

from __future__ import annotations

import ipaddress
import logging
from typing import Annotated

from fastapi import Depends, Request

from chat_ui.config import Settings
from chat_ui.conversation import Conversation
from chat_ui.db_client import DbClient
from chat_ui.errors import DatabaseUnavailable, PageNotFound, SignInRequired
from chat_ui.generation import GenerationRegistry
from chat_ui.lm_client import LmClient
from chat_ui.page_cache import PageCache
from chat_ui.sessions import (
    SessionUser,
    claimed_session,
    remember_role,
    session_ended,
    session_token,
)
from chat_ui.views import ChatPages

logger = logging.getLogger(__name__)

# Every dependency here is `async def`, though none waits: FastAPI runs a plain `def`
# dependency in the thread pool, one hop per dependency per request, which cost the
# chat page about 0.3 ms of chat-ui's CPU (`python -m bench --only page --profile`).


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_db(request: Request) -> DbClient:
    db: DbClient = request.app.state.db_client
    return db


async def get_lm(request: Request) -> LmClient:
    lm: LmClient = request.app.state.lm_client
    return lm


async def get_registry(request: Request) -> GenerationRegistry:
    registry: GenerationRegistry = request.app.state.generations
    return registry


async def get_page_cache(request: Request) -> PageCache:
    pages: PageCache = request.app.state.page_cache
    return pages


SettingsDep = Annotated[Settings, Depends(get_settings)]
DbDep = Annotated[DbClient, Depends(get_db)]
LmDep = Annotated[LmClient, Depends(get_lm)]
RegistryDep = Annotated[GenerationRegistry, Depends(get_registry)]
PageCacheDep = Annotated[PageCache, Depends(get_page_cache)]


async def get_chat_pages(
    request: Request, db: DbDep, registry: RegistryDep, cache: PageCacheDep
) -> ChatPages:
    return ChatPages(request=request, db=db, registry=registry, cache=cache)


# The pages that show the user's chats; each checks the session as it loads them.
ChatPagesDep = Annotated[ChatPages, Depends(get_chat_pages)]


async def get_current_user(request: Request, db: DbDep) -> SessionUser:
    """The signed-in user, resolved from the cookie's session token in db-api.

    One db-api round trip, which also proves the account still exists. A signed-out,
    expired or unknown session raises SignInRequired (the handler redirects to the
    sign-in page, saying the session expired). FastAPI caches this per request, so a
    route that needs the user in several dependencies still asks once.
    """
    token, claimed = claimed_session(request)
    try:
        user = await db.resolve_session(token)
    except SignInRequired:
        raise session_ended(request) from None
    except DatabaseUnavailable:
        # While db-api is down nothing can be read or changed anyway; going on with the
        # cookie's claim lets the page report the outage (and keep the typed text).
        logger.info("db-api down while resolving a session; the page will report it")
        return claimed
    remember_role(request, user.role)
    return SessionUser(id=user.id, username=user.username, role=user.role, status=user.status)


CurrentUser = Annotated[SessionUser, Depends(get_current_user)]
# The send, stream and stop routes too: a revoked session must not start or watch a reply.
SignedInUser = CurrentUser


async def get_optional_user(request: Request, db: DbDep) -> SessionUser | None:
    """The signed-in user, or None (for pages that only change shape when signed in)."""
    if session_token(request) is None:
        return None
    try:
        return await get_current_user(request, db)
    except SignInRequired:
        return None


OptionalUser = Annotated[SessionUser | None, Depends(get_optional_user)]


async def get_admin(request: Request, db: DbDep) -> SessionUser:
    """The signed-in user if an active admin; for anyone else (signed out too) the admin
    pages do not exist. db-api checks the role again on every admin request."""
    user = await get_optional_user(request, db)
    if user is None or not user.is_admin:
        raise PageNotFound()
    return user


AdminUser = Annotated[SessionUser, Depends(get_admin)]


def client_ip(request: Request) -> str | None:
    """The browser's address; uvicorn's proxy headers put nginx's X-Forwarded-For here."""
    host = request.client.host if request.client is not None else ""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None  # a Unix socket or a test client: no address to count by


async def get_conversation(
    user: SignedInUser, db: DbDep, lm: LmDep, settings: SettingsDep, registry: RegistryDep
) -> Conversation:
    return Conversation(db=db, lm=lm, settings=settings, registry=registry, user_id=user.id)


ConversationDep = Annotated[Conversation, Depends(get_conversation)]

"""Annotated dependencies, so routes read as plain typed functions."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import Depends, Request

from chat_ui.config import Settings
from chat_ui.conversation import Conversation
from chat_ui.db_client import DbClient
from chat_ui.errors import CsrfFailed, DatabaseUnavailable, SignInRequired
from chat_ui.generation import GenerationRegistry
from chat_ui.lm_client import LmClient
from chat_ui.security import csrf_tokens_match
from chat_ui.sessions import (
    SessionUser,
    expected_csrf_token,
    session_expired,
    session_user,
    sign_out,
)

logger = logging.getLogger(__name__)


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_db(request: Request) -> DbClient:
    db: DbClient = request.app.state.db_client
    return db


def get_lm(request: Request) -> LmClient:
    lm: LmClient = request.app.state.lm_client
    return lm


def get_registry(request: Request) -> GenerationRegistry:
    registry: GenerationRegistry = request.app.state.generations
    return registry


SettingsDep = Annotated[Settings, Depends(get_settings)]
DbDep = Annotated[DbClient, Depends(get_db)]
LmDep = Annotated[LmClient, Depends(get_lm)]
RegistryDep = Annotated[GenerationRegistry, Depends(get_registry)]


async def get_current_user(request: Request, db: DbDep) -> SessionUser:
    """The signed-in user, or SignInRequired (the handler redirects to the sign-in page)."""
    next_path = request.url.path if request.method == "GET" else None
    user = session_user(request)
    if user is None:
        raise SignInRequired(expired=session_expired(request), next_path=next_path)
    try:
        await db.get_user(user.id)
    except SignInRequired:
        # The account is gone; the cookie must not keep pretending otherwise.
        sign_out(request)
        raise SignInRequired(expired=True, next_path=next_path) from None
    except DatabaseUnavailable:
        # The cookie is signed, so the identity is authentic; only the "account still
        # exists" check is skipped, letting the page itself report the outage.
        logger.info("db-api down while checking user %s; trusting the signed session", user.id)
    return user


CurrentUser = Annotated[SessionUser, Depends(get_current_user)]


def get_signed_in_user(request: Request) -> SessionUser:
    """The signed-in user from the signed cookie alone, without asking db-api.

    For routes on the way to the first token (send, stream, stop): their first
    db-api call is scoped to the user anyway, so a deleted account still gets
    nothing (404), and one round trip less is time the reply starts sooner.
    """
    next_path = request.url.path if request.method == "GET" else None
    user = session_user(request)
    if user is None:
        raise SignInRequired(expired=session_expired(request), next_path=next_path)
    return user


SignedInUser = Annotated[SessionUser, Depends(get_signed_in_user)]


def check_csrf(request: Request, submitted: str) -> None:
    """Raise CsrfFailed unless the form's token is this session's token."""
    if not csrf_tokens_match(expected_csrf_token(request), submitted):
        raise CsrfFailed()


def get_conversation(
    user: SignedInUser, db: DbDep, lm: LmDep, settings: SettingsDep, registry: RegistryDep
) -> Conversation:
    return Conversation(db=db, lm=lm, settings=settings, registry=registry, user_id=user.id)


ConversationDep = Annotated[Conversation, Depends(get_conversation)]

"""Sign-ins (the API calls them sessions): started after a password check, resolved on
every page, ended at sign-out.

The token is a bearer secret for one browser; db-api stores only its SHA-256, so the
table alone signs nobody in.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Response, status

from db_api import security
from db_api.database import PageConnection, ReadSession, WriteSession
from db_api.deps import CurrentUserId, OptionalSessionToken, ServiceAuth
from db_api.queries import pages, sign_ins
from db_api.schemas import (
    ErrorDetail,
    PageView,
    SessionCreate,
    SessionCreated,
    SessionDetail,
    SessionList,
    SessionPublic,
    UserPublic,
)

router = APIRouter(
    prefix="/sessions",
    tags=["sessions"],
    dependencies=[ServiceAuth],
    responses={401: {"model": ErrorDetail, "description": "Missing or invalid service token"}},
)

SessionToken = Annotated[
    str,
    Header(
        alias="X-Session-Token",
        max_length=200,
        description="The token `POST /sessions` answered; never put it in a URL.",
    ),
]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorDetail, "description": "Unknown, expired or signed out"}
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Start a session",
    description="For an account whose password was just checked (or that just signed up). "
    "Answers the token once; only its hash is stored. The browser's `user_agent` and "
    "`client_ip` are kept for `GET /sessions` to list. The user's expired sessions are "
    "deleted at the same time.",
    responses={404: {"model": ErrorDetail, "description": "Unknown user"}},
)
async def create_session(body: SessionCreate, db: WriteSession) -> SessionCreated:
    token = security.new_session_token()
    sign_in, user = await sign_ins.create_sign_in(
        db,
        user_id=body.user_id,
        token_hash=security.hash_session_token(token),
        now=datetime.now(UTC),
        max_age_seconds=body.max_age_seconds,
        user_agent=body.user_agent,
        client_ip=None if body.client_ip is None else str(body.client_ip),
    )
    return SessionCreated(
        token=token,
        user=UserPublic.model_validate(user),
        created_at=sign_in.created_at,
        expires_at=sign_in.expires_at,
    )


@router.get(
    "/current",
    summary="Resolve a session",
    description="The session named by `X-Session-Token` and its user, while it is neither "
    "expired nor signed out. One query: callers need no separate user lookup.",
    responses=NOT_FOUND,
)
async def resolve_session(token: SessionToken, connection: PageConnection) -> SessionPublic:
    token_hash = security.hash_session_token(token)
    live = await sign_ins.live_sign_in(connection, token_hash=token_hash)
    return SessionPublic(user=live.user(), created_at=live.created_at, expires_at=live.expires_at)


@router.get(
    "/current/page",
    summary="Everything a chat page shows, in one request",
    description="Resolves the session like `GET /sessions/current`, then answers its user, "
    "their most recently active chats and, with `chat_id`, that chat with its messages "
    "(`chat` is null when the user has no such chat). The `ETag` names the state of all "
    "of the user's chats and messages: send it back as `If-None-Match` and, while nothing "
    "changed, the answer is 304 with no body (the session is still checked first).",
    response_model=PageView,
    responses={
        304: {"description": "Nothing changed since the `If-None-Match` ETag"},
        **NOT_FOUND,
    },
)
async def chat_page_view(
    token: SessionToken,
    connection: PageConnection,
    chat_id: Annotated[uuid.UUID | None, Query(description="The chat to include.")] = None,
    limit: Annotated[int, Query(ge=1, le=100, description="How many chats to list.")] = 50,
    if_none_match: Annotated[str | None, Header(max_length=1000)] = None,
) -> Response:
    live = await sign_ins.live_sign_in(connection, token_hash=security.hash_session_token(token))
    headers = {"ETag": live.etag()}
    if pages.etag_matches(if_none_match, live.etag()):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    view = await pages.page_view(connection, live=live, chat_id=chat_id, limit=limit)
    return pages.json_response(view, headers=headers)


@router.delete(
    "/current",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="End a session (sign out)",
    description="Idempotent: an unknown or already ended session also answers 204.",
)
async def revoke_session(token: SessionToken, db: WriteSession) -> Response:
    await sign_ins.revoke_sign_in(db, token_hash=security.hash_session_token(token))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="End all of the acting user's sessions (sign out everywhere)",
    description="Every session of the user named by `X-User-Id`; other users' are untouched.",
)
async def revoke_user_sessions(user_id: CurrentUserId, db: WriteSession) -> Response:
    await sign_ins.revoke_user_sign_ins(db, user_id=user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "",
    summary="List the acting user's sessions",
    description="The live (not expired) sessions of the user named by `X-User-Id`, most "
    "recently seen first, with the browser and address each was started from. With "
    "`X-Session-Token`, the session it names is marked `current`.",
)
async def list_user_sessions(
    user_id: CurrentUserId, db: ReadSession, session_token: OptionalSessionToken = None
) -> SessionList:
    current = None if session_token is None else security.hash_session_token(session_token)
    found = await sign_ins.user_sign_ins(db, user_id=user_id, now=datetime.now(UTC))
    return SessionList(
        items=[
            SessionDetail(
                id=sign_in.id,
                created_at=sign_in.created_at,
                last_seen_at=sign_in.last_seen_at,
                expires_at=sign_in.expires_at,
                user_agent=sign_in.user_agent,
                client_ip=sign_in.client_ip,
                current=sign_in.token_hash == current,
            )
            for sign_in in found
        ]
    )


# Declared after "/current", which is not a session id.
@router.delete(
    "/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="End one of the acting user's sessions",
    description="Signs that browser out. Another user's session answers 404 exactly like "
    "an unknown or already ended one.",
    responses=NOT_FOUND,
)
async def revoke_user_session(
    session_id: Annotated[uuid.UUID, Path(description="The session's `id` (from the list).")],
    user_id: CurrentUserId,
    db: WriteSession,
) -> Response:
    await sign_ins.revoke_user_sign_in(db, user_id=user_id, sign_in_id=session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

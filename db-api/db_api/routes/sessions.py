"""Sign-in sessions: started after a password check, resolved on every page, ended at sign-out.

The token is a bearer secret for one browser; db-api stores only its SHA-256, so the
table alone signs nobody in.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response, status

from db_api import crud, reads, security
from db_api.deps import CurrentUserId, ServiceAuth, SessionDep
from db_api.schemas import (
    ErrorDetail,
    PageView,
    SessionCreate,
    SessionCreated,
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
    "Answers the token once; only its hash is stored. The user's expired sessions are "
    "deleted at the same time.",
    responses={404: {"model": ErrorDetail, "description": "Unknown user"}},
)
def create_session(body: SessionCreate, session: SessionDep) -> SessionCreated:
    token = security.new_session_token()
    row = crud.create_session(
        session,
        user_id=body.user_id,
        token_hash=security.hash_session_token(token),
        now=datetime.now(UTC),
        max_age_seconds=body.max_age_seconds,
    )
    user = crud.get_user(session, user_id=row.user_id)
    return SessionCreated(
        token=token,
        user=UserPublic.model_validate(user),
        created_at=row.created_at,
        expires_at=row.expires_at,
    )


@router.get(
    "/current",
    summary="Resolve a session",
    description="The session named by `X-Session-Token` and its user, while it is neither "
    "expired nor signed out. One query: callers need no separate user lookup.",
    responses=NOT_FOUND,
)
async def resolve_session(token: SessionToken) -> SessionPublic:
    async def read(connection: reads.Connection) -> SessionPublic:
        live = await reads.live_session(connection, security.hash_session_token(token))
        return SessionPublic(
            user=live.user(), created_at=live.created_at, expires_at=live.expires_at
        )

    return await reads.with_connection(read)


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
    chat_id: Annotated[uuid.UUID | None, Query(description="The chat to include.")] = None,
    limit: Annotated[int, Query(ge=1, le=100, description="How many chats to list.")] = 50,
    if_none_match: Annotated[str | None, Header(max_length=1000)] = None,
) -> Response:
    async def read(connection: reads.Connection) -> tuple[str, dict[str, Any] | None]:
        live = await reads.live_session(connection, security.hash_session_token(token))
        etag = live.etag()
        if reads.etag_matches(if_none_match, etag):
            return etag, None
        return etag, await reads.page_view(connection, live=live, chat_id=chat_id, limit=limit)

    etag, view = await reads.with_connection(read)
    headers = {"ETag": etag}
    if view is None:
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return reads.json_response(view, headers=headers)


@router.delete(
    "/current",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="End a session (sign out)",
    description="Idempotent: an unknown or already ended session also answers 204.",
)
def revoke_session(token: SessionToken, session: SessionDep) -> Response:
    crud.revoke_session(session, token_hash=security.hash_session_token(token))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="End all of the acting user's sessions (sign out everywhere)",
    description="Every session of the user named by `X-User-Id`; other users' are untouched.",
)
def revoke_user_sessions(user_id: CurrentUserId, session: SessionDep) -> Response:
    crud.revoke_user_sessions(session, user_id=user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

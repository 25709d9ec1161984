"""What anyone may ask without being signed in: the sign-up policy, and the one-time links.

A link's token is its only credential, so these routes answer an unknown, used and
expired link alike (404), and a reset's new password ends every session of the account.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response, status
from sqlalchemy import delete
from starlette.concurrency import run_in_threadpool

from db_api import security
from db_api.database import ReadSession, WriteSession
from db_api.deps import ServiceAuth, SettingsDep
from db_api.errors import LinkNotFoundError
from db_api.models import SignIn, User
from db_api.queries import app_settings, audit, links
from db_api.schemas import ErrorDetail, LinkInfo, LinkLookup, PasswordReset, PublicSettings

router = APIRouter(
    tags=["links"],
    dependencies=[ServiceAuth],
    responses={401: {"model": ErrorDetail, "description": "Missing or invalid service token"}},
)
UNKNOWN_LINK: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorDetail, "description": "Unknown, used or expired link"}
}


@router.get(
    "/settings",
    summary="The settings every service applies",
    description="The sign-up policy in force, and the admin's message length and system "
    "prompt (null: the caller's own configuration).",
)
async def public_settings(db: ReadSession, settings: SettingsDep) -> PublicSettings:
    row = await app_settings.stored(db)
    return PublicSettings(
        signup_mode=row.signup_mode or settings.signup_mode,  # type: ignore[arg-type]
        max_message_chars=row.max_message_chars,
        system_prompt=row.system_prompt,
    )


@router.post(
    "/links/lookup",
    summary="Check a one-time link",
    description="What a live invite or password-reset link is for, without using it.",
    responses=UNKNOWN_LINK,
)
async def lookup_link(body: LinkLookup, db: ReadSession) -> LinkInfo:
    token_hash = security.hash_session_token(body.token)
    for kind in ("invite", "password_reset"):
        link = await links.find_link(db, kind=kind, token_hash=token_hash)
        if link is None:
            continue
        user = None if link.user_id is None else await db.get(User, link.user_id)
        return LinkInfo(
            kind=kind,
            username=None if user is None else user.username,
            expires_at=link.expires_at,
        )
    raise LinkNotFoundError()


async def reset_password_hash(body: PasswordReset) -> str:
    """argon2 in the thread pool, before the request takes a database connection."""
    return await run_in_threadpool(security.hash_password, body.new_password)


@router.post(
    "/password-resets",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Set a new password with a reset link",
    description="Uses the link up, stores the new password and ends every session of the "
    "account, in one transaction.",
    responses=UNKNOWN_LINK,
)
async def reset_password(
    body: PasswordReset,
    new_hash: Annotated[str, Depends(reset_password_hash)],
    db: WriteSession,
) -> Response:
    link = await links.use_link(
        db, kind="password_reset", token_hash=security.hash_session_token(body.token)
    )
    user = None if link is None or link.user_id is None else await db.get(User, link.user_id)
    if user is None:
        raise LinkNotFoundError()
    user.password_hash = new_hash
    await db.execute(delete(SignIn).where(SignIn.user_id == user.id))
    audit.record(db, action="password_reset", actor=user.username, target=user.username)
    await db.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)

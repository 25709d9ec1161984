"""The acting user's own account: a new password, or deleting the account.

Both ask for the password again, however signed in the caller is: a borrowed laptop
or a copied cookie must not be enough to lock the owner out or to erase their chats.
Wrong passwords count against the same throttles as `POST /users/verify`, per account
from the caller's address and per account, so guessing here is no faster than at sign-in.
"""

from __future__ import annotations

from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv6Address
from typing import Annotated

from fastapi import APIRouter, Depends, Response, status
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.concurrency import run_in_threadpool

from db_api import security
from db_api.config import Settings
from db_api.database import WriteSession
from db_api.deps import CurrentUserId, OptionalSessionToken, ServiceAuth, SettingsDep
from db_api.errors import TooManyLoginFailuresError, WrongPasswordError
from db_api.models import User
from db_api.queries import admin, audit, login_throttles, users
from db_api.schemas import AccountDeletion, ErrorDetail, PasswordChange

router = APIRouter(
    prefix="/users/me",
    tags=["users"],
    dependencies=[ServiceAuth],
    responses={
        401: {"model": ErrorDetail, "description": "Missing or invalid service token"},
        403: {"model": ErrorDetail, "description": "Wrong password"},
        404: {"model": ErrorDetail, "description": "Unknown user"},
        429: {
            "model": ErrorDetail,
            "description": "Too many wrong passwords",
            "headers": {"Retry-After": {"description": "Seconds until the next attempt"}},
        },
    },
)


async def changed_password_hash(body: PasswordChange) -> str:
    """argon2 in the thread pool, before the request takes a database connection."""
    return await run_in_threadpool(security.hash_password, body.new_password)


ChangedPasswordHash = Annotated[str, Depends(changed_password_hash)]


@router.post(
    "/password",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Change the acting user's password",
    description="Checks `current_password`, stores `new_password` as an argon2id hash and "
    "ends every other session of the user, in one transaction: the session named by "
    "`X-Session-Token` stays (without it, every session ends). A wrong current password "
    "answers 403 and changes nothing; wrong ones count like failed sign-ins, and while "
    "they throttle the account the answer is 429 with `Retry-After`.",
)
async def change_password(
    body: PasswordChange,
    new_hash: ChangedPasswordHash,
    user_id: CurrentUserId,
    db: WriteSession,
    settings: SettingsDep,
    session_token: OptionalSessionToken = None,
) -> Response:
    user = await users.lock_user(db, user_id=user_id)
    await _confirm_password(db, settings, user, body.current_password, body.client_ip)
    keep = None if session_token is None else security.hash_session_token(session_token)
    await users.change_password(db, user=user, password_hash=new_hash, keep_token_hash=keep)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete the acting user's account",
    description="Checks `password`, then deletes the account with everything that is "
    "its: sessions, chats, messages, replies being written, rate-limit buckets. One "
    "transaction: a wrong password (403, counted like a failed sign-in; 429 while "
    "throttled) deletes nothing. The install's last active admin is refused (409): "
    "someone else must be made admin first.",
    responses={409: {"model": ErrorDetail, "description": "The install's last active admin"}},
)
async def delete_account(
    body: AccountDeletion, user_id: CurrentUserId, db: WriteSession, settings: SettingsDep
) -> Response:
    # Before the account's row, in the order the admin's routes lock them.
    await admin.hold_admin_changes(db)
    user = await users.lock_user(db, user_id=user_id, with_chats=True)
    await _confirm_password(db, settings, user, body.password, body.client_ip)
    if user.role == "admin":
        await admin.keep_an_admin(db, leaving=user)
    audit.record(
        db,
        action="deleted_own_account",
        actor=user.username,
        target=user.username,
        client_ip=None if body.client_ip is None else str(body.client_ip),
    )
    await users.delete_user(db, user=user)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


async def _confirm_password(
    db: AsyncSession,
    settings: Settings,
    user: User,
    password: str,
    client_ip: IPv4Address | IPv6Address | None,
) -> None:
    """Return if `password` is the (locked) user's; else count the failure and refuse.

    The sign-in throttle's per-account keys: from this address (locked after
    `LOGIN_MAX_FAILURES`) and from anywhere (each failure past
    `LOGIN_ACCOUNT_MAX_FAILURES` waits twice as long).
    """
    _client_key, pair_key, account_key = security.login_throttle_keys(
        username=user.username, client=security.client_key(client_ip)
    )
    now = datetime.now(UTC)
    locked_seconds = await login_throttles.locked_seconds(db, keys=(pair_key, account_key), now=now)
    if locked_seconds is not None:
        raise TooManyLoginFailuresError(locked_seconds)
    if await run_in_threadpool(security.verify_password, user.password_hash, password):
        await login_throttles.clear_failures(db, key=pair_key)
        return
    # Each count commits, which also ends the transaction: nothing else was written.
    await login_throttles.record_account_failure(
        db, settings=settings, pair_key=pair_key, account_key=account_key, now=datetime.now(UTC)
    )
    raise WrongPasswordError()

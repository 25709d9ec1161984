"""Accounts: sign-up, password check at login, and the acting user's profile."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address, IPv6Address
from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.concurrency import run_in_threadpool

from db_api import security
from db_api.config import Settings
from db_api.database import ReadSession, WriteSession, database_of
from db_api.deps import CurrentUserId, ServiceAuth, SettingsDep
from db_api.errors import AccountDisabledError, InvalidCredentialsError, TooManyLoginFailuresError
from db_api.models import User
from db_api.queries import app_settings, audit, login_throttles, users
from db_api.queries.rate_limits import take_token
from db_api.schemas import ErrorDetail, LoginAttempt, RateLimited, SignUp, UserPublic

router = APIRouter(
    prefix="/users",
    tags=["users"],
    dependencies=[ServiceAuth],
    responses={401: {"model": ErrorDetail, "description": "Missing or invalid service token"}},
)


async def sign_up_allowed(body: SignUp, request: Request, settings: SettingsDep) -> None:
    """Take a token of the address's sign-up limit, before any hashing (429 when empty).

    Its own transaction, committed whatever the sign-up's outcome: a name found taken
    counts too, so nobody can probe which names exist faster than the limit.
    """
    if body.client_ip is None:
        return  # another service, not a browser: nothing to count by
    database = database_of(request)
    async with database.session(database.write_sessions) as db:
        client = security.client_key(body.client_ip)
        await take_token(db, action="signup", subject=client, limit=settings.signup_limit)
        await db.commit()


async def new_password_hash(body: SignUp) -> str:
    """argon2 (a few hundred milliseconds of CPU) in the thread pool.

    A dependency declared before `WriteSession`, so it runs before the request takes a
    database connection: one held while hashing would be one fewer for everyone else.
    """
    return await run_in_threadpool(security.hash_password, body.password)


NewPasswordHash = Annotated[str, Depends(new_password_hash)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create an account",
    description="Stores the password as an argon2id hash. The install's first account is its "
    "admin; later ones follow the sign-up policy (`GET /settings`): `open` makes them "
    "active, `approval` pending until an admin approves, `closed` refuses them (403) unless "
    "they bring an `invite`, which makes them active under any policy. Usernames are unique "
    "regardless of case: `Alice` is taken once `alice` exists. Sign-ups are limited per "
    "client address (`client_ip`): `SIGNUP_BURST` at once, then `SIGNUPS_PER_HOUR`, "
    "counting names found taken too; beyond, 429 with `Retry-After`, before the password "
    "is hashed. A call naming no address is not counted.",
    responses={
        403: {"model": ErrorDetail, "description": "Sign-up is closed and no invite was given"},
        404: {"model": ErrorDetail, "description": "The invite is unknown, used or expired"},
        409: {"model": ErrorDetail, "description": "Username already taken"},
        429: {
            "model": RateLimited,
            "description": "Too many sign-ups from this address",
            "headers": {"Retry-After": {"description": "Seconds until the next attempt"}},
        },
    },
    dependencies=[Depends(sign_up_allowed)],
)
async def create_user(
    body: SignUp, password_hash: NewPasswordHash, db: WriteSession, settings: SettingsDep
) -> UserPublic:
    user = await users.create_user(
        db,
        username=body.username,
        password_hash=password_hash,
        mode=await app_settings.signup_mode(db, settings),
        invite_token_hash=None if body.invite is None else security.hash_session_token(body.invite),
        client_ip=None if body.client_ip is None else str(body.client_ip),
    )
    return UserPublic.model_validate(user)


@router.post(
    "/verify",
    summary="Check a username and password",
    description="Answers the account when the password matches. A wrong username and a wrong "
    "password get the same 401. Failures are counted three ways, in PostgreSQL. Per account "
    "from one client address (`client_ip`, as the web tier saw it): after "
    "`LOGIN_MAX_FAILURES` in a row that account answers 429 to that address for "
    "`LOGIN_LOCK_SECONDS`, so nobody can lock the owner out from elsewhere. Per account "
    "from every address: after `LOGIN_ACCOUNT_MAX_FAILURES` within "
    "`LOGIN_ACCOUNT_WINDOW_SECONDS`, each further failure makes the next attempt wait twice "
    "as long (1 s, 2 s, 4 s, ... up to `LOGIN_MAX_DELAY_SECONDS`). Per client address: after "
    "`LOGIN_IP_MAX_FAILURES` failures within `LOGIN_IP_WINDOW_SECONDS` on any accounts, the "
    "address answers 429 for the accounts it failed on, while a right password for any "
    "other account still signs in, so one guesser cannot lock out everyone behind the same "
    "address. A 429 carries `Retry-After` (seconds), whatever the password.",
    responses={
        401: {"model": ErrorDetail, "description": "Wrong username or password"},
        429: {
            "model": ErrorDetail,
            "description": "Too many failed logins",
            "headers": {"Retry-After": {"description": "Seconds until the next attempt"}},
        },
    },
)
async def verify_user(body: LoginAttempt, db: WriteSession, settings: SettingsDep) -> UserPublic:
    client_key, pair_key, account_key = security.login_throttle_keys(
        username=body.username, client=security.client_key(body.client_ip)
    )
    # The row lock serialises concurrent attempts on one account, so none goes uncounted.
    user = await users.find_user_by_username(db, username=body.username, for_update=True)
    now = datetime.now(UTC)
    await _refuse_while_throttled(db, settings, now, client_key, pair_key, account_key)
    if user is None:
        await run_in_threadpool(security.spend_verification_time, body.password)
    if user is None or not await run_in_threadpool(
        security.verify_password, user.password_hash, body.password
    ):
        # Waits count from the answer, not from the start of the (slow) password check.
        now = datetime.now(UTC)
        locked_for = await login_throttles.record_account_failure(
            db, settings=settings, pair_key=pair_key, account_key=account_key, now=now
        )
        if user is not None:
            _audit_failure(
                db, username=user.username, client_ip=body.client_ip, locked_for=locked_for
            )
        await login_throttles.record_failure(
            db,
            key=client_key,
            now=now,
            max_failures=settings.login_ip_max_failures,
            lock_seconds=None,
            window_seconds=settings.login_ip_window_seconds,
        )
        await login_throttles.forget_stale(db, settings=settings, now=now)
        await db.commit()
        raise InvalidCredentialsError()
    if user.status == "disabled":
        audit.record(
            db,
            action="sign_in_refused_disabled",
            target=user.username,
            client_ip=_address(body.client_ip),
        )
        await db.commit()
        raise AccountDisabledError()
    # Only this address's count on the account starts over: a success must not buy an
    # address more guesses at other accounts, nor end the wait of an account under attack.
    await login_throttles.clear_failures(db, key=pair_key)
    new_hash = await run_in_threadpool(_rehashed, user, body.password)
    await users.record_login_success(db, user=user, new_password_hash=new_hash)
    return UserPublic.model_validate(user)


async def _refuse_while_throttled(
    db: AsyncSession,
    settings: Settings,
    now: datetime,
    client_key: str,
    pair_key: str,
    account_key: str,
) -> None:
    """429 before the password is checked, when this attempt must wait.

    An address with many failures is refused only for the accounts it failed on: the
    others' owners behind the same address (a household's NAT) still sign in.
    """
    locked_seconds = await login_throttles.locked_seconds(db, keys=(pair_key, account_key), now=now)
    if locked_seconds is not None:
        raise TooManyLoginFailuresError(locked_seconds)
    window = settings.login_ip_window_seconds
    failures, window_left = await login_throttles.recent_failures(
        db, key=client_key, now=now, window_seconds=window
    )
    if failures >= settings.login_ip_max_failures and await login_throttles.failed_since(
        db, key=pair_key, since=now - timedelta(seconds=window)
    ):
        raise TooManyLoginFailuresError(window_left)


def _address(client_ip: IPv4Address | IPv6Address | None) -> str | None:
    return None if client_ip is None else str(client_ip)


def _audit_failure(
    db: AsyncSession,
    *,
    username: str,
    client_ip: IPv4Address | IPv6Address | None,
    locked_for: float | None,
) -> None:
    """A wrong password for an existing account; a lock it started is an event of its own.

    Unknown names are not recorded: the throttles bound them, and a log of made-up names
    would only bury the attacks on real accounts.
    """
    audit.record(db, action="sign_in_failed", target=username, client_ip=_address(client_ip))
    if locked_for is not None:
        audit.record(
            db,
            action="sign_in_locked",
            target=username,
            detail=f"sign-ins wait {math.ceil(locked_for)} s",
            client_ip=_address(client_ip),
        )


def _rehashed(user: User, password: str) -> str | None:
    """A fresh hash when the stored one uses outdated parameters."""
    if security.needs_rehash(user.password_hash):
        return security.hash_password(password)
    return None


@router.get(
    "/me",
    summary="Get the acting user",
    description="The account named by the `X-User-Id` header.",
    responses={404: {"model": ErrorDetail, "description": "Unknown user"}},
)
async def get_current_user(user_id: CurrentUserId, db: ReadSession) -> UserPublic:
    return UserPublic.model_validate(await users.get_user(db, user_id=user_id))

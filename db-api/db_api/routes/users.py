"""Accounts: sign-up, password check at login, and the acting user's profile."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, status

from db_api import crud, security
from db_api.deps import CurrentUserId, ServiceAuth, SessionDep, SettingsDep
from db_api.errors import InvalidCredentialsError, TooManyLoginFailuresError
from db_api.models import User
from db_api.schemas import ErrorDetail, LoginAttempt, UserCreate, UserPublic

router = APIRouter(
    prefix="/users",
    tags=["users"],
    dependencies=[ServiceAuth],
    responses={401: {"model": ErrorDetail, "description": "Missing or invalid service token"}},
)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create an account",
    description="Stores the password as an argon2id hash. Usernames are unique regardless of "
    "case: `Alice` is taken once `alice` exists.",
    responses={409: {"model": ErrorDetail, "description": "Username already taken"}},
)
def create_user(body: UserCreate, session: SessionDep) -> UserPublic:
    user = crud.create_user(
        session, username=body.username, password_hash=security.hash_password(body.password)
    )
    return UserPublic.model_validate(user)


@router.post(
    "/verify",
    summary="Check a username and password",
    description="Answers the account when the password matches. A wrong username and a wrong "
    "password get the same 401. Failures are counted per account from one client address "
    "(`client_ip`, as the web tier saw it): after `LOGIN_MAX_FAILURES` in a row that account "
    "answers 429 to that address for `LOGIN_LOCK_SECONDS`, so nobody can lock the owner out "
    "from elsewhere. And per client address: after `LOGIN_IP_MAX_FAILURES` failures within "
    "`LOGIN_IP_WINDOW_SECONDS` on any accounts, the address answers 429 for "
    "`LOGIN_LOCK_SECONDS`. A 429 carries `Retry-After` (seconds), even for the right password.",
    responses={
        401: {"model": ErrorDetail, "description": "Wrong username or password"},
        429: {
            "model": ErrorDetail,
            "description": "Too many failed logins",
            "headers": {"Retry-After": {"description": "Seconds until the next attempt"}},
        },
    },
)
def verify_user(body: LoginAttempt, session: SessionDep, settings: SettingsDep) -> UserPublic:
    client_key, account_key = security.login_throttle_keys(
        username=body.username, client=security.client_key(body.client_ip)
    )
    # The row lock serialises concurrent attempts on one account, so none goes uncounted.
    user = crud.find_user_by_username(session, username=body.username, for_update=True)
    now = datetime.now(UTC)
    locked_seconds = crud.login_locked_seconds(session, keys=(client_key, account_key), now=now)
    if locked_seconds is not None:
        raise TooManyLoginFailuresError(locked_seconds)
    if user is None:
        security.spend_verification_time(body.password)
    if user is None or not security.verify_password(user.password_hash, body.password):
        crud.record_login_failure(
            session,
            key=account_key,
            now=now,
            max_failures=settings.login_max_failures,
            lock_seconds=settings.login_lock_seconds,
        )
        crud.record_login_failure(
            session,
            key=client_key,
            now=now,
            max_failures=settings.login_ip_max_failures,
            lock_seconds=settings.login_lock_seconds,
            window_seconds=settings.login_ip_window_seconds,
        )
        raise InvalidCredentialsError()
    # Only the account's count starts over: a success must not buy an address more guesses
    # at other accounts.
    crud.clear_login_failures(session, key=account_key)
    crud.record_login_success(session, user=user, new_password_hash=_rehashed(user, body.password))
    return UserPublic.model_validate(user)


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
def get_current_user(user_id: CurrentUserId, session: SessionDep) -> UserPublic:
    return UserPublic.model_validate(crud.get_user(session, user_id=user_id))

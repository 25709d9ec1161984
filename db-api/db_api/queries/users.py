"""Accounts: sign-up, lookups by id and by name, the password rehash at sign-in, and the
owner's own changes: a new password, deleting the account."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db_api.errors import (
    LinkNotFoundError,
    SignUpClosedError,
    UsernameTakenError,
    UserNotFoundError,
)
from db_api.models import Chat, SignIn, User
from db_api.queries import audit, links
from db_api.queries.rate_limits import forget_buckets

# Held while a sign-up decides whether it is the first account (the admin): two first
# sign-ups at once must not both become admins.
FIRST_ACCOUNT_LOCK = 0x5349474E  # "SIGN"


async def create_user(
    db: AsyncSession,
    *,
    username: str,
    password_hash: str,
    mode: str,
    invite_token_hash: str | None = None,
    client_ip: str | None = None,
) -> User:
    """A new account under the sign-up policy `mode`; the install's first one is its admin.

    `open` and a valid invite make an active account, `approval` a pending one; `closed`
    without a valid invite is refused (SignUpClosedError), as is an invalid invite in any
    mode (LinkNotFoundError). The invite is used up in the same transaction.
    """
    await db.execute(select(func.pg_advisory_xact_lock(FIRST_ACCOUNT_LOCK)))
    if await find_user_by_username(db, username=username) is not None:
        raise UsernameTakenError()
    first = await db.scalar(select(User.id).limit(1)) is None
    invited = invite_token_hash is not None and await links.use_invite(
        db, token_hash=invite_token_hash
    )
    if invite_token_hash is not None and not invited and not first:
        raise LinkNotFoundError()
    if first:
        role, status = "admin", "active"
    elif invited or mode == "open":
        role, status = "user", "active"
    elif mode == "approval":
        role, status = "user", "pending"
    else:
        raise SignUpClosedError()
    user = User(username=username, password_hash=password_hash, role=role, status=status)
    db.add(user)
    how = "as the first account, the admin" if first else "with an invite" if invited else mode
    audit.record(
        db,
        action="signed_up",
        actor=username,
        target=username,
        detail=f"{how}; {status}",
        client_ip=client_ip,
    )
    try:
        await db.commit()
    except IntegrityError:
        # Two sign-ups with the same name raced past the check above.
        await db.rollback()
        raise UsernameTakenError() from None
    return user


async def get_user(db: AsyncSession, *, user_id: uuid.UUID) -> User:
    user = await db.get(User, user_id)
    if user is None:
        raise UserNotFoundError()
    return user


async def find_user_by_username(
    db: AsyncSession, *, username: str, for_update: bool = False
) -> User | None:
    """The account whose name matches regardless of case, optionally locked for a sign-in."""
    query = select(User).where(func.lower(User.username) == username.lower())
    if for_update:
        query = query.with_for_update()
    return (await db.scalars(query)).one_or_none()


async def record_login_success(
    db: AsyncSession, *, user: User, new_password_hash: str | None
) -> None:
    if new_password_hash is not None:
        user.password_hash = new_password_hash
    await db.commit()


async def lock_user(db: AsyncSession, *, user_id: uuid.UUID, with_chats: bool = False) -> User:
    """The user, its row locked until the transaction ends (a password check, then a change).

    `with_chats` locks the user's chats first, as every writer locks a chat before its
    user: a deletion, which reaches the chats through the cascade, then never waits for
    a writer that waits for it.
    """
    if with_chats:
        await db.execute(select(Chat.id).where(Chat.owner_id == user_id).with_for_update())
    query = select(User).where(User.id == user_id).with_for_update()
    user = (await db.scalars(query)).one_or_none()
    if user is None:
        raise UserNotFoundError()
    return user


async def change_password(
    db: AsyncSession, *, user: User, password_hash: str, keep_token_hash: str | None
) -> None:
    """Store the new hash and end every other sign-in of the user, in one transaction."""
    user.password_hash = password_hash
    others = delete(SignIn).where(SignIn.user_id == user.id)
    if keep_token_hash is not None:
        others = others.where(SignIn.token_hash != keep_token_hash)
    await db.execute(others)
    await db.commit()


async def delete_user(db: AsyncSession, *, user: User) -> None:
    """Delete the account; its foreign keys' ON DELETE CASCADE removes its sign-ins,
    chats, messages and reply jobs in the same statement."""
    await forget_buckets(db, user_id=user.id)
    await db.execute(delete(User).where(User.id == user.id))
    await db.commit()

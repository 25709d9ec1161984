"""Accounts: sign-up, lookups by id and by name, and the password rehash at sign-in."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db_api.errors import UsernameTakenError, UserNotFoundError
from db_api.models import User


async def create_user(db: AsyncSession, *, username: str, password_hash: str) -> User:
    if await find_user_by_username(db, username=username) is not None:
        raise UsernameTakenError()
    user = User(username=username, password_hash=password_hash)
    db.add(user)
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

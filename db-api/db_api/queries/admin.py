"""What an admin sees of and does to accounts: never the content of anyone's chats.

The list counts chats and messages and sums their stored size, but no query here reads
a title or a message's text.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import NamedTuple

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db_api.errors import (
    AccountNotActiveError,
    AdminSelfChangeError,
    LastAdminError,
    NotAdminError,
    UserNotFoundError,
)
from db_api.models import Chat, Message, SignIn, User
from db_api.queries.rate_limits import forget_buckets


class UserSummary(NamedTuple):
    user: User
    chats: int
    messages: int
    storage_bytes: int


# Admins' changes to accounts and settings take turns: two admins revoking each other at
# once must not leave the install with none.
ADMIN_CHANGES_LOCK = 0x41444D4E  # "ADMN"


async def hold_admin_changes(db: AsyncSession) -> None:
    """Wait for other changes to admins, and keep them out until the transaction ends.

    Taken before any account's row, by every change that could remove an admin.
    """
    await db.execute(select(func.pg_advisory_xact_lock(ADMIN_CHANGES_LOCK)))


async def require_admin(db: AsyncSession, *, user_id: uuid.UUID, for_change: bool) -> User:
    """The acting user, if an active admin; anyone else is refused (NotAdminError).

    Read from PostgreSQL on every admin request: a revoked admin loses access at once,
    whatever chat-ui believes. `for_change` first waits for other admins' changes.
    """
    if for_change:
        await hold_admin_changes(db)
    user = await db.get(User, user_id, populate_existing=True)
    if user is None or user.role != "admin" or user.status != "active":
        raise NotAdminError()
    return user


async def list_users(
    db: AsyncSession,
    *,
    search: str | None = None,
    status: str | None = None,
    user_id: uuid.UUID | None = None,
    offset: int = 0,
    limit: int = 1,
) -> tuple[Sequence[UserSummary], int]:
    """Accounts, pending ones first then newest first, with their usage; and the total."""
    chats = (
        select(
            Chat.owner_id,
            func.count().label("chats"),
            func.sum(func.octet_length(Chat.title)).label("bytes"),
        )
        .group_by(Chat.owner_id)
        .subquery()
    )
    messages = (
        select(
            Chat.owner_id,
            func.count().label("messages"),
            func.sum(func.octet_length(Message.content)).label("bytes"),
        )
        .join(Message, Message.chat_id == Chat.id)
        .group_by(Chat.owner_id)
        .subquery()
    )
    filters = []
    if search:
        filters.append(func.lower(User.username).contains(search.lower(), autoescape=True))
    if status:
        filters.append(User.status == status)
    if user_id is not None:
        filters.append(User.id == user_id)
    query = (
        select(
            User,
            func.coalesce(chats.c.chats, 0),
            func.coalesce(messages.c.messages, 0),
            func.coalesce(chats.c.bytes, 0) + func.coalesce(messages.c.bytes, 0),
        )
        .outerjoin(chats, chats.c.owner_id == User.id)
        .outerjoin(messages, messages.c.owner_id == User.id)
        .where(*filters)
        .order_by((User.status == "pending").desc(), User.created_at.desc(), User.id)
        .offset(offset)
        .limit(limit)
    )
    rows = (await db.execute(query)).all()
    total = await db.scalar(select(func.count()).select_from(User).where(*filters)) or 0
    return [UserSummary(row[0], int(row[1]), int(row[2]), int(row[3])) for row in rows], total


async def lock_target(db: AsyncSession, *, admin: User, user_id: uuid.UUID) -> User:
    """The account an admin acts on, locked; never the admin's own (AdminSelfChangeError)."""
    if user_id == admin.id:
        raise AdminSelfChangeError()
    user = (
        await db.scalars(select(User).where(User.id == user_id).with_for_update())
    ).one_or_none()
    if user is None:
        raise UserNotFoundError()
    return user


async def set_status(db: AsyncSession, *, user: User, status: str) -> str:
    """Approve, disable or enable; a disabled account is signed out everywhere at once.

    Answers the status the account had.
    """
    before = user.status
    if before == status:
        return before
    if user.role == "admin" and status != "active":
        await keep_an_admin(db, leaving=user)
    await db.execute(update(User).where(User.id == user.id).values(status=status))
    if status == "disabled":
        await db.execute(delete(SignIn).where(SignIn.user_id == user.id))
    return before


async def set_role(db: AsyncSession, *, user: User, role: str) -> str:
    """Make admin or revoke; only an active account can be made admin. Answers the old role."""
    before = user.role
    if before == role:
        return before
    if role == "admin" and user.status != "active":
        raise AccountNotActiveError()
    if before == "admin":
        await keep_an_admin(db, leaving=user)
    await db.execute(update(User).where(User.id == user.id).values(role=role))
    return before


async def delete_user(db: AsyncSession, *, user: User) -> None:
    """Delete the account with everything that is its (the foreign keys' cascades)."""
    if user.role == "admin":
        await keep_an_admin(db, leaving=user)
    await db.execute(select(Chat.id).where(Chat.owner_id == user.id).with_for_update())
    await forget_buckets(db, user_id=user.id)
    await db.execute(delete(User).where(User.id == user.id))


async def keep_an_admin(db: AsyncSession, *, leaving: User) -> None:
    """Refuse (LastAdminError) when `leaving` is the install's last active admin.

    The caller holds `hold_admin_changes`, so no other change to admins runs meanwhile.
    """
    others = select(func.count()).where(
        User.role == "admin", User.status == "active", User.id != leaving.id
    )
    if not await db.scalar(others):
        raise LastAdminError()

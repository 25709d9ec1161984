"""Chats: the owner check every chat query uses, and creating, renaming, deleting, listing."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, and_, bindparam, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db_api.config import RateLimit
from db_api.database import DriverConnection, HotRead
from db_api.errors import ChatNotFoundError, UserNotFoundError
from db_api.models import Chat
from db_api.queries.rate_limits import take_user_token
from db_api.queries.users import get_user
from db_api.schemas import ChatPublic

# UPDATE ... RETURNING an entity loads the new row into the object already in the session
# (once the result is fetched), so no extra SELECT is needed afterwards.
REFRESH_FROM_RETURNING = {"synchronize_session": False, "populate_existing": True}
# What the hot reads select: exactly the response model's fields, in its order.
PUBLIC_COLUMNS = tuple(Chat.__table__.c[name] for name in ChatPublic.model_fields)


def owned_by(
    owner_id: uuid.UUID | BindParameter[uuid.UUID], chat_id: uuid.UUID | BindParameter[uuid.UUID]
) -> ColumnElement[bool]:
    """The owner check: this chat, and only if it is the owner's.

    Someone else's chat is then exactly as missing as no chat at all.
    """
    return and_(Chat.id == chat_id, Chat.owner_id == owner_id)


async def get_chat(
    db: AsyncSession, *, owner_id: uuid.UUID, chat_id: uuid.UUID, for_update: bool = False
) -> Chat:
    query = select(Chat).where(owned_by(owner_id, chat_id))
    if for_update:
        query = query.with_for_update()
    chat = (await db.scalars(query)).one_or_none()
    if chat is None:
        raise ChatNotFoundError()
    return chat


async def create_chat(
    db: AsyncSession,
    *,
    owner_id: uuid.UUID,
    title: str,
    chat_limit: RateLimit,
    request_id: uuid.UUID | None = None,
) -> tuple[Chat, bool]:
    """The new chat and True; or, when `request_id` made one already, that chat and False.

    A new chat takes a token of `chat_limit`: RateLimitedError when it is used up.
    """
    await get_user(db, user_id=owner_id)
    if request_id is not None:
        existing = await _chat_by_request_id(db, owner_id=owner_id, request_id=request_id)
        if existing is not None:
            return existing, False
    chat = Chat(owner_id=owner_id, title=title, request_id=request_id)
    db.add(chat)
    try:
        await db.flush()
    except IntegrityError as error:
        await db.rollback()
        if violated_constraint(error) == "uq_chats_owner_id_request_id" and request_id:
            # The same form, sent twice at once: the other insert won; answer its chat.
            existing = await _chat_by_request_id(db, owner_id=owner_id, request_id=request_id)
            if existing is not None:
                return existing, False
        # Otherwise the owner vanished between the check and the insert.
        raise UserNotFoundError() from None
    # The bucket last, as in every writer (after the user's row, which the insert locks).
    await take_user_token(db, action="chat", user_id=owner_id, default=chat_limit)
    await db.commit()
    return chat, True


async def _chat_by_request_id(
    db: AsyncSession, *, owner_id: uuid.UUID, request_id: uuid.UUID
) -> Chat | None:
    query = select(Chat).where(Chat.owner_id == owner_id, Chat.request_id == request_id)
    return (await db.scalars(query)).one_or_none()


def violated_constraint(error: IntegrityError) -> str | None:
    """The name of the constraint or unique index an insert or update ran into."""
    # asyncpg's exception (under SQLAlchemy's adapter) names it directly.
    driver_error = getattr(error.orig, "__cause__", None)
    name = getattr(driver_error, "constraint_name", None)
    return name if isinstance(name, str) else None


async def rename_chat(
    db: AsyncSession, *, owner_id: uuid.UUID, chat_id: uuid.UUID, title: str
) -> Chat:
    chat = await touch_owned_chat(db, owner_id=owner_id, chat_id=chat_id, title=title)
    await db.commit()
    return chat


async def delete_chat(db: AsyncSession, *, owner_id: uuid.UUID, chat_id: uuid.UUID) -> None:
    chat = await get_chat(db, owner_id=owner_id, chat_id=chat_id)
    # The foreign key's ON DELETE CASCADE removes the messages in the same statement.
    await db.delete(chat)
    await db.commit()


async def touch_owned_chat(
    db: AsyncSession, *, owner_id: uuid.UUID, chat_id: uuid.UUID, **changes: Any
) -> Chat:
    """Mark the owner's chat as just active (and apply `changes`), locking its row.

    One statement checks ownership, takes the lock and bumps `updated_at`, which moves
    the chat to the top of the list. Every writer of a chat's messages starts here, so
    they queue up on the chat row instead of deadlocking on its messages.
    """
    chat = (
        await db.scalars(
            update(Chat)
            .where(owned_by(owner_id, chat_id))
            .values(updated_at=func.now(), **changes)
            .returning(Chat),
            execution_options=REFRESH_FROM_RETURNING,
        )
    ).one_or_none()
    if chat is None:
        raise ChatNotFoundError()
    return chat


# ---- the hot reads (see database.HotRead) ----------------------------------

_CHAT = HotRead(
    select(*PUBLIC_COLUMNS).where(owned_by(bindparam("owner_id"), bindparam("chat_id")))
)
_CHAT_PAGE = HotRead(
    select(*PUBLIC_COLUMNS)
    .where(Chat.owner_id == bindparam("owner_id"))
    .order_by(Chat.updated_at.desc(), Chat.created_at.desc(), Chat.id)
    .limit(bindparam("limit"))
    .offset(bindparam("offset"))
)
_CHAT_IDS_AFTER = HotRead(
    select(Chat.id)
    .where(Chat.owner_id == bindparam("owner_id"), Chat.id > bindparam("after"))
    .order_by(Chat.id)
    .limit(bindparam("limit"))
)
_CHAT_COUNT = HotRead(
    select(func.count()).select_from(Chat).where(Chat.owner_id == bindparam("owner_id"))
)


async def chat_row(
    connection: DriverConnection, *, owner_id: uuid.UUID, chat_id: uuid.UUID
) -> dict[str, Any] | None:
    """The owner's chat (schemas.ChatPublic), or None if it is not theirs."""
    row = await _CHAT.fetchrow(connection, owner_id=owner_id, chat_id=chat_id)
    return None if row is None else dict(row)


async def chat_rows(
    connection: DriverConnection, *, owner_id: uuid.UUID, limit: int, offset: int = 0
) -> list[dict[str, Any]]:
    """One page of the owner's chats (schemas.ChatPublic), most recently active first."""
    rows = await _CHAT_PAGE.fetch(connection, owner_id=owner_id, limit=limit, offset=offset)
    return [dict(row) for row in rows]


async def chat_count(connection: DriverConnection, *, owner_id: uuid.UUID) -> int:
    row = await _CHAT_COUNT.fetchrow(connection, owner_id=owner_id)
    return 0 if row is None else int(row[0])


async def chat_ids_after(
    connection: DriverConnection, *, owner_id: uuid.UUID, after: uuid.UUID | None, limit: int
) -> list[uuid.UUID]:
    """Up to `limit` of the owner's chat ids after `after`, in id order (for exports).

    Ids never change, so paging by them skips and repeats nothing while chats change.
    """
    # The nil UUID sorts before every other, so "after nothing" is "after it".
    start = after if after is not None else uuid.UUID(int=0)
    rows = await _CHAT_IDS_AFTER.fetch(connection, owner_id=owner_id, after=start, limit=limit)
    return [row["id"] for row in rows]

"""Messages: append, turns (a question and its reply together), edit, read, drop the tail.

Every writer locks the chat row first (`chats.touch_owned_chat`), so concurrent saves,
stops, turns and deletes queue up instead of deadlocking.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from typing import Any, NamedTuple, NoReturn

from sqlalchemy import bindparam, delete, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db_api.config import RateLimit
from db_api.database import DriverConnection, HotRead
from db_api.errors import (
    EmptyMessageContentError,
    MessageNotFoundError,
    MessageStatusConflictError,
    ReplyInOtherChatError,
    ReplyInProgressError,
    RequestAlreadyHandledError,
)
from db_api.models import Chat, Message, User
from db_api.queries import reply_jobs
from db_api.queries.chats import (
    REFRESH_FROM_RETURNING,
    get_chat,
    owned_by,
    touch_owned_chat,
    violated_constraint,
)
from db_api.queries.rate_limits import take_user_token
from db_api.schemas import MessagePublic, content_may_be_empty

# A partial unique index: at most one message per chat may be "generating".
_ONE_REPLY_AT_A_TIME = "uq_messages_chat_id_generating"
# What the hot reads select: exactly the response model's fields, in its order.
PUBLIC_COLUMNS = tuple(Message.__table__.c[name] for name in MessagePublic.model_fields)


class Keep(enum.Enum):
    """Marks an optional update field the caller left out (as opposed to setting null)."""

    KEEP = enum.auto()


KEEP = Keep.KEEP


async def _insert_messages(db: AsyncSession, rows: list[dict[str, object]]) -> Sequence[Message]:
    """Insert rows in one statement; answers the messages with ids ascending in row order."""
    # An explicit INSERT ... RETURNING of the public columns: the ORM's unit of work would
    # also send back each row's generated search vector, as large as the text itself.
    statement = insert(Message).returning(Message, sort_by_parameter_order=True)
    try:
        return (await db.scalars(statement, rows)).all()
    except IntegrityError as error:
        await _raise_if_reply_in_progress(db, error)
        raise


async def _raise_if_reply_in_progress(
    db: AsyncSession, error: IntegrityError, *, current: str | None = None
) -> None:
    """Turn a second "generating" reply in a chat into a 409 rather than a 500."""
    if violated_constraint(error) == _ONE_REPLY_AT_A_TIME:
        await db.rollback()
        raise ReplyInProgressError(current=current) from None


async def _refuse_a_second_reply_of_the_user(
    db: AsyncSession, *, owner_id: uuid.UUID, chat_id: uuid.UUID, current: str | None = None
) -> None:
    """One reply being written per user, across every chat and every replica.

    Called by each writer that starts a reply, after `touch_owned_chat` (the chat's lock
    first, as everywhere). Locking the user's row makes the user's replies start one at
    a time: a second one, in another chat, waits here, then sees the first. A reply
    counts while it has a job (`reply_jobs`): being written, or waiting for a slot.
    Replies in this chat whose writer is gone are marked failed first.
    """
    await reply_jobs.interrupt_lapsed_replies(db, chat_id=chat_id)
    await db.execute(select(User.id).where(User.id == owner_id).with_for_update())
    await reply_jobs.forget_lapsed_writers(db, owner_id=owner_id)
    busy_chat_id = await reply_jobs.busy_chat_of(db, owner_id=owner_id, other_than=chat_id)
    if busy_chat_id is not None:
        await db.rollback()
        raise ReplyInOtherChatError(busy_chat_id=busy_chat_id, current=current)


async def add_message(
    db: AsyncSession,
    *,
    owner_id: uuid.UUID,
    chat_id: uuid.UUID,
    role: str,
    content: str,
    status: str,
    reply_limit: RateLimit,
) -> Message:
    """Append a message and mark the chat as just active.

    A reply started empty ("generating") takes a token of `reply_limit`.
    """
    # Bumping first also locks the chat row, so a concurrent delete cannot orphan the insert.
    chat = await touch_owned_chat(db, owner_id=owner_id, chat_id=chat_id)
    if status == "generating":
        await _refuse_a_second_reply_of_the_user(db, owner_id=owner_id, chat_id=chat_id)
        await take_user_token(db, action="reply", user_id=owner_id, default=reply_limit)
    (message,) = await _insert_messages(
        db, [{"chat_id": chat.id, "role": role, "content": content, "status": status}]
    )
    if status == "generating":
        await reply_jobs.add_job(db, reply=message, owner_id=owner_id)
    await db.commit()
    return message


class Turn(NamedTuple):
    chat: Chat
    user_message: Message
    reply: Message
    # False: the same request id had stored this turn before, and nothing was written now.
    created: bool
    # The model slot granted with the turn (see reply_jobs.grant_if_free), if any.
    slot: int | None = None


async def start_turn(
    db: AsyncSession,
    *,
    owner_id: uuid.UUID,
    chat_id: uuid.UUID,
    content: str,
    title: str | None,
    reply_limit: RateLimit,
    request_id: uuid.UUID | None = None,
    replace_after_id: int | None = None,
    slots: int | None = None,
) -> Turn:
    """Add the user's message and an empty assistant reply in one transaction.

    `title` renames the chat only when the chat has no user message yet, so the first
    question can name a chat while later ones leave a chosen title alone. A
    `request_id` already used in this chat answers that turn and writes nothing.
    With `replace_after_id` (an edit of the last message) the chat's messages after that
    id are deleted first, in the same transaction. Raises ReplyInProgressError while
    another reply in the chat is being written, ReplyInOtherChatError while one in
    another of the user's chats is, RateLimitedError when `reply_limit` is used up (a
    replayed request id takes no token). With `slots` (the model server's), the reply
    gets a slot at once when one is free for it.
    """
    if request_id is not None:
        replayed = await _replayed_turn(
            db, owner_id=owner_id, chat_id=chat_id, request_id=request_id
        )
        if replayed is not None:
            return replayed
    # The bump locks the chat row: a concurrent turn waits here, and the checks below,
    # new statements with a new snapshot, then see that turn's messages.
    chat = await touch_owned_chat(db, owner_id=owner_id, chat_id=chat_id)
    if request_id is not None and await _user_message_by_request_id(
        db, owner_id=owner_id, chat_id=chat_id, request_id=request_id
    ):
        # The same form sent twice at once: the first one stored it while this one waited.
        await db.rollback()
        replayed = await _replayed_turn(
            db, owner_id=owner_id, chat_id=chat_id, request_id=request_id
        )
        if replayed is not None:
            return replayed
    await _refuse_a_second_reply_of_the_user(db, owner_id=owner_id, chat_id=chat_id)
    await take_user_token(db, action="reply", user_id=owner_id, default=reply_limit)
    if replace_after_id is not None:
        await db.execute(
            delete(Message).where(Message.chat_id == chat.id, Message.id > replace_after_id),
            execution_options={"synchronize_session": False},
        )
    if title is not None:
        has_user_message = exists().where(Message.chat_id == chat.id, Message.role == "user")
        # No row back (the chat already has a user message) leaves the title as it was.
        await db.execute(
            update(Chat)
            .where(Chat.id == chat.id, ~has_user_message)
            .values(title=title)
            .returning(Chat),
            execution_options=REFRESH_FROM_RETURNING,
        )
    user_row = {"chat_id": chat.id, "role": "user", "content": content, "status": "complete"}
    user_message, reply = await _insert_messages(
        db,
        [
            {**user_row, "request_id": request_id},
            {"chat_id": chat.id, "role": "assistant", "content": "", "status": "generating"},
        ],
    )
    await reply_jobs.add_job(db, reply=reply, owner_id=owner_id)
    slot = await reply_jobs.grant_if_free(db, reply=reply, slots=slots) if slots else None
    await db.commit()
    return Turn(chat, user_message, reply, created=True, slot=slot)


async def _user_message_by_request_id(
    db: AsyncSession, *, owner_id: uuid.UUID, chat_id: uuid.UUID, request_id: uuid.UUID
) -> Message | None:
    query = (
        select(Message)
        .join(Chat, Chat.id == Message.chat_id)
        .where(owned_by(owner_id, chat_id), Message.request_id == request_id)
    )
    return (await db.scalars(query)).one_or_none()


async def _replayed_turn(
    db: AsyncSession, *, owner_id: uuid.UUID, chat_id: uuid.UUID, request_id: uuid.UUID
) -> Turn | None:
    """The turn a request id stored before: its user message and the reply after it."""
    user_message = await _user_message_by_request_id(
        db, owner_id=owner_id, chat_id=chat_id, request_id=request_id
    )
    if user_message is None:
        return None
    next_reply = (
        select(Message)
        .where(
            Message.chat_id == chat_id,
            Message.id > user_message.id,
            Message.role == "assistant",
        )
        .order_by(Message.id)
        .limit(1)
    )
    reply = (await db.scalars(next_reply)).one_or_none()
    if reply is None:
        # Only a caller deleting replies by hand gets here; the turn cannot be answered.
        raise RequestAlreadyHandledError()
    chat = await get_chat(db, owner_id=owner_id, chat_id=chat_id)
    return Turn(chat, user_message, reply, created=False)


async def get_message(
    db: AsyncSession, *, owner_id: uuid.UUID, chat_id: uuid.UUID, message_id: int
) -> Message:
    """The message if it is in that chat and the chat belongs to the owner."""
    query = (
        select(Message)
        .join(Chat, Chat.id == Message.chat_id)
        .where(Message.id == message_id, owned_by(owner_id, chat_id))
    )
    message = (await db.scalars(query)).one_or_none()
    if message is None:
        await _raise_message_not_found(db, owner_id=owner_id, chat_id=chat_id)
    return message


async def _raise_message_not_found(
    db: AsyncSession, *, owner_id: uuid.UUID, chat_id: uuid.UUID
) -> NoReturn:
    # Only a miss pays for telling "no such chat" from "no such message".
    await get_chat(db, owner_id=owner_id, chat_id=chat_id)
    raise MessageNotFoundError()


async def update_message(
    db: AsyncSession,
    *,
    owner_id: uuid.UUID,
    chat_id: uuid.UUID,
    message_id: int,
    content: str | None = None,
    status: str | None = None,
    context_start_id: int | Keep | None = KEEP,
    if_status: str | None = None,
    reply_limit: RateLimit,
) -> Message:
    """Change a message's text, status and/or context start; the chat counts as active.

    With `if_status`, nothing changes unless the message is currently in that status.
    Setting "generating" again (a retry) takes a token of `reply_limit`.
    """
    await touch_owned_chat(db, owner_id=owner_id, chat_id=chat_id)
    message = (
        await db.scalars(
            select(Message).where(Message.id == message_id, Message.chat_id == chat_id)
        )
    ).one_or_none()
    if message is None:
        raise MessageNotFoundError()
    if if_status is not None and message.status != if_status:
        raise MessageStatusConflictError(expected=if_status, current=message.status)
    if status == "generating" and message.status != "generating":
        await _refuse_a_second_reply_of_the_user(
            db, owner_id=owner_id, chat_id=chat_id, current=message.status
        )
        await take_user_token(db, action="reply", user_id=owner_id, default=reply_limit)
    # Read now: the UPDATE ... RETURNING below refreshes `message` itself.
    old_status = message.status
    new_content = message.content if content is None else content
    new_status = old_status if status is None else status
    if not new_content and not content_may_be_empty(role=message.role, status=new_status):
        raise EmptyMessageContentError()
    values: dict[str, Any] = {
        "content": new_content,
        "status": new_status,
        "updated_at": func.now(),
    }
    if context_start_id is not KEEP:
        values["context_start_id"] = context_start_id
    try:
        updated = (
            await db.scalars(
                update(Message).where(Message.id == message.id).values(values).returning(Message),
                execution_options=REFRESH_FROM_RETURNING,
            )
        ).one()
    except IntegrityError as error:
        await _raise_if_reply_in_progress(db, error, current=old_status)
        raise
    if new_status != old_status:
        if new_status == "generating":
            await reply_jobs.add_job(db, reply=updated, owner_id=owner_id)
        elif old_status == "generating":
            await reply_jobs.end_job(db, message_id=message.id)
    await db.commit()
    return updated


async def delete_messages_after(
    db: AsyncSession, *, owner_id: uuid.UUID, chat_id: uuid.UUID, after_id: int
) -> None:
    """Delete the chat's messages whose id is greater than `after_id`."""
    # Locked like every other message writer (chat first), so this cannot deadlock with them.
    chat = await get_chat(db, owner_id=owner_id, chat_id=chat_id, for_update=True)
    await db.execute(
        delete(Message).where(Message.chat_id == chat.id, Message.id > after_id),
        execution_options={"synchronize_session": False},
    )
    await db.commit()


# ---- the hot read (see database.HotRead) -----------------------------------

_MESSAGES = HotRead(
    select(*PUBLIC_COLUMNS).where(Message.chat_id == bindparam("chat_id")).order_by(Message.id)
)


async def message_rows(connection: DriverConnection, *, chat_id: uuid.UUID) -> list[dict[str, Any]]:
    """The chat's messages (schemas.MessagePublic) in the order they were added.

    The caller has checked that the chat is the acting user's.
    """
    return [dict(row) for row in await _MESSAGES.fetch(connection, chat_id=chat_id)]

"""Queries on users, chats and messages. Every chat query is scoped to its owner."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db_api.errors import (
    ChatNotFoundError,
    EmptyMessageContentError,
    MessageNotFoundError,
    MessageStatusConflictError,
    UsernameTakenError,
    UserNotFoundError,
)
from db_api.models import Chat, Message, User
from db_api.schemas import content_may_be_empty

# UPDATE ... RETURNING an entity loads the new row into the object already in the session
# (once the result is fetched), so no extra SELECT is needed afterwards.
_REFRESH_FROM_RETURNING = {"synchronize_session": False, "populate_existing": True}

# ---- users ----------------------------------------------------------------


def create_user(session: Session, *, username: str, password_hash: str) -> User:
    if find_user_by_username(session, username=username) is not None:
        raise UsernameTakenError()
    user = User(username=username, password_hash=password_hash)
    session.add(user)
    try:
        session.commit()
    except IntegrityError:
        # Two sign-ups with the same name raced past the check above.
        session.rollback()
        raise UsernameTakenError() from None
    return user


def get_user(session: Session, *, user_id: uuid.UUID) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise UserNotFoundError()
    return user


def find_user_by_username(
    session: Session, *, username: str, for_update: bool = False
) -> User | None:
    """The account whose name matches regardless of case, optionally locked for a login."""
    query = select(User).where(func.lower(User.username) == username.lower())
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).one_or_none()


def record_login_failure(
    session: Session, *, user: User, now: datetime, max_failures: int, lock_seconds: int
) -> None:
    """Count a failed login; the last allowed failure locks the account and starts over."""
    user.failed_login_count += 1
    if user.failed_login_count >= max_failures:
        user.locked_until = now + timedelta(seconds=lock_seconds)
        user.failed_login_count = 0
    session.commit()


def record_login_success(session: Session, *, user: User, new_password_hash: str | None) -> None:
    user.failed_login_count = 0
    user.locked_until = None
    if new_password_hash is not None:
        user.password_hash = new_password_hash
    session.commit()


# ---- chats ----------------------------------------------------------------


def list_chats(
    session: Session, *, owner_id: uuid.UUID, limit: int, offset: int
) -> tuple[Sequence[Chat], int]:
    """One page of the owner's chats, most recently active first, and the total count."""
    total = session.scalar(select(func.count()).select_from(Chat).where(Chat.owner_id == owner_id))
    chats = session.scalars(
        select(Chat)
        .where(Chat.owner_id == owner_id)
        .order_by(Chat.updated_at.desc(), Chat.created_at.desc(), Chat.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return chats, total or 0


def create_chat(session: Session, *, owner_id: uuid.UUID, title: str) -> Chat:
    get_user(session, user_id=owner_id)
    chat = Chat(owner_id=owner_id, title=title)
    session.add(chat)
    try:
        session.commit()
    except IntegrityError:
        # The owner vanished between the check and the insert.
        session.rollback()
        raise UserNotFoundError() from None
    return chat


def get_chat(
    session: Session, *, owner_id: uuid.UUID, chat_id: uuid.UUID, for_update: bool = False
) -> Chat:
    """The chat if it belongs to the owner; someone else's chat is as missing as no chat."""
    query = select(Chat).where(Chat.id == chat_id, Chat.owner_id == owner_id)
    if for_update:
        query = query.with_for_update()
    chat = session.scalars(query).one_or_none()
    if chat is None:
        raise ChatNotFoundError()
    return chat


def rename_chat(session: Session, *, owner_id: uuid.UUID, chat_id: uuid.UUID, title: str) -> Chat:
    chat = get_chat(session, owner_id=owner_id, chat_id=chat_id, for_update=True)
    chat.title = title
    _touch_chat(session, chat_id=chat.id)
    session.commit()
    session.refresh(chat)
    return chat


def delete_chat(session: Session, *, owner_id: uuid.UUID, chat_id: uuid.UUID) -> None:
    chat = get_chat(session, owner_id=owner_id, chat_id=chat_id)
    # The foreign key's ON DELETE CASCADE removes the messages in the same statement.
    session.delete(chat)
    session.commit()


def _touch_chat(session: Session, *, chat_id: uuid.UUID) -> None:
    """Mark the chat as just active, which moves it to the top of the list."""
    session.execute(update(Chat).where(Chat.id == chat_id).values(updated_at=func.now()))


def _touch_owned_chat(session: Session, *, owner_id: uuid.UUID, chat_id: uuid.UUID) -> Chat:
    """Mark the owner's chat as just active and lock its row for this transaction.

    One statement checks ownership, takes the lock and bumps `updated_at`.
    """
    chat = session.scalars(
        update(Chat)
        .where(Chat.id == chat_id, Chat.owner_id == owner_id)
        .values(updated_at=func.now())
        .returning(Chat),
        execution_options=_REFRESH_FROM_RETURNING,
    ).one_or_none()
    if chat is None:
        raise ChatNotFoundError()
    return chat


# ---- messages -------------------------------------------------------------


class Keep(enum.Enum):
    """Marks an optional update field the caller left out (as opposed to setting null)."""

    KEEP = enum.auto()


KEEP = Keep.KEEP


def list_messages(session: Session, *, chat_id: uuid.UUID) -> Sequence[Message]:
    return session.scalars(
        select(Message).where(Message.chat_id == chat_id).order_by(Message.id)
    ).all()


def _insert_messages(session: Session, rows: list[dict[str, object]]) -> Sequence[Message]:
    """Insert rows in one statement; answers the messages with ids ascending in row order."""
    # An explicit INSERT ... RETURNING of the public columns: the ORM's unit of work would
    # also send back each row's generated search vector, as large as the text itself.
    return session.scalars(
        insert(Message).returning(Message, sort_by_parameter_order=True), rows
    ).all()


def add_message(
    session: Session,
    *,
    owner_id: uuid.UUID,
    chat_id: uuid.UUID,
    role: str,
    content: str,
    status: str,
) -> Message:
    """Append a message and mark the chat as just active."""
    # Bumping first also locks the chat row, so a concurrent delete cannot orphan the insert.
    chat = _touch_owned_chat(session, owner_id=owner_id, chat_id=chat_id)
    (message,) = _insert_messages(
        session, [{"chat_id": chat.id, "role": role, "content": content, "status": status}]
    )
    session.commit()
    return message


def start_turn(
    session: Session, *, owner_id: uuid.UUID, chat_id: uuid.UUID, content: str, title: str | None
) -> tuple[Chat, Message, Message]:
    """Add the user's message and an empty assistant reply in one transaction.

    `title` renames the chat only when the chat has no user message yet, so the first
    question can name a chat while later ones leave a chosen title alone.
    """
    # The bump locks the chat row: a concurrent turn waits here, and the check below,
    # a new statement with a new snapshot, then sees that turn's user message.
    chat = _touch_owned_chat(session, owner_id=owner_id, chat_id=chat_id)
    if title is not None:
        has_user_message = exists().where(Message.chat_id == chat.id, Message.role == "user")
        # No row back (the chat already has a user message) leaves the title as it was.
        session.scalars(
            update(Chat)
            .where(Chat.id == chat.id, ~has_user_message)
            .values(title=title)
            .returning(Chat),
            execution_options=_REFRESH_FROM_RETURNING,
        ).one_or_none()
    user_message, reply = _insert_messages(
        session,
        [
            {"chat_id": chat.id, "role": "user", "content": content, "status": "complete"},
            {"chat_id": chat.id, "role": "assistant", "content": "", "status": "generating"},
        ],
    )
    session.commit()
    return chat, user_message, reply


def get_message(
    session: Session, *, owner_id: uuid.UUID, chat_id: uuid.UUID, message_id: int
) -> Message:
    """The message if it is in that chat and the chat belongs to the owner."""
    message = session.scalars(
        select(Message)
        .join(Chat, Chat.id == Message.chat_id)
        .where(Message.id == message_id, Message.chat_id == chat_id, Chat.owner_id == owner_id)
    ).one_or_none()
    if message is None:
        # Only a miss pays for telling "no such chat" from "no such message".
        get_chat(session, owner_id=owner_id, chat_id=chat_id)
        raise MessageNotFoundError()
    return message


def update_message(
    session: Session,
    *,
    owner_id: uuid.UUID,
    chat_id: uuid.UUID,
    message_id: int,
    content: str | None = None,
    status: str | None = None,
    context_start_id: int | Keep | None = KEEP,
    if_status: str | None = None,
) -> Message:
    """Change a message's text, status and/or context start; the chat counts as active.

    With `if_status`, nothing changes unless the message is currently in that status.
    """
    # Every writer locks the chat row before any of its messages, so concurrent saves,
    # stops, turns and deletes queue up instead of deadlocking.
    _touch_owned_chat(session, owner_id=owner_id, chat_id=chat_id)
    message = session.scalars(
        select(Message).where(Message.id == message_id, Message.chat_id == chat_id)
    ).one_or_none()
    if message is None:
        raise MessageNotFoundError()
    if if_status is not None and message.status != if_status:
        raise MessageStatusConflictError(expected=if_status, current=message.status)
    new_content = message.content if content is None else content
    new_status = message.status if status is None else status
    if not new_content and not content_may_be_empty(role=message.role, status=new_status):
        raise EmptyMessageContentError()
    values: dict[str, object] = {
        "content": new_content,
        "status": new_status,
        "updated_at": func.now(),
    }
    if context_start_id is not KEEP:
        values["context_start_id"] = context_start_id
    updated = session.scalars(
        update(Message).where(Message.id == message.id).values(values).returning(Message),
        execution_options=_REFRESH_FROM_RETURNING,
    ).one()
    session.commit()
    return updated


def delete_messages_after(
    session: Session, *, owner_id: uuid.UUID, chat_id: uuid.UUID, after_id: int
) -> None:
    """Delete the chat's messages whose id is greater than `after_id`."""
    # Locked like every other message writer (chat first), so this cannot deadlock with them.
    chat = get_chat(session, owner_id=owner_id, chat_id=chat_id, for_update=True)
    session.execute(
        delete(Message).where(Message.chat_id == chat.id, Message.id > after_id),
        execution_options={"synchronize_session": False},
    )
    session.commit()

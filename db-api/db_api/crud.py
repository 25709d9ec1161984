"""Queries on users, chats and messages. Every chat query is scoped to its owner."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db_api.errors import (
    ChatNotFoundError,
    EmptyMessageContentError,
    MessageNotFoundError,
    UsernameTakenError,
    UserNotFoundError,
)
from db_api.models import Chat, Message, User
from db_api.schemas import content_may_be_empty

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


# ---- messages -------------------------------------------------------------


def list_messages(session: Session, *, chat_id: uuid.UUID) -> Sequence[Message]:
    return session.scalars(
        select(Message).where(Message.chat_id == chat_id).order_by(Message.id)
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
    # Locking the chat row keeps a concurrent delete from orphaning the insert.
    chat = get_chat(session, owner_id=owner_id, chat_id=chat_id, for_update=True)
    message = Message(chat_id=chat.id, role=role, content=content, status=status)
    session.add(message)
    _touch_chat(session, chat_id=chat.id)
    session.commit()
    session.refresh(message)
    return message


def get_message(
    session: Session,
    *,
    owner_id: uuid.UUID,
    chat_id: uuid.UUID,
    message_id: int,
    for_update: bool = False,
) -> Message:
    chat = get_chat(session, owner_id=owner_id, chat_id=chat_id, for_update=for_update)
    query = select(Message).where(Message.id == message_id, Message.chat_id == chat.id)
    if for_update:
        query = query.with_for_update()
    message = session.scalars(query).one_or_none()
    if message is None:
        raise MessageNotFoundError()
    return message


def update_message(
    session: Session,
    *,
    owner_id: uuid.UUID,
    chat_id: uuid.UUID,
    message_id: int,
    content: str | None,
    status: str | None,
) -> Message:
    """Change a message's text and/or status; both the message and its chat count as updated."""
    message = get_message(
        session, owner_id=owner_id, chat_id=chat_id, message_id=message_id, for_update=True
    )
    new_content = message.content if content is None else content
    new_status = message.status if status is None else status
    if not new_content and not content_may_be_empty(role=message.role, status=new_status):
        raise EmptyMessageContentError()
    session.execute(
        update(Message)
        .where(Message.id == message.id)
        .values(content=new_content, status=new_status, updated_at=func.now())
    )
    _touch_chat(session, chat_id=message.chat_id)
    session.commit()
    session.refresh(message)
    return message

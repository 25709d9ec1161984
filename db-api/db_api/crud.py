"""Queries on users, sessions, chats and messages. Every chat query is scoped to its owner."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, case, delete, exists, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db_api.errors import (
    ChatNotFoundError,
    EmptyMessageContentError,
    MessageNotFoundError,
    MessageStatusConflictError,
    ReplyInProgressError,
    RequestAlreadyHandledError,
    UsernameTakenError,
    UserNotFoundError,
)
from db_api.models import Chat, LoginThrottle, Message, User, UserSession
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


def record_login_success(session: Session, *, user: User, new_password_hash: str | None) -> None:
    if new_password_hash is not None:
        user.password_hash = new_password_hash
    session.commit()


# ---- login throttling -----------------------------------------------------


def login_locked_seconds(session: Session, *, keys: Sequence[str], now: datetime) -> float | None:
    """Seconds until the latest lock among `keys` ends, or None when none is locked."""
    until = session.scalar(
        select(func.max(LoginThrottle.locked_until)).where(
            LoginThrottle.key.in_(keys), LoginThrottle.locked_until > now
        )
    )
    return None if until is None else (until - now).total_seconds()


def record_login_failure(
    session: Session,
    *,
    key: str,
    now: datetime,
    max_failures: int,
    lock_seconds: int,
    window_seconds: int | None = None,
) -> None:
    """Count a failure for `key`; the last allowed one locks it and starts the count over.

    With `window_seconds`, failures older than the window no longer count. The upsert
    is atomic, so concurrent failures from several replicas are all counted.
    """
    insert_row = pg_insert(LoginThrottle).values(key=key, failures=1, window_started_at=now)
    changes: dict[str, ColumnElement[Any]] = {"failures": LoginThrottle.failures + 1}
    if window_seconds is not None:
        stale = LoginThrottle.window_started_at < now - timedelta(seconds=window_seconds)
        changes = {
            "failures": case((stale, 1), else_=LoginThrottle.failures + 1),
            "window_started_at": case((stale, now), else_=LoginThrottle.window_started_at),
        }
    failures = session.execute(
        insert_row.on_conflict_do_update(
            index_elements=[LoginThrottle.key], set_=changes
        ).returning(LoginThrottle.failures)
    ).scalar_one()
    if failures >= max_failures:
        session.execute(
            update(LoginThrottle)
            .where(LoginThrottle.key == key)
            .values(
                failures=0,
                window_started_at=now,
                locked_until=now + timedelta(seconds=lock_seconds),
            )
        )
    session.commit()


def clear_login_failures(session: Session, *, key: str) -> None:
    session.execute(delete(LoginThrottle).where(LoginThrottle.key == key))


# ---- sign-in sessions -----------------------------------------------------


def create_session(
    session: Session, *, user_id: uuid.UUID, token_hash: str, now: datetime, max_age_seconds: int
) -> UserSession:
    """Store a new sign-in for the user, and forget the user's sign-ins that have expired."""
    user = get_user(session, user_id=user_id)
    session.execute(
        delete(UserSession).where(UserSession.user_id == user.id, UserSession.expires_at <= now)
    )
    row = UserSession(
        user_id=user.id,
        token_hash=token_hash,
        created_at=now,
        last_seen_at=now,
        expires_at=now + timedelta(seconds=max_age_seconds),
    )
    session.add(row)
    session.commit()
    return row


def revoke_session(session: Session, *, token_hash: str) -> None:
    session.execute(delete(UserSession).where(UserSession.token_hash == token_hash))
    session.commit()


def revoke_user_sessions(session: Session, *, user_id: uuid.UUID) -> int:
    """Sign the user out everywhere; answers how many sign-ins ended."""
    result = session.execute(delete(UserSession).where(UserSession.user_id == user_id))
    session.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]


# ---- chats ----------------------------------------------------------------


def create_chat(
    session: Session, *, owner_id: uuid.UUID, title: str, request_id: uuid.UUID | None = None
) -> tuple[Chat, bool]:
    """The new chat and True; or, when `request_id` made one already, that chat and False."""
    get_user(session, user_id=owner_id)
    if request_id is not None:
        existing = _chat_by_request_id(session, owner_id=owner_id, request_id=request_id)
        if existing is not None:
            return existing, False
    chat = Chat(owner_id=owner_id, title=title, request_id=request_id)
    session.add(chat)
    try:
        session.commit()
    except IntegrityError as error:
        session.rollback()
        if violated_constraint(error) == "uq_chats_owner_id_request_id" and request_id:
            # The same form, sent twice at once: the other insert won; answer its chat.
            existing = _chat_by_request_id(session, owner_id=owner_id, request_id=request_id)
            if existing is not None:
                return existing, False
        # Otherwise the owner vanished between the check and the insert.
        raise UserNotFoundError() from None
    return chat, True


def _chat_by_request_id(
    session: Session, *, owner_id: uuid.UUID, request_id: uuid.UUID
) -> Chat | None:
    return session.scalars(
        select(Chat).where(Chat.owner_id == owner_id, Chat.request_id == request_id)
    ).one_or_none()


def violated_constraint(error: IntegrityError) -> str | None:
    """The name of the constraint or unique index an insert or update ran into."""
    diagnostics = getattr(error.orig, "diag", None)
    name = getattr(diagnostics, "constraint_name", None)
    return name if isinstance(name, str) else None


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
    try:
        (message,) = _insert_messages(
            session, [{"chat_id": chat.id, "role": role, "content": content, "status": status}]
        )
    except IntegrityError as error:
        _raise_if_reply_in_progress(session, error)
        raise
    session.commit()
    return message


# A partial unique index: at most one message per chat may be "generating".
_ONE_REPLY_AT_A_TIME = "uq_messages_chat_id_generating"


def _raise_if_reply_in_progress(
    session: Session, error: IntegrityError, *, current: str | None = None
) -> None:
    """Turn a second "generating" reply in a chat into a 409 rather than a 500."""
    if violated_constraint(error) == _ONE_REPLY_AT_A_TIME:
        session.rollback()
        raise ReplyInProgressError(current=current) from None


class Turn(NamedTuple):
    chat: Chat
    user_message: Message
    reply: Message
    # False: the same request id had stored this turn before, and nothing was written now.
    created: bool


def start_turn(
    session: Session,
    *,
    owner_id: uuid.UUID,
    chat_id: uuid.UUID,
    content: str,
    title: str | None,
    request_id: uuid.UUID | None = None,
) -> Turn:
    """Add the user's message and an empty assistant reply in one transaction.

    `title` renames the chat only when the chat has no user message yet, so the first
    question can name a chat while later ones leave a chosen title alone. A
    `request_id` already used in this chat answers that turn and writes nothing.
    Raises ReplyInProgressError while another reply in the chat is being written.
    """
    if request_id is not None:
        replayed = _replayed_turn(
            session, owner_id=owner_id, chat_id=chat_id, request_id=request_id
        )
        if replayed is not None:
            return replayed
    # The bump locks the chat row: a concurrent turn waits here, and the checks below,
    # new statements with a new snapshot, then see that turn's messages.
    chat = _touch_owned_chat(session, owner_id=owner_id, chat_id=chat_id)
    if request_id is not None and _user_message_by_request_id(
        session, owner_id=owner_id, chat_id=chat_id, request_id=request_id
    ):
        # The same form sent twice at once: the first one stored it while this one waited.
        session.rollback()
        replayed = _replayed_turn(
            session, owner_id=owner_id, chat_id=chat_id, request_id=request_id
        )
        if replayed is not None:
            return replayed
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
    user_row = {"chat_id": chat.id, "role": "user", "content": content, "status": "complete"}
    try:
        user_message, reply = _insert_messages(
            session,
            [
                {**user_row, "request_id": request_id},
                {"chat_id": chat.id, "role": "assistant", "content": "", "status": "generating"},
            ],
        )
    except IntegrityError as error:
        _raise_if_reply_in_progress(session, error)
        raise
    session.commit()
    return Turn(chat, user_message, reply, created=True)


def _user_message_by_request_id(
    session: Session, *, owner_id: uuid.UUID, chat_id: uuid.UUID, request_id: uuid.UUID
) -> Message | None:
    return session.scalars(
        select(Message)
        .join(Chat, Chat.id == Message.chat_id)
        .where(
            Message.chat_id == chat_id,
            Message.request_id == request_id,
            Chat.owner_id == owner_id,
        )
    ).one_or_none()


def _replayed_turn(
    session: Session, *, owner_id: uuid.UUID, chat_id: uuid.UUID, request_id: uuid.UUID
) -> Turn | None:
    """The turn a request id stored before: its user message and the reply after it."""
    user_message = _user_message_by_request_id(
        session, owner_id=owner_id, chat_id=chat_id, request_id=request_id
    )
    if user_message is None:
        return None
    reply = session.scalars(
        select(Message)
        .where(
            Message.chat_id == chat_id,
            Message.id > user_message.id,
            Message.role == "assistant",
        )
        .order_by(Message.id)
        .limit(1)
    ).one_or_none()
    if reply is None:
        # Only a caller deleting replies by hand gets here; the turn cannot be answered.
        raise RequestAlreadyHandledError()
    chat = get_chat(session, owner_id=owner_id, chat_id=chat_id)
    return Turn(chat, user_message, reply, created=False)


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
    try:
        updated = session.scalars(
            update(Message).where(Message.id == message.id).values(values).returning(Message),
            execution_options=_REFRESH_FROM_RETURNING,
        ).one()
    except IntegrityError as error:
        _raise_if_reply_in_progress(session, error, current=message.status)
        raise
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

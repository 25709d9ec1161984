"""SQLAlchemy tables: users, their sign-ins (`sessions`), their chats and the chats' messages.

Also the counters behind the limits: failed sign-ins and per-user rate limits.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Computed,
    DateTime,
    Double,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

MESSAGE_ROLES = ("system", "user", "assistant")
MESSAGE_STATUSES = ("complete", "generating", "stopped", "error")
USER_ROLES = ("user", "admin")
# pending: signed up under the approval policy, may sign in but not chat yet.
USER_STATUSES = ("active", "pending", "disabled")
SIGNUP_MODES = ("open", "approval", "closed")
LINK_KINDS = ("invite", "password_reset")

# Stable constraint names keep migrations reproducible across databases.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _in_list(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({quoted})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _timestamp() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


def _search_vector(source_column: str) -> Mapped[str | None]:
    """A full-text index of one text column, kept current by PostgreSQL itself.

    The 'simple' configuration lowercases words without stemming or stop words, so any
    language matches word for word (non-ASCII letters are lowercased only when the
    database's LC_CTYPE is a UTF-8 locale, as in native mode and compose). Deferred: only
    search reads it, and the vector of a long message is as large as its text.
    """
    return mapped_column(
        TSVECTOR,
        Computed(f"to_tsvector('simple'::regconfig, {source_column})", persisted=True),
        deferred=True,
    )


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    username: Mapped[str] = mapped_column(String(32), nullable=False)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    created_at: Mapped[datetime] = _timestamp()
    # Counts every change to the user's chats and messages; PostgreSQL triggers bump it
    # (migration 0005), so a page can tell in one indexed read whether anything changed.
    revision: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    role: Mapped[str] = mapped_column(
        String(16), nullable=False, default="user", server_default="user"
    )
    status: Mapped[str] = mapped_column(
        String(16), nullable=False, default="active", server_default="active"
    )
    # Set at sign-in and when a sign-in is seen (once a minute): for the admin's list.
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint(_in_list("role", USER_ROLES), name="role"),
        CheckConstraint(_in_list("status", USER_STATUSES), name="status"),
    )


# Usernames are unique regardless of case, so "Alice" cannot shadow "alice".
Index("uq_users_username_lower", func.lower(User.username), unique=True)


class Chat(Base):
    __tablename__ = "chats"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    created_at: Mapped[datetime] = _timestamp()
    updated_at: Mapped[datetime] = _timestamp()
    search_vector: Mapped[str | None] = _search_vector("title")
    # The id of the form that created the chat: sending that form again finds this chat.
    request_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)

    __table_args__ = (Index("uq_chats_owner_id_request_id", "owner_id", "request_id", unique=True),)


# Serves the chat list: one owner's chats, most recently active first.
Index("ix_chats_owner_id_updated_at", Chat.owner_id, Chat.updated_at.desc())
Index("ix_chats_search_vector", Chat.search_vector, postgresql_using="gin")


class Message(Base):
    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    chat_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("chats.id", ondelete="CASCADE"), nullable=False
    )
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    content: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(
        String(16), nullable=False, default="complete", server_default="complete"
    )
    created_at: Mapped[datetime] = _timestamp()
    updated_at: Mapped[datetime] = _timestamp()
    # For an assistant reply: the oldest message the model saw (null: the whole chat).
    # Informational only, so no foreign key: deleting that message must not touch the reply.
    context_start_id: Mapped[int | None] = mapped_column(BigInteger)
    search_vector: Mapped[str | None] = _search_vector("content")
    # For a user message: the id of the form that sent it, so a resend is recognised.
    request_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)

    __table_args__ = (
        CheckConstraint(_in_list("role", MESSAGE_ROLES), name="role"),
        CheckConstraint(_in_list("status", MESSAGE_STATUSES), name="status"),
        Index("ix_messages_chat_id_id", "chat_id", "id"),
        Index("ix_messages_search_vector", "search_vector", postgresql_using="gin"),
        Index("uq_messages_chat_id_request_id", "chat_id", "request_id", unique=True),
        # One reply at a time per chat, whichever replica starts it.
        Index(
            "uq_messages_chat_id_generating",
            "chat_id",
            unique=True,
            postgresql_where=text("status = 'generating'"),
        ),
    )


class ReplyJob(Base):
    """A reply being written: its writer's lease, and its model slot or place in the queue.

    The row exists exactly while the reply is "generating" (the writes that start and
    end a reply add and delete it). Its writer renews the lease every few seconds; one
    that lapsed has lost its writer. Without a slot the job waits, in `queued_at` order.
    """

    __tablename__ = "reply_jobs"

    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    owner_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    chat_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    queued_at: Mapped[datetime] = _timestamp()
    slot: Mapped[int | None] = mapped_column(SmallInteger)
    lease_expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)

    __table_args__ = (
        # One reply being written per user, whichever replica starts it: the queue is fair.
        Index("uq_reply_jobs_owner_id", "owner_id", unique=True),
        Index("uq_reply_jobs_slot", "slot", unique=True, postgresql_where=text("slot IS NOT NULL")),
    )


class ModelSlot(Base):
    """Which chat one of the model server's slots served last (its prompt is still there)."""

    __tablename__ = "model_slots"

    slot: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    chat_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    used_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class SignIn(Base):
    """A sign-in. Only a hash of the token is stored, so a database leak signs nobody in."""

    __tablename__ = "sessions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    created_at: Mapped[datetime] = _timestamp()
    last_seen_at: Mapped[datetime] = _timestamp()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    # What the account page shows, so a person can tell their sign-ins apart (0008).
    user_agent: Mapped[str | None] = mapped_column(String(200))
    # 45: the longest text form of an IPv6 address.
    client_ip: Mapped[str | None] = mapped_column(String(45))


class LoginThrottle(Base):
    """Failed sign-ins counted per key (a client address, or an account from one address).

    Kept in PostgreSQL so every db-api and chat-ui replica counts the same attempts.
    """

    __tablename__ = "login_throttles"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    window_started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RateLimitBucket(Base):
    """A token bucket per key (an action and a user, e.g. `reply:<user id>`).

    `tokens` is what was left at `refilled_at`; what has come back since is computed
    when the next token is taken (queries.rate_limits). Kept in PostgreSQL so every
    replica takes from the same bucket.
    """

    __tablename__ = "rate_limit_buckets"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    tokens: Mapped[float] = mapped_column(Double, nullable=False)
    refilled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class AppSettings(Base):
    """The settings an admin changes while the app runs: one row, read where they apply.

    A null column means "the server's configuration": db-api's environment for the
    sign-up policy and the limits, chat-ui's for the message length and system prompt.
    """

    __tablename__ = "app_settings"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    signup_mode: Mapped[str | None] = mapped_column(String(16))
    replies_per_minute: Mapped[float | None] = mapped_column(Double)
    reply_burst: Mapped[int | None] = mapped_column(Integer)
    chats_per_minute: Mapped[float | None] = mapped_column(Double)
    chat_burst: Mapped[int | None] = mapped_column(Integer)
    max_message_chars: Mapped[int | None] = mapped_column(Integer)
    system_prompt: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = _timestamp()

    __table_args__ = (
        CheckConstraint("id = 1", name="single_row"),
        CheckConstraint(
            f"signup_mode IS NULL OR {_in_list('signup_mode', SIGNUP_MODES)}", name="signup_mode"
        ),
    )


class AccountLink(Base):
    """A one-time link an admin hands over: an invite to sign up, or a password reset.

    Only a hash of the link's token is stored; using the link deletes the row.
    """

    __tablename__ = "account_links"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    # The account a password reset is for; null for an invite.
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = _timestamp()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)

    __table_args__ = (CheckConstraint(_in_list("kind", LINK_KINDS), name="kind"),)


class AuditEvent(Base):
    """Something an admin did, or a security event (a failed sign-in, a lockout).

    Names are copied rather than referenced, so the record outlives the accounts.
    """

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    at: Mapped[datetime] = _timestamp()
    action: Mapped[str] = mapped_column(String(40), nullable=False)
    actor_name: Mapped[str | None] = mapped_column(String(32))
    target_name: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(String(500))
    client_ip: Mapped[str | None] = mapped_column(String(45))

"""Reply jobs: the writer's lease on a reply, and the fair queue for the model's slots.

The model server has a few slots, each writing one reply at a time and keeping the
prompt it last read. Every chat-ui replica asks here before it asks the model:

- `hold` renews the writer's lease and, for a job still waiting, grants it a free slot
  when no job queued earlier is still waiting for one, or answers its place in the queue.
  Grants are made one at a time (a transaction-level advisory lock), so the queue's
  order is the order of `queued_at`, across every replica. A user has at most one job,
  so the queue takes turns between users.
- A granted slot is the one the chat used last when it is free (the model still holds
  its prompt); otherwise the free slot idle the longest, whose prompt is the least
  likely to be wanted again.
- A job whose lease lapsed has lost its writer (a crash, a lost node). One that held a
  slot was cut off mid-reply: its reply is marked failed ("error", text kept) by the
  next writer or reader of its chat (`interrupt_lapsed_replies`). One still waiting
  has written nothing: another replica takes it over (`adopt`) and writes it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NoReturn

from sqlalchemy import (
    ColumnElement,
    Interval,
    Uuid,
    bindparam,
    delete,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from db_api.database import DriverConnection, HotRead
from db_api.errors import MessageNotFoundError, MessageStatusConflictError
from db_api.models import Chat, Message, ModelSlot, ReplyJob
from db_api.queries.chats import get_chat, owned_by

# A writer renews its lease every few seconds (chat-ui's LEASE_RENEW_SECONDS), so a
# lease lapses only when its writer is gone or cut off from the database this long.
LEASE = timedelta(seconds=10)
# A reply still waiting holds no slot, so its lease may be longer: fifty waiting replies
# then cost db-api a few requests a second, and one whose writer died is taken over
# this long after (chat-ui's WAITING_RENEW_SECONDS is well within it).
WAITING_LEASE = timedelta(seconds=30)
# A waiting reply whose writer is gone is taken over within seconds while any chat-ui
# runs; one nobody took over for this long (the whole app was down) is failed instead.
ADOPT_WITHIN = timedelta(seconds=60)
# The key of the advisory lock that makes slot grants one at a time.
SCHEDULER_LOCK = 0x6A6F6273  # "jobs"


@dataclass(frozen=True)
class Hold:
    """A writer's lease renewed: the slot it may use, or its place in the queue (1 = next)."""

    slot: int | None
    position: int | None


def _lease_is_current() -> ColumnElement[bool]:
    return ReplyJob.lease_expires_at > func.now()


def _writer_is_alive() -> ColumnElement[bool]:
    """A job whose reply is still being written, or still waiting to be (whoever takes it)."""
    orphan_may_be_adopted = ReplyJob.lease_expires_at > func.now() - ADOPT_WITHIN
    return or_(_lease_is_current(), ReplyJob.slot.is_(None) & orphan_may_be_adopted)


async def add_job(db: AsyncSession, *, reply: Message, owner_id: uuid.UUID) -> None:
    """Queue a reply that has just become "generating", in the caller's transaction."""
    await db.execute(
        pg_insert(ReplyJob).values(
            message_id=reply.id,
            owner_id=owner_id,
            chat_id=reply.chat_id,
            lease_expires_at=func.now() + LEASE,
        )
    )


async def end_job(db: AsyncSession, *, message_id: int) -> None:
    """The reply left "generating": its slot is free for the next job in the queue."""
    await db.execute(delete(ReplyJob).where(ReplyJob.message_id == message_id))


# One statement, so a reader on an autocommit connection runs it as safely as a writer:
# the chat's row lock first (the order every message writer takes), then the replies
# whose job is gone or was cut off mid-reply; they keep their text. Answers how many.
# The lock is taken only when there is such a reply: readers of a chat whose reply is
# alive (a page following it) do not queue behind its writer's saves.
_INTERRUPT_LAPSED = text(
    """
    WITH locked AS (
        SELECT id FROM chats
        WHERE id = :chat_id AND EXISTS (
            SELECT 1 FROM messages
            WHERE messages.chat_id = :chat_id
              AND messages.status = 'generating'
              AND NOT EXISTS (
                  SELECT 1 FROM reply_jobs
                  WHERE reply_jobs.message_id = messages.id
                    AND (reply_jobs.lease_expires_at > now()
                         OR (reply_jobs.slot IS NULL
                             AND reply_jobs.lease_expires_at > now() - :adopt_within))))
        FOR UPDATE),
    interrupted AS (
        UPDATE messages SET status = 'error', updated_at = now()
        FROM locked
        WHERE messages.chat_id = locked.id
              AND messages.status = 'generating'
              AND NOT EXISTS (
                  SELECT 1 FROM reply_jobs
                  WHERE reply_jobs.message_id = messages.id
                    AND (reply_jobs.lease_expires_at > now()
                         OR (reply_jobs.slot IS NULL
                             AND reply_jobs.lease_expires_at > now() - :adopt_within)))
        RETURNING messages.id),
    forgotten AS (
        DELETE FROM reply_jobs WHERE message_id IN (SELECT id FROM interrupted))
    SELECT count(*) FROM interrupted
    """
).bindparams(
    bindparam("chat_id", type_=Uuid), bindparam("adopt_within", value=ADOPT_WITHIN, type_=Interval)
)
INTERRUPT_LAPSED = HotRead(_INTERRUPT_LAPSED)


async def interrupt_lapsed_replies(db: AsyncSession, *, chat_id: uuid.UUID) -> int:
    """Mark the chat's replies whose writer is gone as failed ("error"); answers how many.

    In the caller's transaction. A reply with no job at all lost it with its writer (or
    was being written before jobs existed).
    """
    parameters = {"chat_id": chat_id, "adopt_within": ADOPT_WITHIN}
    return int(await db.scalar(_INTERRUPT_LAPSED, parameters) or 0)


async def interrupt_lapsed_replies_now(connection: DriverConnection, *, chat_id: uuid.UUID) -> int:
    """The same, on a page read's autocommit connection: whoever sees a lapsed reply first."""
    row = await INTERRUPT_LAPSED.fetchrow(connection, chat_id=chat_id, adopt_within=ADOPT_WITHIN)
    return int(row[0]) if row is not None else 0


async def forget_lapsed_writers(db: AsyncSession, *, owner_id: uuid.UUID) -> None:
    """Drop the user's jobs whose writer is gone for good, so the user may start another.

    Their replies stay "generating" with no job, which their chat's next reader or
    writer marks as failed. Waiting jobs that may still be taken over are kept.
    """
    await db.execute(delete(ReplyJob).where(ReplyJob.owner_id == owner_id, ~_writer_is_alive()))


async def busy_chat_of(
    db: AsyncSession, *, owner_id: uuid.UUID, other_than: uuid.UUID
) -> uuid.UUID | None:
    """The chat where the user has a reply being written or waiting, other than this one."""
    return await db.scalar(
        select(ReplyJob.chat_id).where(
            ReplyJob.owner_id == owner_id, ReplyJob.chat_id != other_than, _writer_is_alive()
        )
    )


async def hold(
    db: AsyncSession, *, owner_id: uuid.UUID, chat_id: uuid.UUID, message_id: int, slots: int
) -> Hold:
    """Renew the writer's lease on a reply; grant it a slot if it may have one now.

    `slots` is how many slots the model server has. Raises MessageNotFoundError (or
    ChatNotFoundError) when there is no such reply, MessageStatusConflictError when it
    is no longer being written (stopped, finished, or its lease was given up).
    """
    renewed = update(ReplyJob).where(
        ReplyJob.message_id == message_id,
        ReplyJob.owner_id == owner_id,
        ReplyJob.chat_id == chat_id,
    )
    # The common case, a writer renewing a slot it holds, needs no lock but its own row.
    slot = await db.scalar(
        renewed.where(ReplyJob.slot.is_not(None), ReplyJob.slot < slots)
        .values(lease_expires_at=func.now() + LEASE)
        .returning(ReplyJob.slot)
    )
    if slot is not None:
        await db.commit()
        return Hold(slot=slot, position=None)
    await db.execute(select(func.pg_advisory_xact_lock(SCHEDULER_LOCK)))
    job = (
        await db.execute(
            renewed.values(lease_expires_at=func.now() + LEASE, slot=None).returning(
                ReplyJob.queued_at
            )
        )
    ).one_or_none()
    if job is None:
        await db.rollback()
        await _raise_not_being_written(
            db, owner_id=owner_id, chat_id=chat_id, message_id=message_id
        )
    (queued_at,) = job
    hold = await _grant_next(
        db, message_id=message_id, chat_id=chat_id, queued_at=queued_at, slots=slots
    )
    if hold.slot is None:
        await db.execute(
            update(ReplyJob)
            .where(ReplyJob.message_id == message_id)
            .values(lease_expires_at=func.now() + WAITING_LEASE)
        )
    await db.commit()
    return hold


async def place_in_line(db: AsyncSession, *, message_id: int) -> int | None:
    """A waiting reply's place in the queue (1: next), as `hold` counts it; None if not waiting.

    A reply whose turn has just queued it may get a slot on its writer's first `hold`;
    until then it counts as waiting.
    """
    queued_at = await db.scalar(
        select(ReplyJob.queued_at).where(
            ReplyJob.message_id == message_id, ReplyJob.slot.is_(None), _writer_is_alive()
        )
    )
    if queued_at is None:
        return None
    return await _waiting_ahead(db, message_id=message_id, queued_at=queued_at) + 1


async def _waiting_ahead(db: AsyncSession, *, message_id: int, queued_at: datetime) -> int:
    """How many live replies wait for a slot ahead of this one (queued earlier)."""
    ahead = await db.scalar(
        select(func.count())
        .select_from(ReplyJob)
        .where(
            ReplyJob.slot.is_(None),
            _writer_is_alive(),
            or_(
                ReplyJob.queued_at < queued_at,
                (ReplyJob.queued_at == queued_at) & (ReplyJob.message_id < message_id),
            ),
        )
    )
    return ahead or 0


async def grant_if_free(db: AsyncSession, *, reply: Message, slots: int) -> int | None:
    """A slot for a reply just queued, in the caller's transaction, if it may have one now.

    Saves the writer a round trip before the model is asked. Only tried: while another
    grant is being made the caller holds the chat's and the user's rows, which that
    grant must never wait for, so the writer asks with `hold` instead.
    """
    if not await db.scalar(select(func.pg_try_advisory_xact_lock(SCHEDULER_LOCK))):
        return None
    queued_at = await db.scalar(select(ReplyJob.queued_at).where(ReplyJob.message_id == reply.id))
    if queued_at is None:
        return None
    granted = await _grant_next(
        db, message_id=reply.id, chat_id=reply.chat_id, queued_at=queued_at, slots=slots
    )
    return granted.slot


async def _grant_next(
    db: AsyncSession, *, message_id: int, chat_id: uuid.UUID, queued_at: datetime, slots: int
) -> Hold:
    """Under the scheduler's lock: a free slot if no reply queued earlier still waits."""
    running = await db.scalars(
        select(ReplyJob.slot).where(ReplyJob.slot.is_not(None), _lease_is_current())
    )
    free = sorted(set(range(slots)) - set(running))
    waiting_ahead = await _waiting_ahead(db, message_id=message_id, queued_at=queued_at)
    if waiting_ahead >= len(free):
        return Hold(slot=None, position=waiting_ahead + 1)
    granted = await _choose_slot(db, chat_id=chat_id, free=free)
    # A job cut off mid-reply may still carry the slot's number: it has lost it.
    await db.execute(delete(ReplyJob).where(ReplyJob.slot == granted))
    await db.execute(update(ReplyJob).where(ReplyJob.message_id == message_id).values(slot=granted))
    record = pg_insert(ModelSlot).values(slot=granted, chat_id=chat_id, used_at=func.now())
    await db.execute(
        record.on_conflict_do_update(
            index_elements=[ModelSlot.slot],
            set_={"chat_id": record.excluded.chat_id, "used_at": record.excluded.used_at},
        )
    )
    return Hold(slot=granted, position=None)


async def _choose_slot(db: AsyncSession, *, chat_id: uuid.UUID, free: list[int]) -> int:
    """The chat's last slot if free, else the free slot idle the longest (never used first)."""
    used = {
        row.slot: row for row in await db.scalars(select(ModelSlot).where(ModelSlot.slot.in_(free)))
    }
    for slot in free:
        if slot in used and used[slot].chat_id == chat_id:
            return slot
    never_used = [slot for slot in free if slot not in used]
    if never_used:
        return never_used[0]
    return min(free, key=lambda slot: used[slot].used_at)


async def _raise_not_being_written(
    db: AsyncSession, *, owner_id: uuid.UUID, chat_id: uuid.UUID, message_id: int
) -> NoReturn:
    """Why a reply has no job: no such reply (404), or it is no longer being written (409)."""
    status = await db.scalar(
        select(Message.status)
        .join(Chat, Chat.id == Message.chat_id)
        .where(Message.id == message_id, owned_by(owner_id, chat_id))
    )
    if status is None:
        await get_chat(db, owner_id=owner_id, chat_id=chat_id)
        raise MessageNotFoundError()
    # A "generating" reply without a job has lost its writer: it is no longer written.
    raise MessageStatusConflictError(expected="being written", current=status)


async def adopt(db: AsyncSession) -> ReplyJob | None:
    """Take over the longest-waiting job whose writer is gone before it got a slot.

    The caller becomes its writer (a fresh lease) and commits; None when there is none.
    Concurrent callers skip each other's rows, so each job has one new writer.
    """
    job = (
        await db.scalars(
            select(ReplyJob)
            .where(ReplyJob.slot.is_(None), ~_lease_is_current(), _writer_is_alive())
            .order_by(ReplyJob.queued_at, ReplyJob.message_id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
    ).one_or_none()
    if job is None:
        await db.rollback()
        return None
    await db.execute(
        update(ReplyJob)
        .where(ReplyJob.message_id == job.message_id)
        .values(lease_expires_at=func.now() + LEASE)
    )
    await db.commit()
    return job

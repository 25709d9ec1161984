"""Replies written by background tasks, independent of any browser connection.

A `Generation` owns one asyncio task that first waits for a model slot (db-api's fair
queue: it publishes its place in line meanwhile), then reads the reply's text deltas
from the model on that slot, keeps the text so far in memory for live subscribers
(the SSE streams of any number of tabs) and saves it to db-api at most every
`PROGRESS_SAVE_INTERVAL` seconds and once at the end. While it runs it renews its
lease on the reply every `LEASE_RENEW_SECONDS`, tokens or not: a writer that stops
renewing (a crash) has its reply marked failed by db-api after the lease. Every save
is conditional on the row still being "generating", so a stop pressed on another
replica (which sets "stopped" in db-api) makes the next save or renewal fail with a
conflict, and the task then stops itself.

The `GenerationRegistry` (one per process, on `app.state`) maps reply ids to live
generations and keeps finished ones for a few seconds so late subscribers still
get the final state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from chat_ui.errors import (
    ChatNotFound,
    ChatUiError,
    DatabaseUnavailable,
    GenerationInProgress,
    MessageStatusChanged,
    ModelError,
)
from chat_ui.schemas import MessageStatus

logger = logging.getLogger(__name__)

FinalStatus = Literal["complete", "stopped", "error"]

# A reload or a second tab reads the live text from memory; saves only matter after a
# crash or on another replica. Each save costs CPU the model on the same cores needs
# (every 0.5 s cost about 2% of generation speed in bench/stream.py).
PROGRESS_SAVE_INTERVAL = 2.0
# How long a finished generation stays findable: covers a stream that connects just
# after the end (a slow page load, a reconnecting EventSource).
LINGER_SECONDS = 10.0
# On shutdown, how long to wait for live generations to save their final state.
SHUTDOWN_SAVE_SECONDS = 5.0
# db-api's lease lasts 10 s (reply_jobs.LEASE): renewed this often, two renewals can
# fail (a busy database) before it lapses.
LEASE_RENEW_SECONDS = 3.0
# How often the next reply in the queue asks again (the one in place N, N² times less
# often): a slot freed by another replica stays idle at most this long, a small fraction
# of a reply's time. One freed by this process wakes its next waiting reply at once.
# Each ask costs db-api and PostgreSQL about 10 ms of the CPU the model shares.
QUEUE_POLL_SECONDS = 0.5
# A waiting reply's lease lasts 30 s (reply_jobs.WAITING_LEASE); renewed this often.
WAITING_RENEW_SECONDS = 8.0
EMPTY_ANSWER = "The model gave an empty answer. Try again."
# A database restart takes seconds; the final save waits that long before giving up.
FINAL_SAVE_RETRY_SECONDS = 30.0
FINAL_SAVE_RETRY_INTERVAL = 0.5


@dataclass(frozen=True)
class GenerationState:
    """One snapshot of a reply; `version` grows with every change."""

    status: MessageStatus
    content: str
    tokens: int
    error: str | None
    version: int
    # While the reply waits for a model slot: its place in the queue (1 = next).
    position: int | None = None
    # Finished here only: left in db-api's queue for another process (shutdown).
    handed_back: bool = False

    @property
    def finished(self) -> bool:
        return self.status != "generating"


class DeltaStream(Protocol):
    """Text deltas of a reply; `aclose` must release the model request."""

    def __aiter__(self) -> AsyncIterator[str]: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class Lease:
    """A renewed lease on a reply: the model slot to write it on, or its place in line."""

    slot: int | None
    position: int | None


class ReplyStore(Protocol):
    """Where a reply's text, status and writer's lease are kept (db-api in production).

    `save` raises MessageStatusChanged when the stored status is no longer `if_status`;
    `renew` raises it when the reply is no longer being written (stopped, or the lease
    lapsed and was given to another reply), and ChatNotFound when it was deleted.
    """

    async def save(
        self, *, content: str, status: MessageStatus | None, if_status: MessageStatus
    ) -> None: ...

    async def renew(self) -> Lease: ...


# Opens the model stream of a reply on a slot (None: no slot needed, e.g. a known failure).
OpenDeltas = Callable[[int | None], DeltaStream]


async def failing_stream(error: ModelError) -> AsyncGenerator[str, None]:
    """A stream that fails at once: the model could not even be asked."""
    nothing: tuple[str, ...] = ()
    for delta in nothing:  # never runs; the `yield` makes this an async generator
        yield delta
    raise error


class SlotWaiters:
    """This process's replies waiting for a slot, so one leaving a slot wakes the next.

    Waiting replies ask db-api on a timer; when a reply written here ends, the waiting
    reply nearest the front is woken to ask at once, so a freed slot is not left idle
    until its timer. One at a time: the others could not get that slot anyway.
    """

    def __init__(self) -> None:
        self._waiting: dict[asyncio.Future[None], int] = {}

    async def wait(self, *, position: int, at_most: float) -> None:
        """Until woken or `at_most` seconds have passed."""
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[woken] = position
        try:
            await asyncio.wait([woken], timeout=at_most)
        finally:
            del self._waiting[woken]

    def slot_freed(self) -> None:
        pending = [(position, id(f), f) for f, position in self._waiting.items() if not f.done()]
        if pending:
            min(pending, key=lambda entry: entry[:2])[2].set_result(None)


class Generation:
    """One reply being written: the task, its newest state and its subscribers."""

    def __init__(
        self,
        *,
        message_id: int,
        chat_id: uuid.UUID,
        user_id: uuid.UUID,
        open_deltas: OpenDeltas,
        store: ReplyStore,
        needs_slot: bool = True,
        granted_slot: int | None = None,
        waiters: SlotWaiters | None = None,
        save_interval: float = PROGRESS_SAVE_INTERVAL,
        renew_interval: float = LEASE_RENEW_SECONDS,
        queue_poll_interval: float = QUEUE_POLL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.message_id = message_id
        self.chat_id = chat_id
        self.user_id = user_id
        self._open_deltas = open_deltas
        self._needs_slot = needs_slot
        # Granted with the turn that stored the reply: no need to ask for one first.
        self._granted_slot = granted_slot
        self._waiters = waiters or SlotWaiters()
        self._held_slot = False
        self._store = store
        self._renew_interval = renew_interval
        self._queue_poll_interval = queue_poll_interval
        self._save_interval = save_interval
        self._clock = clock
        self._state = GenerationState("generating", "", 0, None, 0)
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Strong reference to the in-flight progress save (at most one at a time).
        self._saver: asyncio.Task[None] | None = None
        self._last_save = clock()
        self._stopped_elsewhere = False
        self._deleted = False
        # Set on shutdown while the reply still waits for a slot: it stays queued in
        # db-api for another process (or this one, restarted) to take over.
        self._handing_back = False

    @property
    def state(self) -> GenerationState:
        return self._state

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self._run(), name=f"generation-{self.message_id}")
        return self._task

    async def wait_newer(self, seen_version: int) -> GenerationState:
        """The newest state, once it is newer than `seen_version` (or final).

        Reading the newest state, not a queue of all changes, is what lets a slow
        subscriber skip versions instead of falling behind. Callers bound the wait
        with `asyncio.timeout` (e.g. to send keep-alive pings).
        """
        while self._state.version <= seen_version and not self._state.finished:
            await self._changed.wait()
        return self._state

    async def wait_finished(self) -> GenerationState:
        """The final state (saved to db-api). Cancelling the waiter never cancels the task."""
        state = self._state
        while not state.finished:
            state = await self.wait_newer(state.version)
        return state

    async def stop(self) -> GenerationState:
        """Stop writing, keep the text so far (status "stopped"); answers the final state."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
        return await self.wait_finished()

    async def hand_back(self) -> None:
        """Give a reply that still waits for a slot back to the queue (shutdown).

        Nothing is saved: its job stays in db-api and, once this process's lease lapses,
        another process takes it over. A reply already being written is stopped instead.
        """
        self._handing_back = self._needs_slot and not self._held_slot
        await self.stop()

    async def _run(self) -> None:
        status: FinalStatus = "complete"
        error: str | None = None
        renewer: asyncio.Task[None] | None = None
        try:
            slot = await self._wait_for_slot() if self._needs_slot else None
            deltas = self._open_deltas(slot)
            try:
                if self._needs_slot:
                    renewer = asyncio.create_task(self._renew_lease_regularly())
                async for delta in deltas:
                    self._publish(
                        replace(
                            self._state,
                            content=self._state.content + delta,
                            tokens=self._state.tokens + 1,
                        )
                    )
                    self._maybe_save_progress()
            finally:
                await deltas.aclose()
            if not self._state.content.strip():
                raise ModelError(EMPTY_ANSWER)
        except asyncio.CancelledError:
            # stop(), a stop seen through a save conflict, or shutdown: all keep the text.
            status = "stopped"
            task = asyncio.current_task()
            if task is not None:
                # The cancellation was ours and is handled: the final save must still run.
                task.uncancel()
        except ModelError as failure:
            status, error = "error", failure.message
        except Exception:
            logger.exception("Generation of reply %s failed", self.message_id)
            status, error = "error", ModelError().message
        finally:
            if renewer is not None:
                renewer.cancel()
                await asyncio.wait([renewer])
        await self._finish(status, error)

    async def _wait_for_slot(self) -> int | None:
        """The model slot db-api's queue grants this reply; its place in line meanwhile."""
        if self._granted_slot is not None:
            self._held_slot = True
            return self._granted_slot
        while True:
            lease = await self._renew()
            if lease is not None and lease.slot is not None:
                if self._state.position is not None:
                    self._publish(replace(self._state, position=None))
                self._held_slot = True
                return lease.slot
            if lease is not None and lease.position != self._state.position:
                self._publish(replace(self._state, position=lease.position))
            # Further back, ask less often: only the first few can get the next free
            # slots, and fifty waiting replies must not keep db-api busy (the CPU the
            # model needs). Never so rarely that the lease lapses.
            position = self._state.position or 1
            pause = min(self._queue_poll_interval * position**2, WAITING_RENEW_SECONDS)
            await self._waiters.wait(position=position, at_most=pause)

    async def _renew_lease_regularly(self) -> None:
        """Keep the lease while the reply is written, tokens or not (a long prompt read)."""
        while True:
            await asyncio.sleep(self._renew_interval)
            await self._renew()

    async def _renew(self) -> Lease | None:
        """Renew the lease; None when db-api could not be asked (the next try will)."""
        try:
            return await self._store.renew()
        except (MessageStatusChanged, ChatNotFound) as gone:
            self._stop_for(gone)
        except ChatUiError as failure:
            logger.warning("Could not renew the lease on reply %s: %s", self.message_id, failure)
        return None

    def _stop_for(self, gone: MessageStatusChanged | ChatNotFound) -> None:
        """The reply is no longer ours to write (stopped elsewhere, lease lost, deleted)."""
        if isinstance(gone, ChatNotFound):
            # Deleted: nobody will read the rest, so free the model now.
            logger.info("Reply %s was deleted; stopping", self.message_id)
            self._deleted = True
        else:
            logger.info("Reply %s is no longer being written here; stopping", self.message_id)
            self._stopped_elsewhere = True
        self._cancel()

    def _publish(self, state: GenerationState) -> None:
        self._state = replace(state, version=self._state.version + 1)
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _maybe_save_progress(self) -> None:
        now = self._clock()
        if now - self._last_save < self._save_interval:
            return
        if self._saver is not None and not self._saver.done():
            return  # db-api is slow; the next delta tries again
        self._last_save = now
        self._saver = asyncio.create_task(self._save_progress(self._state.content))

    async def _save_progress(self, content: str) -> None:
        try:
            await self._store.save(content=content, status=None, if_status="generating")
        except (MessageStatusChanged, ChatNotFound) as gone:
            self._stop_for(gone)
        except ChatUiError as failure:
            # Keep generating: the next save (or the final one) carries the text anyway.
            logger.warning("Could not save progress of reply %s: %s", self.message_id, failure)

    def _cancel(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def _finish(self, status: FinalStatus, error: str | None) -> None:
        if self._saver is not None and not self._saver.done():
            await asyncio.wait([self._saver])
        content = self._state.content
        if self._deleted or self._handing_back:
            handed_back = self._handing_back and not self._deleted
            self._publish(replace(self._state, status="stopped", handed_back=handed_back))
            return
        if not self._stopped_elsewhere:
            try:
                await self._save_end(content, status)
            except MessageStatusChanged:
                self._stopped_elsewhere = True
            except ChatUiError as failure:
                # The row stays "generating" and is shown as interrupted after a while.
                logger.error("Could not save the end of reply %s: %s", self.message_id, failure)
        if self._stopped_elsewhere:
            status, error = "stopped", None
            # The stop elsewhere wrote only the status; keep the text under it.
            with contextlib.suppress(ChatUiError):
                await self._store.save(content=content, status=None, if_status="stopped")
        # Published only after saving, so whoever waited for the end reads it back stored.
        self._publish(replace(self._state, status=status, error=error))
        if self._held_slot:
            self._waiters.slot_freed()

    async def _save_end(self, content: str, status: FinalStatus) -> None:
        """The final save; while the database is briefly away (a restart), keep trying.

        Losing it would lose the whole reply, so it is worth waiting for; the reply
        stays live in memory meanwhile.
        """
        deadline = self._clock() + FINAL_SAVE_RETRY_SECONDS
        while True:
            try:
                await self._store.save(content=content, status=status, if_status="generating")
                return
            except DatabaseUnavailable:
                if self._clock() >= deadline:
                    raise
                logger.warning("Database away; retrying the end of reply %s", self.message_id)
                await asyncio.sleep(FINAL_SAVE_RETRY_INTERVAL)


class GenerationRegistry:
    """This process's generations by reply id, and which chats are starting one."""

    def __init__(self, *, linger_seconds: float = LINGER_SECONDS) -> None:
        self._linger_seconds = linger_seconds
        self.slot_waiters = SlotWaiters()
        self._generations: dict[int, Generation] = {}
        self._starting: set[uuid.UUID] = set()

    def get(self, message_id: int) -> Generation | None:
        return self._generations.get(message_id)

    def is_live(self, message_id: int) -> bool:
        generation = self._generations.get(message_id)
        return generation is not None and not generation.state.finished

    def live_in_chat(self, chat_id: uuid.UUID) -> Generation | None:
        for generation in self._generations.values():
            if generation.chat_id == chat_id and not generation.state.finished:
                return generation
        return None

    @contextlib.contextmanager
    def reserve(self, chat_id: uuid.UUID) -> Iterator[None]:
        """Hold the chat while a reply is being set up, so two sends cannot both start one.

        Raises GenerationInProgress when the chat is busy in this process.
        """
        if chat_id in self._starting or self.live_in_chat(chat_id) is not None:
            raise GenerationInProgress()
        self._starting.add(chat_id)
        try:
            yield
        finally:
            self._starting.discard(chat_id)

    def start(self, generation: Generation) -> None:
        self._generations[generation.message_id] = generation
        task = generation.start()
        task.add_done_callback(lambda _task: self._linger(generation))

    def _linger(self, generation: Generation) -> None:
        def forget() -> None:
            if self._generations.get(generation.message_id) is generation:
                del self._generations[generation.message_id]

        asyncio.get_running_loop().call_later(self._linger_seconds, forget)

    async def shutdown(self) -> None:
        """Stop every live generation and let it save; hand waiting ones back to the queue.

        They end as "stopped", not "error": the text so far is a usable answer and the
        user can regenerate; nothing went wrong with the model. A reply still waiting
        for a slot has nothing to keep: it stays queued for another process.
        """
        live = [g for g in self._generations.values() if not g.state.finished]
        if not live:
            return
        logger.info("Stopping %d live generation(s) for shutdown", len(live))
        stops = [asyncio.ensure_future(generation.hand_back()) for generation in live]
        done, pending = await asyncio.wait(stops, timeout=SHUTDOWN_SAVE_SECONDS)
        for future in pending:
            future.cancel()
        for future in done:
            if not future.cancelled() and future.exception() is not None:
                logger.error("Stopping a generation failed: %r", future.exception())

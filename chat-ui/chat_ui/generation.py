"""Replies written by background tasks, independent of any browser connection.

A `Generation` owns one asyncio task that reads the reply's text deltas from the
model, keeps the text so far in memory for live subscribers (the SSE streams of
any number of tabs) and saves it to db-api at most every `PROGRESS_SAVE_INTERVAL`
seconds and once at the end. Every save is conditional on the row still being
"generating", so a stop pressed on another replica (which sets "stopped" in
db-api) makes the next save fail with a conflict, and the task then stops itself.

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

    @property
    def finished(self) -> bool:
        return self.status != "generating"


class DeltaStream(Protocol):
    """Text deltas of a reply; `aclose` must release the model request."""

    def __aiter__(self) -> AsyncIterator[str]: ...

    async def aclose(self) -> None: ...


class ReplyStore(Protocol):
    """Where a reply's text and status are kept (db-api in production).

    `save` raises MessageStatusChanged when the stored status is no longer `if_status`.
    """

    async def save(
        self, *, content: str, status: MessageStatus | None, if_status: MessageStatus
    ) -> None: ...


class PrefetchedStream:
    """Starts a delta stream at once and reads its first delta ahead of the consumer.

    Lets the model request start while the reply row is still being stored, so the
    database round trip is not added to the time to the first token. Only the first
    delta goes through the helper task; the rest are read directly by the consumer,
    because a task hop per token costs CPU that the model (on the same cores) needs.
    """

    def __init__(self, source: AsyncGenerator[str, None]) -> None:
        self._source = source
        self._first: asyncio.Task[str | None] | None = asyncio.create_task(
            self._read_first(), name="prefetch-reply"
        )

    async def _read_first(self) -> str | None:
        """The first delta, or None when the stream ended without one."""
        try:
            return await anext(self._source)
        except StopAsyncIteration:
            return None

    def __aiter__(self) -> PrefetchedStream:
        return self

    async def __anext__(self) -> str:
        if self._first is not None:
            first_task, self._first = self._first, None
            first = await first_task
            if first is None:
                raise StopAsyncIteration
            return first
        return await anext(self._source)

    async def aclose(self) -> None:
        # Closing the source closes the HTTP stream, which frees the model's slot.
        if self._first is not None:
            self._first.cancel()
            await asyncio.wait([self._first])
            self._first = None
        await self._source.aclose()


async def failing_stream(error: ModelError) -> AsyncGenerator[str, None]:
    """A stream that fails at once: the model could not even be asked."""
    nothing: tuple[str, ...] = ()
    for delta in nothing:  # never runs; the `yield` makes this an async generator
        yield delta
    raise error


class Generation:
    """One reply being written: the task, its newest state and its subscribers."""

    def __init__(
        self,
        *,
        message_id: int,
        chat_id: uuid.UUID,
        user_id: uuid.UUID,
        deltas: DeltaStream,
        store: ReplyStore,
        save_interval: float = PROGRESS_SAVE_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.message_id = message_id
        self.chat_id = chat_id
        self.user_id = user_id
        self._deltas = deltas
        self._store = store
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

    async def _run(self) -> None:
        status: FinalStatus = "complete"
        error: str | None = None
        try:
            try:
                async for delta in self._deltas:
                    self._publish(
                        replace(
                            self._state,
                            content=self._state.content + delta,
                            tokens=self._state.tokens + 1,
                        )
                    )
                    self._maybe_save_progress()
            finally:
                await self._deltas.aclose()
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
        await self._finish(status, error)

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
        except MessageStatusChanged:
            logger.info("Reply %s was stopped elsewhere; stopping here too", self.message_id)
            self._stopped_elsewhere = True
            self._cancel()
        except ChatNotFound:
            # The chat was deleted: nobody will read the rest, so free the model now.
            logger.info("Reply %s was deleted; stopping", self.message_id)
            self._deleted = True
            self._cancel()
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
        if self._deleted:
            self._publish(replace(self._state, status="stopped", error=None))
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
        """Stop every live generation and let it save.

        They end as "stopped", not "error": the text so far is a usable answer and the
        user can regenerate; nothing went wrong with the model.
        """
        live = [g for g in self._generations.values() if not g.state.finished]
        if not live:
            return
        logger.info("Stopping %d live generation(s) for shutdown", len(live))
        stops = [asyncio.ensure_future(generation.stop()) for generation in live]
        done, pending = await asyncio.wait(stops, timeout=SHUTDOWN_SAVE_SECONDS)
        for future in pending:
            future.cancel()
        for future in done:
            if not future.cancelled() and future.exception() is not None:
                logger.error("Stopping a generation failed: %r", future.exception())

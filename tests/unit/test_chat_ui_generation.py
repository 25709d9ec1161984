"""The generation state machine with a fake delta source and a fake store, and the fit bound."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chat_ui.context import ChatMessage, PromptSizeBound, fit_history_to_context
from chat_ui.errors import ChatNotFound, DatabaseUnavailable, MessageStatusChanged, ModelError
from chat_ui.generation import Generation, GenerationRegistry, Lease, SlotWaiters
from chat_ui.schemas import MessageStatus


class FakeStore:
    """Keeps saves in memory and honours if_status like db-api does.

    `queue` is what the next lease renewals answer (positions, then a slot); once it is
    empty every renewal grants slot 0, as long as the reply is still "generating".
    """

    def __init__(self) -> None:
        self.status: MessageStatus = "generating"
        self.content = ""
        self.saves: list[tuple[str, MessageStatus | None, MessageStatus]] = []
        self.fail_with: Exception | None = None
        self.queue: list[Lease] = []
        self.renewals = 0

    async def renew(self) -> Lease:
        self.renewals += 1
        if self.status != "generating":
            raise MessageStatusChanged(self.status)
        return self.queue.pop(0) if self.queue else Lease(slot=0, position=None)

    async def save(
        self, *, content: str, status: MessageStatus | None, if_status: MessageStatus
    ) -> None:
        self.saves.append((content, status, if_status))
        if self.fail_with is not None:
            raise self.fail_with
        if self.status != if_status:
            raise MessageStatusChanged(self.status)
        self.content = content
        if status is not None:
            self.status = status


class Deltas:
    """A delta source the test drives: each `release` lets one delta (or an error) out."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[str | Exception | None] = asyncio.Queue()
        self.opened = False
        self.closed = False
        self.slots: list[int | None] = []

    def open(self, slot: int | None) -> AsyncGenerator[str, None]:
        self.slots.append(slot)
        return self.stream()

    def release(self, item: str | Exception | None) -> None:
        self.queue.put_nowait(item)

    async def stream(self) -> AsyncGenerator[str, None]:
        self.opened = True
        try:
            while True:
                item = await self.queue.get()
                if item is None:
                    return
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            self.closed = True


def new_generation(
    deltas: Deltas,
    store: FakeStore,
    *,
    save_interval: float = 1000.0,
    renew_interval: float = 1000.0,
) -> Generation:
    return Generation(
        message_id=1,
        chat_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        open_deltas=deltas.open,
        store=store,
        save_interval=save_interval,
        renew_interval=renew_interval,
        queue_poll_interval=0.001,
    )


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_finished_reply_is_saved_complete() -> None:
    deltas, store = Deltas(), FakeStore()
    generation = new_generation(deltas, store)
    generation.start()
    for piece in ("Hello", ", ", "world"):
        deltas.release(piece)
    deltas.release(None)
    final = await generation.wait_finished()
    assert (final.status, final.content, final.tokens, final.error) == (
        "complete",
        "Hello, world",
        3,
        None,
    )
    assert (store.status, store.content) == ("complete", "Hello, world")
    assert deltas.closed


async def test_stop_midway_keeps_the_text_and_closes_the_source() -> None:
    deltas, store = Deltas(), FakeStore()
    generation = new_generation(deltas, store)
    generation.start()
    deltas.release("Once upon")
    await settle()
    final = await generation.stop()
    assert (final.status, final.content) == ("stopped", "Once upon")
    assert (store.status, store.content) == ("stopped", "Once upon")
    assert deltas.closed
    task = generation.task
    assert task is not None and task.done() and not task.cancelled()


async def test_model_failure_midway_keeps_the_text() -> None:
    deltas, store = Deltas(), FakeStore()
    generation = new_generation(deltas, store)
    generation.start()
    deltas.release("Partial")
    deltas.release(ModelError("The model broke off."))
    final = await generation.wait_finished()
    assert (final.status, final.content, final.error) == (
        "error",
        "Partial",
        "The model broke off.",
    )
    assert (store.status, store.content) == ("error", "Partial")


async def test_an_empty_answer_is_an_error() -> None:
    deltas, store = Deltas(), FakeStore()
    generation = new_generation(deltas, store)
    generation.start()
    deltas.release(None)
    final = await generation.wait_finished()
    assert final.status == "error"
    assert store.status == "error"


async def test_subscribers_read_the_newest_state_and_skip_versions() -> None:
    deltas, store = Deltas(), FakeStore()
    generation = new_generation(deltas, store)
    generation.start()
    first = generation.state
    for piece in "abcde":
        deltas.release(piece)
    await settle()
    # A slow reader that comes back now gets the newest text, not "a".
    newest = await generation.wait_newer(first.version)
    assert newest.content == "abcde"
    assert newest.version >= first.version + 5
    deltas.release(None)
    final = await generation.wait_finished()
    assert final.status == "complete"
    # A subscriber arriving after the end still gets the final state at once.
    assert (await generation.wait_newer(0)).status == "complete"


async def test_a_stop_elsewhere_seen_on_a_progress_save_stops_it() -> None:
    deltas, store = Deltas(), FakeStore()
    generation = new_generation(deltas, store, save_interval=0.0)
    generation.start()
    deltas.release("Some")
    await settle()
    store.status = "stopped"  # another replica pressed stop
    deltas.release(" text")
    final = await asyncio.wait_for(generation.wait_finished(), 5)
    assert final.status == "stopped"
    assert deltas.closed
    # The text stays, under the status the other replica set.
    assert store.status == "stopped"
    assert store.content.startswith("Some")
    assert all(status != "complete" for _, status, _ in store.saves)


async def test_a_database_outage_during_progress_does_not_stop_the_reply() -> None:
    deltas, store = Deltas(), FakeStore()
    generation = new_generation(deltas, store, save_interval=0.0)
    generation.start()
    store.fail_with = DatabaseUnavailable()
    deltas.release("still ")
    await settle()
    store.fail_with = None
    deltas.release("going")
    deltas.release(None)
    final = await generation.wait_finished()
    assert (final.status, store.status, store.content) == ("complete", "complete", "still going")


async def test_the_final_save_waits_out_a_short_database_outage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("chat_ui.generation.FINAL_SAVE_RETRY_INTERVAL", 0.01)
    deltas, store = Deltas(), FakeStore()
    generation = new_generation(deltas, store)
    generation.start()
    deltas.release("kept")
    await settle()
    store.fail_with = DatabaseUnavailable()
    deltas.release(None)
    await asyncio.sleep(0.05)
    assert not generation.state.finished  # still trying, the text still in memory
    store.fail_with = None
    final = await generation.wait_finished()
    assert (final.status, store.status, store.content) == ("complete", "complete", "kept")
    assert len(store.saves) > 2


async def test_registry_refuses_a_second_reply_in_a_chat_and_shutdown_stops() -> None:
    registry = GenerationRegistry(linger_seconds=0.01)
    deltas, store = Deltas(), FakeStore()
    generation = new_generation(deltas, store)
    registry.start(generation)
    assert registry.live_in_chat(generation.chat_id) is generation
    with (
        pytest.raises(Exception, match="Wait for the current reply"),
        registry.reserve(generation.chat_id),
    ):
        pass
    deltas.release("half")
    await settle()
    await registry.shutdown()
    assert generation.state.status == "stopped"
    assert store.status == "stopped"
    await asyncio.sleep(0.05)
    assert registry.get(generation.message_id) is None


async def test_a_queued_reply_shows_its_place_then_streams_on_the_granted_slot() -> None:
    deltas, store = Deltas(), FakeStore()
    store.queue = [Lease(None, 3), Lease(None, 3), Lease(None, 1), Lease(2, None)]
    generation = new_generation(deltas, store)
    positions: list[int | None] = []
    generation.start()
    state = generation.state
    while not deltas.opened:
        async with asyncio.timeout(5):
            state = await generation.wait_newer(state.version)
        positions.append(state.position)
    assert positions[:2] == [3, 1]
    assert generation.state.position is None
    assert deltas.slots == [2]
    deltas.release("Hi")
    deltas.release(None)
    assert (await generation.wait_finished()).status == "complete"


async def test_the_lease_is_renewed_while_no_tokens_come() -> None:
    deltas, store = Deltas(), FakeStore()
    generation = new_generation(deltas, store, renew_interval=0.01)
    generation.start()
    await asyncio.sleep(0.1)  # the model reads a long prompt: no token yet
    assert store.renewals >= 4
    deltas.release("Done")
    deltas.release(None)
    assert (await generation.wait_finished()).status == "complete"


async def test_a_lost_lease_stops_the_reply_and_keeps_the_text() -> None:
    deltas, store = Deltas(), FakeStore()
    generation = new_generation(deltas, store, renew_interval=0.01)
    generation.start()
    deltas.release("Half")
    await settle()
    store.status = "stopped"  # stopped elsewhere, or the lease went to another reply
    final = await generation.wait_finished()
    assert (final.status, final.content) == ("stopped", "Half")
    assert deltas.closed


async def test_shutdown_hands_a_waiting_reply_back_without_saving() -> None:
    deltas, store = Deltas(), FakeStore()
    store.queue = [Lease(None, 2)] * 10_000
    registry = GenerationRegistry(linger_seconds=0.01)
    generation = new_generation(deltas, store)
    registry.start(generation)
    async with asyncio.timeout(5):
        await generation.wait_newer(0)  # its place in the queue
    assert generation.state.position == 2
    await registry.shutdown()
    assert generation.state.status == "stopped" and generation.state.handed_back
    assert store.saves == [] and store.status == "generating"
    assert not deltas.opened


# The bound must never be below the token count. For a byte-level BPE tokenizer the
# token count is at most the UTF-8 length of the templated prompt, so the bound is
# checked against that length, with a template shaped like the real ones.


def chatml(messages: list[ChatMessage]) -> str:
    body = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return body + "<|im_start|>assistant\n"


def measured_bound() -> PromptSizeBound:
    """What LmClient.prompt_size_bound measures, done against the fake template."""
    probe = "x"
    roles = ["system", "user", "assistant", "user"]
    lengths = [
        len(chatml([{"role": role, "content": probe} for role in roles[: n + 1]]).encode())
        for n in range(len(roles))
    ]
    return PromptSizeBound.from_probe_lengths(lengths, probe_bytes=len(probe))


message_strategy = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant"]), "content": st.text(max_size=200)}
)


@given(st.text(max_size=200), st.lists(message_strategy, min_size=1, max_size=8))
def test_bound_is_never_below_the_templated_byte_length(
    system: str, messages: list[ChatMessage]
) -> None:
    full = [{"role": "system", "content": system}, *messages]
    assert measured_bound()(full) >= len(chatml(full).encode("utf-8"))


async def test_fitting_skips_exact_counts_when_the_bound_fits() -> None:
    calls: list[int] = []

    async def count(messages: list[ChatMessage]) -> int:
        calls.append(len(messages))
        return 10

    history: list[ChatMessage] = [{"role": "user", "content": "hi"}]
    fitted = await fit_history_to_context(
        "sys",
        history,
        context_tokens=1000,
        reply_tokens=100,
        count_tokens=count,
        upper_bound=measured_bound(),
    )
    assert calls == [] and fitted.dropped == 0
    # Near the limit the exact count decides.
    tight = await fit_history_to_context(
        "sys",
        history,
        context_tokens=120,
        reply_tokens=100,
        count_tokens=count,
        upper_bound=measured_bound(),
    )
    assert calls == [2] and tight.prompt_tokens == 10


async def test_a_deleted_chat_stops_the_reply() -> None:
    deltas, store = Deltas(), FakeStore()
    generation = new_generation(deltas, store, save_interval=0.0)
    generation.start()
    store.fail_with = ChatNotFound()
    deltas.release("into the void")
    final = await asyncio.wait_for(generation.wait_finished(), 5)
    assert final.status == "stopped"
    assert deltas.closed


async def test_a_reply_leaving_its_slot_wakes_the_reply_next_in_line() -> None:
    waiters = SlotWaiters()
    woken: list[int] = []

    async def wait(position: int) -> None:
        await waiters.wait(position=position, at_most=10)
        woken.append(position)

    tasks = [asyncio.create_task(wait(position)) for position in (3, 1, 2)]
    await settle()
    waiters.slot_freed()
    await settle()
    assert woken == [1]
    waiters.slot_freed()
    await settle()
    assert woken == [1, 2]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)

"""A chat's replies go to its own llama.cpp slot while that slot is free."""

from __future__ import annotations

import uuid

from chat_ui.context import ChatMessage
from chat_ui.lm_client import LmClient
from tests.support.fakes import FakeModel, in_memory_lm_client

MESSAGES: list[ChatMessage] = [{"role": "user", "content": "Hi"}]


async def reply_slot(lm: LmClient, model: FakeModel, chat_id: uuid.UUID) -> int | None:
    """Stream one reply for the chat; answer the id_slot it asked llama.cpp for."""
    async for _delta in lm.stream_chat(MESSAGES, max_tokens=5, chat_id=chat_id):
        pass
    slot: int | None = model.completions[-1].get("id_slot")
    return slot


async def test_every_reply_of_a_chat_asks_for_its_home_slot() -> None:
    model = FakeModel(slots=4)
    lm = in_memory_lm_client(model)
    chat = uuid.uuid4()
    assert [await reply_slot(lm, model, chat) for _ in range(3)] == [chat.int % 4] * 3
    await lm.aclose()


async def test_every_replica_picks_the_same_home_slot() -> None:
    model = FakeModel(slots=4)
    replicas = [in_memory_lm_client(model) for _ in range(3)]
    chats = [uuid.uuid4() for _ in range(8)]
    picked = [[await reply_slot(lm, model, chat) for chat in chats] for lm in replicas]
    assert picked[0] == picked[1] == picked[2] == [chat.int % 4 for chat in chats]
    for lm in replicas:
        await lm.aclose()


async def test_a_busy_home_slot_is_not_waited_for() -> None:
    chat = uuid.uuid4()
    model = FakeModel(slots=4, busy_slots={chat.int % 4})
    lm = in_memory_lm_client(model)
    # No id_slot: llama.cpp gives the reply whichever slot is free.
    assert await reply_slot(lm, model, chat) is None
    model.busy_slots.clear()
    assert await reply_slot(lm, model, chat) == chat.int % 4
    await lm.aclose()


async def test_without_slot_information_llama_cpp_chooses() -> None:
    model = FakeModel(slots=0)  # /slots answers an empty list
    lm = in_memory_lm_client(model)
    assert await reply_slot(lm, model, uuid.uuid4()) is None
    await lm.aclose()


async def test_a_home_slot_this_process_just_asked_for_counts_as_busy() -> None:
    chats = [uuid.uuid4() for _ in range(40)]
    first = chats[0]
    twin = next(chat for chat in chats[1:] if chat.int % 4 == first.int % 4)
    model = FakeModel(slots=4)
    lm = in_memory_lm_client(model)
    # The first reply is still streaming when the second chat, with the same home, sends.
    streaming = lm.stream_chat(MESSAGES, max_tokens=5, chat_id=first)
    await anext(streaming)
    assert model.completions[-1]["id_slot"] == first.int % 4
    assert await reply_slot(lm, model, twin) is None
    await streaming.aclose()
    # Closing the stream closed the model's request, and the slot is free again.
    assert model.streams_closed == model.streams_opened
    assert await reply_slot(lm, model, twin) == twin.int % 4
    await lm.aclose()

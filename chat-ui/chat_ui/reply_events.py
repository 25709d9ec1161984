"""A reply as server-sent events: its state now, updates as it grows, then done.

From memory when this process writes the reply (`live_events`), and from db-api by
polling when it does not (`polled_events`): after a restart, or when another replica
writes it. Either way the first event is the state at connect time.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from chat_ui.conversation import failed_reply_text, once_its_writer_stopped
from chat_ui.db_client import DbClient
from chat_ui.errors import ChatNotFound, ChatUiError
from chat_ui.generation import Generation, GenerationRegistry, GenerationState
from chat_ui.markdown import render_markdown
from chat_ui.schemas import MessagePublic, MessageState
from chat_ui.sessions import SessionUser

# Comment lines keep idle connections (and proxies between) from timing out.
PING_SECONDS = 15.0
# At most this often an update per subscriber: faster than reading, slower than tokens,
# so rendering and sending do not take CPU from the model on every token.
UPDATE_INTERVAL = 0.1
# How often a reply written elsewhere is re-read from db-api.
POLL_SECONDS = 0.3
REPLY_GONE = "This reply no longer exists."


def sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def state_event(state: GenerationState) -> str:
    html = str(render_markdown(state.content))
    if not state.finished:
        update = {"status": state.status, "html": html, "tokens": state.tokens}
        if state.position is not None:
            update["position"] = state.position
        return sse("update", update)
    return sse("done", {"status": state.status, "html": html, "error": state.error})


async def live_events(generation: Generation) -> AsyncIterator[str]:
    """The newest state now, then on changes (slow readers skip versions), then done.

    Updates go out at most every UPDATE_INTERVAL (the first and the last at once):
    each one re-renders the whole markdown, CPU the model server shares.
    """
    state = generation.state
    if state.handed_back:
        return
    yield state_event(state)
    while not state.finished:
        sent_at = time.monotonic()
        try:
            async with asyncio.timeout(PING_SECONDS):
                state = await generation.wait_newer(state.version)
        except TimeoutError:
            yield ": ping\n\n"
            continue
        pause = sent_at + UPDATE_INTERVAL - time.monotonic()
        if pause > 0 and not state.finished and state.tokens > 1:
            await asyncio.sleep(pause)
            state = generation.state
        if state.handed_back:
            # Still queued in db-api: the page's EventSource reconnects and follows it there.
            return
        yield state_event(state)


async def polled_events(
    db: DbClient, registry: GenerationRegistry, user: SessionUser, first: MessageState
) -> AsyncIterator[str]:
    """Follow a reply this process does not write, by re-reading it from db-api."""
    message: MessagePublic = first
    position = first.queue_position
    sent: tuple[str, int | None] | None = None
    last_sent = time.monotonic()
    while True:
        generation = registry.get(message.id)
        if generation is not None and generation.user_id == user.id:
            # It started here meanwhile (e.g. a retry): follow it from memory.
            async for event in live_events(generation):
                yield event
            return
        if message.status == "stopped" and sent is not None:
            # Stopped while followed here: the writer's last save may still be coming.
            message = await once_its_writer_stopped(db, user.id, message)
        html = str(render_markdown(message.content))
        if message.status != "generating":
            # A reply whose writer died is failed by db-api's read, within its lease.
            error = failed_reply_text(message) if message.status == "error" else None
            yield sse("done", {"status": message.status, "html": html, "error": error})
            return
        if (message.content, position) != sent:
            # The token count lives only in the writing process; 0 means unknown here.
            update: dict[str, Any] = {"status": "generating", "html": html, "tokens": 0}
            if position is not None:
                update["position"] = position
            yield sse("update", update)
            sent, last_sent = (message.content, position), time.monotonic()
        elif time.monotonic() - last_sent >= PING_SECONDS:
            yield ": ping\n\n"
            last_sent = time.monotonic()
        await asyncio.sleep(POLL_SECONDS)
        try:
            latest = await db.get_message(user.id, message.chat_id, message.id)
            message, position = latest, latest.queue_position
        except ChatNotFound:
            yield sse("done", {"status": "error", "html": "", "error": REPLY_GONE})
            return
        except ChatUiError:
            continue  # db-api hiccup: keep the last state and read again

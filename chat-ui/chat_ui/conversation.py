"""Sending a message and getting the reply: the order of writes and what a failure leaves.

The rules: nothing is written until the message is known to fit the model's
context; the user's message and the empty reply are stored together (one db-api
call); the model request starts at once and a background `Generation` writes the
reply, ending it as "complete", "stopped" or "error" (text so far kept), never
"generating". One reply at a time per chat. The reply waits for a model slot in
db-api's fair queue before the model is asked (see `generation`). A reply that was
waiting when its process died is taken over by another (`adopt_waiting_replies`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from chat_ui.config import Settings
from chat_ui.context import ChatMessage, FittedHistory, fit_history_to_context
from chat_ui.db_client import DbClient
from chat_ui.errors import (
    ChatNotFound,
    ChatUiError,
    GenerationInProgress,
    InvalidInput,
    MessageStatusChanged,
    ModelError,
    SendingTooFast,
)
from chat_ui.generation import (
    LEASE_RENEW_SECONDS,
    PROGRESS_SAVE_INTERVAL,
    DeltaStream,
    Generation,
    GenerationRegistry,
    Lease,
    failing_stream,
)
from chat_ui.lm_client import LmClient
from chat_ui.markdown import plain_text
from chat_ui.schemas import ChatDetail, ChatPublic, MessagePublic, MessageStatus

logger = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_CHAT_TITLE = "New chat"
TITLE_MAX_CHARS = 60
# A failed reply that kept some text: its writer was cut off (a crash, the model broke off).
INTERRUPTED_MESSAGE = "The reply was interrupted before it was finished. Try again."
# How often each process looks for waiting replies whose process died.
ADOPT_SECONDS = 2.0
# A reply stopped here but written by another replica: its writer notices at its next
# progress save or lease renewal, and then saves the text it had.
WRITER_STOPS_WITHIN = max(PROGRESS_SAVE_INTERVAL, LEASE_RENEW_SECONDS) + 1.0
WRITER_POLL_SECONDS = 0.25
REPLY_FAILED = "No reply: generating it failed. Try again."
NOTHING_TO_RETRY = "There is no failed reply to retry."
NOTHING_TO_REGENERATE = "There is no reply to regenerate yet."
NOTHING_TO_EDIT = "There is no message of yours to edit yet."
ALREADY_SENT = "That message was already sent."


# The end of a sentence: its mark, then a space (so "3.5" or "v1.2" stays whole).
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s")


def title_from_message(content: str, *, max_chars: int = TITLE_MAX_CHARS) -> str:
    """A chat title from the first message: its first sentence as plain text (markdown
    stripped), cut at a word if it is still too long."""
    lines = plain_text(content).splitlines()
    if not lines:
        return DEFAULT_CHAT_TITLE
    collapsed = _SENTENCE_END.split(lines[0], maxsplit=1)[0].strip()
    if len(collapsed) <= max_chars:
        return collapsed
    cut = collapsed[: max_chars - 1]
    last_space = cut.rfind(" ")
    # Cutting at a word keeps titles readable, unless that would throw most of it away.
    if last_space >= max_chars // 2:
        cut = cut[:last_space]
    return cut.rstrip() + "…"


def validate_message(content: str, *, max_chars: int) -> str:
    """The message to store (surrounding whitespace removed), or InvalidInput saying why not."""
    stripped = content.strip()
    if not stripped:
        raise InvalidInput("Type a message before sending.")
    # Checked here, before anything is stored or deleted: an edit removes the old message
    # first, and PostgreSQL cannot store a NUL, so db-api's refusal would come too late.
    if "\x00" in stripped:
        raise InvalidInput("Messages can't contain NUL characters.")
    if len(stripped) > max_chars:
        raise InvalidInput(
            f"Your message is {len(stripped):,} characters long; the limit is "
            f"{max_chars:,}. Please shorten it."
        )
    return stripped


def seen_by_model(messages: list[MessagePublic]) -> list[MessagePublic]:
    """The messages the model is shown: user and assistant text, without empty failed replies."""
    return [
        message
        for message in messages
        if message.role != "system" and message.content and message.status != "generating"
    ]


def history_for_model(messages: list[MessagePublic]) -> list[ChatMessage]:
    """The turns the model should see, as the model server takes them."""
    return [
        {"role": message.role, "content": message.content} for message in seen_by_model(messages)
    ]


def previous_start(messages: list[MessagePublic]) -> int:
    """How many of the oldest messages the model was not shown for the newest reply.

    The next prompt starts at the same message while it fits (see context.py). Counted
    in `seen_by_model(messages)`; 0 when the newest reply saw them all, or when its first
    message is gone (an edit). A reply that failed before it was fitted says nothing.
    """
    seen = seen_by_model(messages)
    for message in reversed(messages):
        if message.role != "assistant":
            continue
        if message.context_start_id is None:
            if message.status == "error":
                continue  # failed before it was fitted (the model away): the one before counts
            return 0
        ids = [m.id for m in seen]
        return ids.index(message.context_start_id) if message.context_start_id in ids else 0
    return 0


async def once_its_writer_stopped(
    db: DbClient, user_id: uuid.UUID, stopped: MessagePublic
) -> MessagePublic:
    """`stopped` as it is once its writer elsewhere has saved its last text.

    The stop wrote only the status: the text under it grows once more, with the
    writer's final save. A writer that is gone never saves; that wait is bounded.
    """
    deadline = time.monotonic() + WRITER_STOPS_WITHIN
    latest = stopped
    while latest.updated_at <= stopped.updated_at and time.monotonic() < deadline:
        await asyncio.sleep(WRITER_POLL_SECONDS)
        try:
            latest = await db.get_message(user_id, stopped.chat_id, stopped.id)
        except ChatNotFound:
            return latest
        except ChatUiError:
            continue  # db-api hiccup: ask again while there is time
    return latest


def failed_reply_text(message: MessagePublic) -> str:
    """Why a stored reply failed: cut off with its text kept, or no reply at all."""
    return INTERRUPTED_MESSAGE if message.content else REPLY_FAILED


def can_retry(messages: list[MessagePublic]) -> bool:
    """True when the newest user message has no usable reply."""
    visible = [message for message in messages if message.role != "system"]
    if not visible:
        return False
    last = visible[-1]
    return last.role == "user" or (last.role == "assistant" and last.status == "error")


@dataclass(frozen=True)
class StartedReply:
    """A reply being written in the background (or, for a resent form, the one it started)."""

    chat_id: uuid.UUID
    reply_id: int
    user_message_id: int | None


@dataclass(frozen=True)
class StartedChat:
    """A new chat and its first reply (None: another replica is still setting it up)."""

    chat_id: uuid.UUID
    reply: StartedReply | None


# Submissions in progress in this process, by request id: a form submitted twice at once
# waits for the first submission's outcome instead of starting a second reply. Request
# ids are random, so one map serves every user (and every app in the process).
_in_progress: dict[uuid.UUID, asyncio.Future[Any]] = {}


async def _only_once(request_id: uuid.UUID, attempt: Callable[[], Awaitable[T]]) -> T | None:
    """Run `attempt`, or, while the same request runs here, share its outcome.

    None: the first one was cancelled before it finished (the caller looks again).
    """
    pending = _in_progress.get(request_id)
    if pending is not None:
        # Shielded: this request giving up must not cancel the first one's outcome.
        shared: T | None = await asyncio.shield(pending)
        return shared
    outcome: asyncio.Future[T | None] = asyncio.get_running_loop().create_future()
    _in_progress[request_id] = outcome
    try:
        result = await attempt()
    except Exception as error:
        outcome.set_exception(error)
        # Waiters re-raise it; without any, nobody else needs to see it.
        outcome.exception()
        raise
    except BaseException:
        outcome.set_result(None)
        raise
    finally:
        del _in_progress[request_id]
    outcome.set_result(result)
    return result


def find_sent(messages: list[MessagePublic], request_id: uuid.UUID) -> StartedReply | None:
    """The reply a form with `request_id` started, if that form was sent before."""
    for index, message in enumerate(messages):
        if message.role != "user" or message.request_id != request_id:
            continue
        reply = next((m for m in messages[index + 1 :] if m.role == "assistant"), None)
        if reply is None:
            raise InvalidInput(ALREADY_SENT)
        return StartedReply(message.chat_id, reply.id, message.id)
    return None


@dataclass(frozen=True)
class DbReplyStore:
    """Saves one reply's progress to db-api (see generation.ReplyStore)."""

    db: DbClient
    user_id: uuid.UUID
    chat_id: uuid.UUID
    message_id: int
    context_start_id: int | None
    # How many slots the model server has (db-api's queue hands them out).
    slots: int

    async def renew(self) -> Lease:
        lease = await self.db.renew_lease(
            self.user_id, self.chat_id, self.message_id, slots=self.slots
        )
        return Lease(slot=lease.slot, position=lease.position)

    async def save(
        self, *, content: str, status: MessageStatus | None, if_status: MessageStatus
    ) -> None:
        await self.db.update_message(
            self.user_id,
            self.chat_id,
            self.message_id,
            content=content,
            status=status,
            if_status=if_status,
            context_start_id=self.context_start_id,
            clear_context_start=self.context_start_id is None,
        )


@dataclass(frozen=True)
class Conversation:
    """One user's actions on their chats, over db-api, the model server and the registry."""

    db: DbClient
    lm: LmClient
    settings: Settings
    registry: GenerationRegistry
    user_id: uuid.UUID

    async def get_chat(self, chat_id: uuid.UUID) -> ChatDetail:
        """The user's chat with its messages; ChatNotFound for anyone else's."""
        return await self.db.get_chat(self.user_id, chat_id)

    async def send_message(
        self, chat: ChatDetail, content: str, *, request_id: uuid.UUID | None = None
    ) -> StartedReply:
        """Store `content` as the user's next message and start writing the reply.

        Raises GenerationInProgress or MessageTooLongForContext before writing
        anything, DatabaseUnavailable if db-api fails. A model failure does not
        raise: the reply ends as "error" (the message is kept and can be retried).
        A form sent again (same `request_id`) answers the reply the first one started
        and writes nothing; sent twice at once, the second waits for the first.
        """
        if request_id is None:
            return await self._send_new(chat, content, None)
        while True:
            sent = find_sent(chat.messages, request_id)
            if sent is not None:
                return sent
            started = await _only_once(
                request_id, functools.partial(self._send_or_find, chat, content, request_id)
            )
            if started is not None:
                return started
            chat = await self.db.get_chat(self.user_id, chat.id)

    async def start_chat(self, content: str, *, request_id: uuid.UUID | None) -> StartedChat:
        """Create a chat, then send `content` (if any) as its first message.

        A form sent again (same `request_id`) finds the chat and the reply the first
        submission made; sent twice at once, the second waits for the first. Without
        `content` the chat is only created (again: found), and has no reply. A first
        message refused for starting replies too fast takes its new chat with it.
        """
        if not content.strip():
            chat, _opening = await self._create_chat(request_id)
            return StartedChat(chat.id, None)
        if request_id is None:
            return await self._start_chat(content, None)
        while True:
            started = await _only_once(
                request_id, functools.partial(self._start_chat, content, request_id)
            )
            if started is not None:
                return started

    async def _create_chat(
        self, request_id: uuid.UUID | None
    ) -> tuple[ChatPublic, ChatDetail | None]:
        """The new chat (no message: the greeting is the empty page's, never stored); None
        for the detail of the chat a `request_id` made before."""
        chat, created = await self.db.create_chat(
            self.user_id, title=DEFAULT_CHAT_TITLE, request_id=request_id
        )
        if not created:
            return chat, None
        return chat, ChatDetail(**chat.model_dump(), messages=[])

    async def _start_chat(self, content: str, request_id: uuid.UUID | None) -> StartedChat:
        chat, detail = await self._create_chat(request_id)
        created_here = detail is not None
        if detail is None:
            # Sent again: the first submission (perhaps on another replica) may have
            # stored the question already; `request_id` finds it, or stores it once.
            detail = await self.db.get_chat(self.user_id, chat.id)
        try:
            if request_id is None:
                return StartedChat(chat.id, await self._send_new(detail, content, None))
            sent = find_sent(detail.messages, request_id)
            started = sent or await self._send_or_find(detail, content, request_id)
        except SendingTooFast:
            if created_here:
                # Nothing of the question was stored: no empty chat stays.
                await self.db.delete_chat(self.user_id, chat.id)
            raise
        return StartedChat(chat.id, started)

    async def _send_or_find(
        self, chat: ChatDetail, content: str, request_id: uuid.UUID
    ) -> StartedReply:
        try:
            return await self._send_new(chat, content, request_id)
        except GenerationInProgress:
            # The busy reply may be this very form's, sent after `chat` was read.
            fresh = await self.db.get_chat(self.user_id, chat.id)
            sent = find_sent(fresh.messages, request_id)
            if sent is None:
                raise
            return sent

    async def _send_new(
        self, chat: ChatDetail, content: str, request_id: uuid.UUID | None
    ) -> StartedReply:
        with self.registry.reserve(chat.id):
            messages = await self._settle(chat)
            return await self._send_turn(chat, messages, content, request_id=request_id)

    async def edit_last_message(self, chat: ChatDetail, content: str) -> StartedReply:
        """Replace the last user message (and drop what follows it), then reply again."""
        with self.registry.reserve(chat.id):
            messages = await self._settle(chat)
            users = [i for i, message in enumerate(messages) if message.role == "user"]
            if not users:
                raise InvalidInput(NOTHING_TO_EDIT)
            earlier = messages[: users[-1]]
            # The new text must fit before anything is deleted; the old message and what
            # followed it go in the same transaction as the new turn, or not at all.
            fitted = await self._fit(
                [*history_for_model(earlier), _user(content)], start=previous_start(earlier)
            )
            return await self._send_turn(
                chat,
                earlier,
                content,
                fitted=fitted,
                replace_after_id=earlier[-1].id if earlier else 0,
            )

    async def retry_reply(self, chat: ChatDetail) -> StartedReply:
        """Answer the newest user message again when its reply failed (or is missing)."""
        with self.registry.reserve(chat.id):
            messages = await self._settle(chat)
            if not can_retry(messages):
                raise InvalidInput(NOTHING_TO_RETRY)
            return await self._reply_again(chat, messages)

    async def regenerate_reply(self, chat: ChatDetail) -> StartedReply:
        """Write the last reply again, replacing it."""
        with self.registry.reserve(chat.id):
            messages = await self._settle(chat)
            visible = [message for message in messages if message.role != "system"]
            has_user = any(message.role == "user" for message in visible)
            if not has_user or visible[-1].role != "assistant":
                raise InvalidInput(NOTHING_TO_REGENERATE)
            return await self._reply_again(chat, messages)

    async def stop(self, chat_id: uuid.UUID) -> None:
        """Stop the chat's reply: here if this process writes it, else through db-api.

        A stop that comes after the reply finished changes nothing.
        """
        live = self.registry.live_in_chat(chat_id)
        if live is not None and live.user_id == self.user_id:
            await live.stop()
            return
        chat = await self.db.get_chat(self.user_id, chat_id)
        for message in chat.messages:
            if message.status != "generating":
                continue
            try:
                # The owning task (on another replica) sees the conflict on its next save.
                stopped = await self.db.update_message(
                    self.user_id, chat_id, message.id, status="stopped", if_status="generating"
                )
            except MessageStatusChanged:
                logger.info("Reply %s finished before the stop arrived", message.id)
                continue
            # The page shown next (without script, or after a reload) has the whole text.
            await once_its_writer_stopped(self.db, self.user_id, stopped)

    async def _settle(self, chat: ChatDetail) -> list[MessagePublic]:
        """The chat's messages, unless a reply is being written or waits for a slot.

        Raises GenerationInProgress then. A reply whose writer is gone is not in the
        way: db-api marks it failed when it reads the chat.
        """
        if any(message.status == "generating" for message in chat.messages):
            raise GenerationInProgress()
        return list(chat.messages)

    async def write_adopted(self, chat_id: uuid.UUID, reply_id: int) -> None:
        """Write a reply taken over from a process that died while the reply waited.

        It keeps its place in the queue; its history is fitted now, as it would have been.
        """
        chat = await self.db.get_chat(self.user_id, chat_id)
        position = next((i for i, m in enumerate(chat.messages) if m.id == reply_id), None)
        if position is None:
            return  # deleted meanwhile (its job went with it)
        earlier = chat.messages[:position]
        users = [i for i, message in enumerate(earlier) if message.role == "user"]
        if not users:
            return
        last_user = users[-1]
        with self.registry.reserve(chat_id):
            fitted = await self._fit(
                history_for_model(earlier[: last_user + 1]), start=previous_start(earlier)
            )
            context_start_id = _context_start(
                seen_by_model(earlier[:last_user]), fitted, newest_id=earlier[last_user].id
            )
            await self._start(chat_id, reply_id, fitted, context_start_id)

    async def _send_turn(
        self,
        chat: ChatDetail,
        earlier: list[MessagePublic],
        content: str,
        *,
        fitted: FittedHistory | ModelError | None = None,
        request_id: uuid.UUID | None = None,
        replace_after_id: int | None = None,
    ) -> StartedReply:
        if fitted is None:
            fitted = await self._fit(
                [*history_for_model(earlier), _user(content)], start=previous_start(earlier)
            )
        fitted, slots = await self._slots_for(fitted)
        turn, created = await self.db.create_turn(
            self.user_id,
            chat.id,
            content=content,
            title=_new_title(chat, earlier, content),
            request_id=request_id,
            replace_after_id=replace_after_id,
            slots=slots,
        )
        if not created:
            # The same form reached another replica first: its reply is the answer.
            return StartedReply(chat.id, turn.reply.id, turn.user_message.id)
        context_start_id = _context_start(
            seen_by_model(earlier), fitted, newest_id=turn.user_message.id
        )
        await self._start(chat.id, turn.reply.id, fitted, context_start_id, granted_slot=turn.slot)
        return StartedReply(chat.id, turn.reply.id, turn.user_message.id)

    async def _reply_again(self, chat: ChatDetail, messages: list[MessagePublic]) -> StartedReply:
        """Reply to the newest user message, reusing the reply row after it if there is one."""
        last_user = max(i for i, message in enumerate(messages) if message.role == "user")
        earlier = messages[: last_user + 1]
        # The reply being replaced saw what this one should: the same prompt, cached.
        fitted = await self._fit(history_for_model(earlier), start=previous_start(messages))
        try:
            later = messages[last_user + 1 :]
            if later:
                # Claimed first: a refusal (busy, too fast) must leave every message there.
                reply = await self.db.update_message(
                    self.user_id,
                    chat.id,
                    later[0].id,
                    content="",
                    status="generating",
                    if_status=later[0].status,
                )
                if len(later) > 1:
                    await self.db.delete_messages_after(self.user_id, chat.id, after_id=reply.id)
            else:
                reply = await self.db.add_message(
                    self.user_id, chat.id, role="assistant", content="", status="generating"
                )
        except MessageStatusChanged:
            raise GenerationInProgress() from None
        context_start_id = _context_start(
            seen_by_model(earlier[:-1]), fitted, newest_id=messages[last_user].id
        )
        await self._start(chat.id, reply.id, fitted, context_start_id)
        return StartedReply(chat.id, reply.id, None)

    async def _fit(self, history: list[ChatMessage], *, start: int) -> FittedHistory | ModelError:
        """Fit the history; a model failure is returned, not raised: the message is still saved."""
        try:
            fitted = await fit_history_to_context(
                self.settings.system_prompt,
                history,
                context_tokens=await self.lm.context_tokens(),
                reply_tokens=self.settings.max_reply_tokens,
                count_tokens=self.lm.count_tokens,
                upper_bound=await self.lm.prompt_size_bound(),
                start=start,
            )
        except ModelError as error:
            return error
        if fitted.dropped:
            logger.info("Dropped the %d oldest messages to fit the context", fitted.dropped)
        return fitted

    def _open_stream(self, fitted: FittedHistory | ModelError, slot: int | None) -> DeltaStream:
        if isinstance(fitted, ModelError):
            return failing_stream(fitted)
        return self.lm.stream_chat(
            fitted.messages, max_tokens=self.settings.max_reply_tokens, slot=slot
        )

    async def _slots_for(
        self, fitted: FittedHistory | ModelError
    ) -> tuple[FittedHistory | ModelError, int | None]:
        """The model server's slot count, for a reply that will ask the model (else None)."""
        if isinstance(fitted, ModelError):
            return fitted, None
        try:
            return fitted, await self.lm.total_slots()  # read with the context size: cached
        except ModelError as error:
            return error, None

    async def _start(
        self,
        chat_id: uuid.UUID,
        reply_id: int,
        fitted: FittedHistory | ModelError,
        context_start_id: int | None,
        *,
        granted_slot: int | None = None,
    ) -> None:
        fitted, slots = await self._slots_for(fitted)
        store = DbReplyStore(self.db, self.user_id, chat_id, reply_id, context_start_id, slots or 1)
        generation = Generation(
            message_id=reply_id,
            chat_id=chat_id,
            user_id=self.user_id,
            open_deltas=functools.partial(self._open_stream, fitted),
            store=store,
            # A reply known to fail (the model away) fails at once; it needs no slot.
            needs_slot=not isinstance(fitted, ModelError),
            granted_slot=granted_slot,
            waiters=self.registry.slot_waiters,
        )
        self.registry.start(generation)


async def adopt_waiting_replies(
    db: DbClient, lm: LmClient, settings: Callable[[], Settings], registry: GenerationRegistry
) -> None:
    """Every few seconds, take over replies whose process died while they waited.

    Runs for the life of the process (every replica does): a queued reply is in db-api,
    so losing the process that queued it loses nothing but a few seconds.
    """
    while True:
        await asyncio.sleep(ADOPT_SECONDS)
        try:
            while (adopted := await db.adopt_reply()) is not None:
                logger.info("Taking over reply %s, whose writer is gone", adopted.message_id)
                conversation = Conversation(db, lm, settings(), registry, adopted.owner_id)
                await conversation.write_adopted(adopted.chat_id, adopted.message_id)
        except ChatUiError as failure:
            # Its lease lapses again, and it is taken over on a later round.
            logger.warning("Could not take over a waiting reply: %s", failure)


def _user(content: str) -> ChatMessage:
    return {"role": "user", "content": content}


def _new_title(chat: ChatDetail, earlier: list[MessagePublic], content: str) -> str | None:
    """A title from the first message, unless the chat has one already (or was renamed)."""
    if chat.title != DEFAULT_CHAT_TITLE or any(m.role == "user" for m in earlier):
        return None
    return title_from_message(content)


def _context_start(
    earlier_seen: list[MessagePublic], fitted: FittedHistory | ModelError, *, newest_id: int
) -> int | None:
    """The id of the oldest message the model saw, or None when it saw them all.

    `earlier_seen` are the messages before the newest user message, as shown to the
    model; fitting dropped the first `dropped` of them (never the newest message).
    """
    if isinstance(fitted, ModelError) or fitted.dropped == 0:
        return None
    if fitted.dropped < len(earlier_seen):
        return earlier_seen[fitted.dropped].id
    return newest_id

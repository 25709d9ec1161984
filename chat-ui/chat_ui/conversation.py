"""Sending a message and getting the reply: the order of writes and what a failure leaves.

The rules: nothing is written until the message is known to fit the model's
context; the user's message and the empty reply are stored together (one db-api
call); the model request starts at once and a background `Generation` writes the
reply, ending it as "complete", "stopped" or "error" (text so far kept), never
"generating". One reply at a time per chat. Sending, retrying, regenerating and
editing all go through `_start_reply`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from chat_ui.config import Settings
from chat_ui.context import ChatMessage, FittedHistory, fit_history_to_context
from chat_ui.db_client import DbClient
from chat_ui.errors import (
    ChatUiError,
    GenerationInProgress,
    InvalidInput,
    MessageStatusChanged,
    ModelError,
)
from chat_ui.generation import (
    DeltaStream,
    Generation,
    GenerationRegistry,
    PrefetchedStream,
    failing_stream,
)
from chat_ui.lm_client import LmClient
from chat_ui.schemas import ChatDetail, MessagePublic, MessageStatus

logger = logging.getLogger(__name__)

DEFAULT_CHAT_TITLE = "New chat"
TITLE_MAX_CHARS = 60
# A "generating" reply nobody has saved for this long has lost its task (a crash, a
# restart): it is shown as interrupted and may be retried.
INTERRUPTED_AFTER = timedelta(seconds=60)
INTERRUPTED_MESSAGE = "The reply was interrupted before it was finished. Try again."
NOTHING_TO_RETRY = "There is no failed reply to retry."
NOTHING_TO_REGENERATE = "There is no reply to regenerate yet."
NOTHING_TO_EDIT = "There is no message of yours to edit yet."


def title_from_message(content: str, *, max_chars: int = TITLE_MAX_CHARS) -> str:
    """A chat title from the first message: whitespace collapsed, cut at a word if possible."""
    collapsed = " ".join(content.split())
    if not collapsed:
        return DEFAULT_CHAT_TITLE
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


def can_retry(messages: list[MessagePublic]) -> bool:
    """True when the newest user message has no usable reply."""
    visible = [message for message in messages if message.role != "system"]
    if not visible:
        return False
    last = visible[-1]
    return last.role == "user" or (last.role == "assistant" and last.status == "error")


def is_interrupted(message: MessagePublic, *, live: bool, now: datetime | None = None) -> bool:
    """A "generating" row that no task here owns and nobody has saved for a while."""
    if message.status != "generating" or live:
        return False
    now = now or datetime.now(UTC)
    return now - message.updated_at > INTERRUPTED_AFTER


def as_shown(messages: list[MessagePublic], registry: GenerationRegistry) -> list[MessagePublic]:
    """The messages with interrupted replies shown as failed (status "error")."""
    now = datetime.now(UTC)
    return [
        message.model_copy(update={"status": "error"})
        if is_interrupted(message, live=registry.is_live(message.id), now=now)
        else message
        for message in messages
    ]


@dataclass(frozen=True)
class StartedReply:
    """A reply being written in the background."""

    chat_id: uuid.UUID
    reply_id: int
    user_message_id: int | None
    generation: Generation


@dataclass(frozen=True)
class DbReplyStore:
    """Saves one reply's progress to db-api (see generation.ReplyStore)."""

    db: DbClient
    user_id: uuid.UUID
    chat_id: uuid.UUID
    message_id: int
    context_start_id: int | None

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

    async def send_message(self, chat: ChatDetail, content: str) -> StartedReply:
        """Store `content` as the user's next message and start writing the reply.

        Raises GenerationInProgress or MessageTooLongForContext before writing
        anything, DatabaseUnavailable if db-api fails. A model failure does not
        raise: the reply ends as "error" (the message is kept and can be retried).
        """
        with self.registry.reserve(chat.id):
            messages = await self._settle(chat)
            return await self._send_turn(chat, messages, content)

    async def edit_last_message(self, chat: ChatDetail, content: str) -> StartedReply:
        """Replace the last user message (and drop what follows it), then reply again."""
        with self.registry.reserve(chat.id):
            messages = await self._settle(chat)
            users = [i for i, message in enumerate(messages) if message.role == "user"]
            if not users:
                raise InvalidInput(NOTHING_TO_EDIT)
            earlier = messages[: users[-1]]
            # The new text must fit before anything is deleted.
            fitted = await self._fit([*history_for_model(earlier), _user(content)])
            await self.db.delete_messages_after(
                self.user_id, chat.id, after_id=earlier[-1].id if earlier else 0
            )
            return await self._send_turn(chat, earlier, content, fitted=fitted)

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
                await self.db.update_message(
                    self.user_id, chat_id, message.id, status="stopped", if_status="generating"
                )
            except MessageStatusChanged:
                logger.info("Reply %s finished before the stop arrived", message.id)

    async def _settle(self, chat: ChatDetail) -> list[MessagePublic]:
        """The chat's messages, once no other reply is being written.

        Raises GenerationInProgress while one is (here, or recently saved elsewhere);
        marks interrupted ones as failed so they can be retried.
        """
        messages = list(chat.messages)
        now = datetime.now(UTC)
        for index, message in enumerate(messages):
            if message.status != "generating":
                continue
            if not is_interrupted(message, live=self.registry.is_live(message.id), now=now):
                raise GenerationInProgress()
            try:
                messages[index] = await self.db.update_message(
                    self.user_id, chat.id, message.id, status="error", if_status="generating"
                )
            except MessageStatusChanged:
                raise GenerationInProgress() from None
        return messages

    async def _send_turn(
        self,
        chat: ChatDetail,
        earlier: list[MessagePublic],
        content: str,
        *,
        fitted: FittedHistory | ModelError | None = None,
    ) -> StartedReply:
        if fitted is None:
            fitted = await self._fit([*history_for_model(earlier), _user(content)])
        deltas = self._open_stream(fitted)
        try:
            turn = await self.db.create_turn(
                self.user_id, chat.id, content=content, title=_new_title(chat, earlier, content)
            )
        except BaseException:
            await deltas.aclose()
            raise
        context_start_id = _context_start(
            seen_by_model(earlier), fitted, newest_id=turn.user_message.id
        )
        generation = self._start(chat.id, turn.reply.id, deltas, context_start_id)
        return StartedReply(chat.id, turn.reply.id, turn.user_message.id, generation)

    async def _reply_again(self, chat: ChatDetail, messages: list[MessagePublic]) -> StartedReply:
        """Reply to the newest user message, reusing the reply row after it if there is one."""
        last_user = max(i for i, message in enumerate(messages) if message.role == "user")
        earlier = messages[: last_user + 1]
        fitted = await self._fit(history_for_model(earlier))
        deltas = self._open_stream(fitted)
        try:
            later = messages[last_user + 1 :]
            if later:
                if len(later) > 1:
                    await self.db.delete_messages_after(self.user_id, chat.id, after_id=later[0].id)
                reply = await self.db.update_message(
                    self.user_id,
                    chat.id,
                    later[0].id,
                    content="",
                    status="generating",
                    if_status=later[0].status,
                )
            else:
                reply = await self.db.add_message(
                    self.user_id, chat.id, role="assistant", content="", status="generating"
                )
        except MessageStatusChanged:
            await deltas.aclose()
            raise GenerationInProgress() from None
        except BaseException:
            await deltas.aclose()
            raise
        context_start_id = _context_start(
            seen_by_model(earlier[:-1]), fitted, newest_id=messages[last_user].id
        )
        generation = self._start(chat.id, reply.id, deltas, context_start_id)
        return StartedReply(chat.id, reply.id, None, generation)

    async def _fit(self, history: list[ChatMessage]) -> FittedHistory | ModelError:
        """Fit the history; a model failure is returned, not raised: the message is still saved."""
        try:
            fitted = await fit_history_to_context(
                self.settings.system_prompt,
                history,
                context_tokens=await self.lm.context_tokens(),
                reply_tokens=self.settings.max_reply_tokens,
                count_tokens=self.lm.count_tokens,
                upper_bound=await self.lm.prompt_size_bound(),
            )
        except ModelError as error:
            return error
        if fitted.dropped:
            logger.info("Dropped the %d oldest messages to fit the context", fitted.dropped)
        return fitted

    def _open_stream(self, fitted: FittedHistory | ModelError) -> DeltaStream:
        source: AsyncGenerator[str, None]
        if isinstance(fitted, ModelError):
            source = failing_stream(fitted)
        else:
            source = self.lm.stream_chat(fitted.messages, max_tokens=self.settings.max_reply_tokens)
        return PrefetchedStream(source)

    def _start(
        self,
        chat_id: uuid.UUID,
        reply_id: int,
        deltas: DeltaStream,
        context_start_id: int | None,
    ) -> Generation:
        store = DbReplyStore(self.db, self.user_id, chat_id, reply_id, context_start_id)
        generation = Generation(
            message_id=reply_id, chat_id=chat_id, user_id=self.user_id, deltas=deltas, store=store
        )
        self.registry.start(generation)
        return generation


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


# Failures a form shows inline with the typed text kept (the rest become error pages).
FORM_ERRORS: tuple[type[ChatUiError], ...] = (InvalidInput, GenerationInProgress)

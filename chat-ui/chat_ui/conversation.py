"""Sending a message and getting the reply: the order of writes and what a failure leaves.

The rules: nothing is written until the message is known to fit the model's
context; if storing the user's message fails nothing else is written; once the
assistant row exists it always ends as "complete" or "error", never "generating".
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from chat_ui.config import Settings
from chat_ui.context import ChatMessage, FittedHistory, fit_history_to_context
from chat_ui.db_client import DbClient
from chat_ui.errors import InvalidInput, ModelError
from chat_ui.lm_client import LmClient
from chat_ui.schemas import ChatDetail, MessagePublic

logger = logging.getLogger(__name__)

DEFAULT_CHAT_TITLE = "New chat"
TITLE_MAX_CHARS = 60


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


def history_for_model(messages: list[MessagePublic]) -> list[ChatMessage]:
    """The turns the model should see: user and assistant text, without empty failed replies."""
    return [
        {"role": message.role, "content": message.content}
        for message in messages
        if message.role != "system" and message.content and message.status != "generating"
    ]


def can_retry(messages: list[MessagePublic]) -> bool:
    """True when the newest user message has no usable reply."""
    visible = [message for message in messages if message.role != "system"]
    if not visible:
        return False
    last = visible[-1]
    return last.role == "user" or (last.role == "assistant" and last.status == "error")


@dataclass(frozen=True)
class Conversation:
    """One user's actions on their chats, over db-api and the model server."""

    db: DbClient
    lm: LmClient
    settings: Settings
    user_id: uuid.UUID

    async def send_message(self, chat: ChatDetail, content: str) -> None:
        """Store `content` as the user's next message and store the model's reply.

        Raises MessageTooLongForContext before writing anything, DatabaseUnavailable
        if db-api fails, and ModelError (after marking the reply as failed) if the
        model does.
        """
        history = [*history_for_model(chat.messages), {"role": "user", "content": content}]
        fitted, model_error = await self._fit(history)
        await self.db.add_message(self.user_id, chat.id, role="user", content=content)
        if chat.title == DEFAULT_CHAT_TITLE and not any(m.role == "user" for m in chat.messages):
            await self.db.rename_chat(self.user_id, chat.id, title=title_from_message(content))
        reply = await self.db.add_message(
            self.user_id, chat.id, role="assistant", content="", status="generating"
        )
        await self._generate(chat.id, reply.id, fitted, model_error)

    async def retry_reply(self, chat: ChatDetail) -> None:
        """Answer the newest user message again, reusing its failed reply row if there is one."""
        if not can_retry(chat.messages):
            return
        last_user = max(i for i, message in enumerate(chat.messages) if message.role == "user")
        fitted, model_error = await self._fit(history_for_model(chat.messages[: last_user + 1]))
        last = chat.messages[-1]
        if last.role == "assistant" and last.status == "error":
            reply = await self.db.update_message(
                self.user_id, chat.id, last.id, content="", status="generating"
            )
        else:
            reply = await self.db.add_message(
                self.user_id, chat.id, role="assistant", content="", status="generating"
            )
        await self._generate(chat.id, reply.id, fitted, model_error)

    async def _fit(
        self, history: list[ChatMessage]
    ) -> tuple[FittedHistory | None, ModelError | None]:
        """Fit the history; a model failure is returned, not raised: the message is still saved."""
        try:
            fitted = await fit_history_to_context(
                self.settings.system_prompt,
                history,
                context_tokens=await self.lm.context_tokens(),
                reply_tokens=self.settings.max_reply_tokens,
                count_tokens=self.lm.count_tokens,
            )
        except ModelError as error:
            return None, error
        if fitted.dropped:
            logger.info("Dropped the %d oldest messages to fit the context", fitted.dropped)
        return fitted, None

    async def _generate(
        self,
        chat_id: uuid.UUID,
        reply_id: int,
        fitted: FittedHistory | None,
        model_error: ModelError | None,
    ) -> None:
        try:
            if model_error is not None:
                raise model_error
            assert fitted is not None
            content = await self.lm.complete_chat(
                fitted.messages, max_tokens=self.settings.max_reply_tokens
            )
            if not content:
                raise ModelError("The model gave an empty answer. Try again.")
        except ModelError:
            await self.db.update_message(self.user_id, chat_id, reply_id, status="error")
            raise
        await self.db.update_message(
            self.user_id, chat_id, reply_id, content=content, status="complete"
        )

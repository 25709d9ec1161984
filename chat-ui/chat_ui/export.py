"""A chat as a downloadable file: a Markdown document or JSON, and a safe file name for it."""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from chat_ui.schemas import ChatDetail, MessagePublic

AUTHOR_BY_ROLE = {"user": "You", "assistant": "Assistant"}
STATUS_NOTES = {
    "stopped": "stopped before the end",
    "error": "the reply failed; this is the text written so far",
    "generating": "still being written when exported",
}
MAX_FILENAME_STEM = 60
_UNSAFE_ASCII = re.compile(r"[^A-Za-z0-9._-]+")
# Characters no file name should carry, whatever the operating system.
_UNSAFE_ANYWHERE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]+')


def _timestamp(moment: datetime) -> str:
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _exported_messages(chat: ChatDetail) -> list[MessagePublic]:
    # The system prompt is the app's, not part of what the user and the model said.
    return [message for message in chat.messages if message.role != "system"]


def chat_as_markdown(chat: ChatDetail) -> str:
    """`# title`, then one section per message with its author, time and (if any) status."""
    title = " ".join(chat.title.split())
    parts = [f"# {title}", ""]
    for message in _exported_messages(chat):
        heading = f"**{AUTHOR_BY_ROLE[message.role]}** · {_timestamp(message.created_at)}"
        if message.status in STATUS_NOTES:
            heading += f" · _({STATUS_NOTES[message.status]})_"
        parts += [heading, "", message.content.rstrip() or "_(empty)_", "", "---", ""]
    if parts[-2:] == ["---", ""]:
        del parts[-2:]
    return "\n".join(parts).rstrip("\n") + "\n"


def chat_as_json(chat: ChatDetail) -> str:
    payload: dict[str, Any] = {
        "chat": chat.model_dump(mode="json", exclude={"messages"}),
        "messages": [message.model_dump(mode="json") for message in _exported_messages(chat)],
    }
    return json.dumps(payload, ensure_ascii=False, indent=2) + "\n"


def attachment_disposition(title: str, extension: str) -> str:
    """`attachment` with an ASCII `filename` every client understands and the real title
    in RFC 5987 `filename*` for those that read it (all current browsers)."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    stem = _UNSAFE_ASCII.sub("-", ascii_title).strip("-.")[:MAX_FILENAME_STEM].strip("-.")
    readable = " ".join(_UNSAFE_ANYWHERE.sub(" ", title).split())
    readable = readable.strip(".")[:MAX_FILENAME_STEM].strip(" .")
    ascii_name = f"{stem or 'chat'}.{extension}"
    utf8_name = quote(f"{readable or 'chat'}.{extension}", safe="")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{utf8_name}"

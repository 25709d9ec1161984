"""Chats as downloadable files: one as a Markdown document or JSON, or all of a user's in
one zip; and file names that are safe on any system."""

from __future__ import annotations

import json
import re
import unicodedata
import zipfile
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import IO, Any
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
# What would end or nest a Markdown link's text.
_MARKDOWN_LINK_TEXT = re.compile(r"[\\\[\]]")


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


def readable_file_stem(title: str) -> str:
    """The title as a file name (without extension): any script, nothing a system refuses."""
    readable = " ".join(_UNSAFE_ANYWHERE.sub(" ", title).split())
    return readable.strip(".")[:MAX_FILENAME_STEM].strip(" .")


def attachment_disposition(title: str, extension: str) -> str:
    """`attachment` with an ASCII `filename` every client understands and the real title
    in RFC 5987 `filename*` for those that read it (all current browsers)."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    stem = _UNSAFE_ASCII.sub("-", ascii_title).strip("-.")[:MAX_FILENAME_STEM].strip("-.")
    ascii_name = f"{stem or 'chat'}.{extension}"
    utf8_name = quote(f"{readable_file_stem(title) or 'chat'}.{extension}", safe="")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{utf8_name}"


class ChatArchive:
    """All of a user's chats in one zip: each as Markdown and as JSON, and an index.

    Everything is under one folder, so unpacking makes one. A chat's files are named by
    the day it started and its title (numbered when two would share a name, whatever
    the case), so they sort by date. Writing compresses: call it off the event loop.
    """

    def __init__(self, file: IO[bytes], *, folder: str, exported_at: datetime) -> None:
        self._zip = zipfile.ZipFile(file, "w", compression=zipfile.ZIP_DEFLATED)
        self._folder = folder
        self._exported_at = exported_at
        self._names: set[str] = set()
        self._index: list[tuple[ChatDetail, str]] = []

    def add(self, chats: Iterable[ChatDetail]) -> None:
        for chat in chats:
            started = chat.created_at.astimezone(UTC).date().isoformat()
            stem = self._unique_stem(f"{started} {readable_file_stem(chat.title) or 'chat'}")
            self._write(f"{stem}.md", chat_as_markdown(chat), chat.updated_at)
            self._write(f"{stem}.json", chat_as_json(chat), chat.updated_at)
            self._index.append((chat, stem))

    def close(self) -> None:
        """Write the index, then the zip's directory."""
        self._write("index.md", self._index_markdown(), self._exported_at)
        self._zip.close()

    def _unique_stem(self, stem: str) -> str:
        candidate, number = stem, 1
        # Windows and macOS file systems ignore case.
        while candidate.casefold() in self._names:
            number += 1
            candidate = f"{stem} ({number})"
        self._names.add(candidate.casefold())
        return candidate

    def _write(self, name: str, text: str, moment: datetime) -> None:
        # The chat's own time, not the export's: the same chats make the same files.
        stamp = moment.astimezone(UTC).timetuple()[:6]
        entry = zipfile.ZipInfo(f"{self._folder}/{name}", date_time=stamp)
        entry.compress_type = zipfile.ZIP_DEFLATED
        self._zip.writestr(entry, text.encode())

    def _index_markdown(self) -> str:
        count = len(self._index)
        lines = [
            "# Your chats",
            "",
            f"Exported {_timestamp(self._exported_at)}: {count} chat{'' if count == 1 else 's'}, "
            "each as Markdown (to read) and as JSON (for programs). Most recently active first.",
            "",
        ]
        by_activity = sorted(self._index, key=lambda entry: entry[0].updated_at, reverse=True)
        for chat, stem in by_activity:
            title = _MARKDOWN_LINK_TEXT.sub(r"\\\g<0>", " ".join(chat.title.split()))
            shown = len(_exported_messages(chat))
            lines.append(
                f"- [{title}](<{stem}.md>) ([JSON](<{stem}.json>)): {shown} "
                f"message{'' if shown == 1 else 's'}, last active {_timestamp(chat.updated_at)}"
            )
        return "\n".join(lines) + "\n"

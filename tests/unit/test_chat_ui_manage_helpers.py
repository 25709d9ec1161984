"""Search snippets, export documents and download file names (pure helpers, no services)."""

from __future__ import annotations

import io
import uuid
import zipfile
from datetime import UTC, datetime

import pytest

from chat_ui.errors import InvalidInput
from chat_ui.export import ChatArchive, attachment_disposition, chat_as_markdown
from chat_ui.routes.manage import highlight_snippet, validate_title
from chat_ui.schemas import ChatDetail, MessagePublic
from chat_ui.user_agents import describe_browser

MOMENT = datetime(2025, 3, 4, 14, 5, tzinfo=UTC)


def test_snippet_text_is_escaped_before_matches_become_marks() -> None:
    html = highlight_snippet("<b>x</b> \u0002zebra\u0003 & <script>alert(1)</script>")
    assert html == (
        "&lt;b&gt;x&lt;/b&gt; <mark>zebra</mark> &amp; &lt;script&gt;alert(1)&lt;/script&gt;"
    )


def test_unbalanced_markers_never_leave_stray_tags_or_control_characters() -> None:
    assert highlight_snippet("\u0003a \u0002b") == "a b"
    assert highlight_snippet("\u0002<i>\u0003") == "<mark>&lt;i&gt;</mark>"


@pytest.mark.parametrize("bad", ["", "   ", "x" * 201])
def test_titles_must_have_1_to_200_characters(bad: str) -> None:
    with pytest.raises(InvalidInput):
        validate_title(bad)


def test_titles_are_trimmed() -> None:
    assert validate_title("  Plans  ") == "Plans"


def test_file_names_are_safe_ascii_with_the_real_title_in_filename_star() -> None:
    assert attachment_disposition("Café plans / 2025", "md") == (
        "attachment; filename=\"Cafe-plans-2025.md\"; filename*=UTF-8''Caf%C3%A9%20plans%202025.md"
    )
    header = attachment_disposition('../../etc/"passwd"\r\nX-Evil: 1', "json")
    assert "\r" not in header and "\n" not in header
    assert header.startswith('attachment; filename="etc-passwd-X-Evil-1.json"')
    assert attachment_disposition("日本語", "md").startswith('attachment; filename="chat.md"')


def message(message_id: int, role: str, content: str, status: str = "complete") -> MessagePublic:
    return MessagePublic.model_validate(
        {
            "id": message_id,
            "chat_id": uuid.uuid4(),
            "role": role,
            "content": content,
            "status": status,
            "created_at": MOMENT,
            "updated_at": MOMENT,
        }
    )


def test_markdown_export_lists_the_conversation_without_the_system_prompt() -> None:
    chat = ChatDetail(
        id=uuid.uuid4(),
        title="Weekend\nplans",
        created_at=MOMENT,
        updated_at=MOMENT,
        messages=[
            message(1, "system", "secret prompt"),
            message(2, "user", "Ideas?"),
            message(3, "assistant", "Hike", "stopped"),
        ],
    )
    assert chat_as_markdown(chat) == (
        "# Weekend plans\n\n"
        "**You** · 2025-03-04 14:05 UTC\n\nIdeas?\n\n---\n\n"
        "**Assistant** · 2025-03-04 14:05 UTC · _(stopped before the end)_\n\nHike\n"
    )


def chat_titled(title: str, *messages: MessagePublic) -> ChatDetail:
    return ChatDetail(
        id=uuid.uuid4(),
        title=title,
        created_at=MOMENT,
        updated_at=MOMENT,
        messages=list(messages),
    )


def test_the_archive_names_files_safely_once_each_under_one_folder() -> None:
    titles = ["../../etc/passwd", "CON", "Plans: a/b?", "plans A B", "...", "日本語 [draft]"]
    file = io.BytesIO()
    archive = ChatArchive(file, folder="chats-alice-2025-03-04", exported_at=MOMENT)
    archive.add(chat_titled(title, message(1, "user", f"About {title}")) for title in titles)
    archive.close()
    with zipfile.ZipFile(file) as unpacked:
        names = unpacked.namelist()
        index = unpacked.read("chats-alice-2025-03-04/index.md").decode()
    assert names[-1] == "chats-alice-2025-03-04/index.md"
    stems = [name.removeprefix("chats-alice-2025-03-04/") for name in names[:-1:2]]
    assert stems == [
        "2025-03-04 etc passwd.md",
        "2025-03-04 CON.md",
        "2025-03-04 Plans a b.md",
        "2025-03-04 plans A B (2).md",
        "2025-03-04 chat.md",
        "2025-03-04 日本語 [draft].md",
    ]
    assert all(name.startswith("chats-alice-2025-03-04/") and ".." not in name for name in names)
    # Link text cannot be closed early by a title; each chat links its two files.
    assert r"[日本語 \[draft\]](<2025-03-04 日本語 [draft].md>)" in index
    assert "([JSON](<2025-03-04 chat.json>)): 1 message," in index
    assert "6 chats" in index


@pytest.mark.parametrize(
    ("user_agent", "named"),
    [
        (
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
            "Firefox on Linux",
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0",
            "Edge on Windows",
        ),
        (
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/126.0.0.0 Mobile Safari/537.36",
            "Chrome on Android",
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
            "Safari on iOS",
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.5 Safari/605.1.15",
            "Safari on macOS",
        ),
        ("curl/8.5.0", "curl/8.5.0"),
        (None, "Unknown browser"),
        ("", "Unknown browser"),
    ],
)
def test_browsers_are_named_as_people_know_them(user_agent: str | None, named: str) -> None:
    assert describe_browser(user_agent) == named

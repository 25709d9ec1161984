"""Search snippets, export documents and download file names (pure helpers, no services)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from chat_ui.errors import InvalidInput
from chat_ui.export import attachment_disposition, chat_as_markdown
from chat_ui.routes.manage import highlight_snippet, validate_title
from chat_ui.schemas import ChatDetail, MessagePublic

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

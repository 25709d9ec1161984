"""Small chat-ui helpers: chat titles, message validation, safe redirects, dates, retries,
waits in words."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from chat_ui.conversation import (
    DEFAULT_CHAT_TITLE,
    can_retry,
    history_for_model,
    previous_start,
    title_from_message,
    validate_message,
)
from chat_ui.errors import (
    InvalidInput,
    SendingTooFast,
    StartingChatsTooFast,
    TooManyAttempts,
    wait_in_words,
)
from chat_ui.markdown import plain_fragment
from chat_ui.middleware import local_location
from chat_ui.pages import short_date
from chat_ui.schemas import MessagePublic
from chat_ui.security import DEFAULT_AFTER_SIGN_IN, safe_next_path


def test_short_message_is_the_title() -> None:
    assert title_from_message("What is a GGUF file?") == "What is a GGUF file?"


def test_title_collapses_whitespace() -> None:
    assert title_from_message("  Hello  there\tfriend  ") == "Hello there friend"


def test_title_is_the_first_sentence() -> None:
    message = "List five fruits. Then describe each one in a long paragraph."
    assert title_from_message(message) == "List five fruits."
    assert (
        title_from_message("Why is llama.cpp v1.2 fast? Explain.") == "Why is llama.cpp v1.2 fast?"
    )
    assert title_from_message("Plan a trip\n\nto Lisbon in May") == "Plan a trip"


def test_title_is_plain_text() -> None:
    message = "## Compare **Readability** and [the docs](https://example.com) with `ruff`"
    assert title_from_message(message) == "Compare Readability and the docs with ruff"
    assert title_from_message("```\nprint('hi')\n```") == "print('hi')"


def test_a_cut_out_piece_of_markdown_loses_the_marks_cut_from_their_other_half() -> None:
    assert plain_fragment("word** worth a ~~visit and `code") == "word worth a visit and code"
    assert plain_fragment("Is **word** worth a visit?") == "Is word worth a visit?"
    assert plain_fragment("2 * 3 = 6 and snake_case") == "2 * 3 = 6 and snake_case"


def test_long_title_is_cut_at_a_word() -> None:
    message = "Explain how the context window of a language model limits the conversation history"
    title = title_from_message(message)
    assert len(title) <= 60
    assert title.endswith("…")
    assert message.startswith(title[:-1])
    assert not title[:-1].endswith(" ")
    assert title[:-1].split()[-1] in message.split()


def test_long_word_is_cut_anywhere() -> None:
    title = title_from_message("x" * 500)
    assert title == "x" * 59 + "…"


def test_blank_message_keeps_default_title() -> None:
    assert title_from_message(" \n ") == DEFAULT_CHAT_TITLE


def test_validate_message_strips() -> None:
    assert validate_message("  hi \n", max_chars=10) == "hi"


@pytest.mark.parametrize("content", ["", "   ", "\n\t"])
def test_validate_message_rejects_blank(content: str) -> None:
    with pytest.raises(InvalidInput, match="Type a message"):
        validate_message(content, max_chars=10)


def test_validate_message_rejects_too_long() -> None:
    assert validate_message("x" * 10, max_chars=10) == "x" * 10
    with pytest.raises(InvalidInput, match="limit is 10"):
        validate_message("x" * 11, max_chars=10)


@pytest.mark.parametrize(
    "candidate",
    ["/chats", "/chats/123", "/chats?x=1", "/"],
)
def test_local_next_paths_are_kept(candidate: str) -> None:
    assert safe_next_path(candidate) == candidate


@pytest.mark.parametrize(
    "candidate",
    [
        None,
        "",
        "chats",
        "//evil.example",
        "//evil.example/chats",
        "/\\evil.example",
        "/chats\\..\\x",
        "https://evil.example/",
        "javascript:alert(1)",
        "/chats\r\nSet-Cookie: x=1",
        "\t//evil.example",
    ],
)
def test_other_next_values_fall_back(candidate: str | None) -> None:
    assert safe_next_path(candidate) == DEFAULT_AFTER_SIGN_IN


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("/chats", "/chats"),
        ("/chats/1?latest=1#end", "/chats/1?latest=1#end"),
        ("http://evil.example/chats?q=x", "/chats?q=x"),
        ("https://evil.example", "/"),
        ("//evil.example/chats", "/chats"),
        ("/\\evil.example", "/evil.example"),
        ("///evil.example", "/evil.example"),
    ],
)
def test_redirects_are_made_local_paths(location: str, expected: str) -> None:
    assert local_location(location.encode()) == expected.encode()


def test_short_date() -> None:
    now = datetime(2025, 6, 12, 15, 0, tzinfo=UTC)  # a Thursday
    assert short_date(now - timedelta(hours=1), now) == "14:00"
    assert short_date(now - timedelta(days=2), now) == "Tue"
    assert short_date(datetime(2025, 3, 3, tzinfo=UTC), now) == "3 Mar"
    assert short_date(datetime(2024, 3, 3, tzinfo=UTC), now) == "3 Mar 2024"


def message(
    index: int,
    role: str,
    content: str = "text",
    status: str = "complete",
    context_start_id: int | None = None,
) -> MessagePublic:
    moment = datetime(2025, 1, 1, tzinfo=UTC)
    return MessagePublic.model_validate(
        {
            "id": index,
            "chat_id": uuid.uuid4(),
            "role": role,
            "content": content,
            "status": status,
            "created_at": moment,
            "updated_at": moment,
            "context_start_id": context_start_id,
        }
    )


def test_history_skips_system_and_empty_failed_replies() -> None:
    messages = [
        message(1, "system", "rules"),
        message(2, "assistant", "Hello"),
        message(3, "user", "Hi"),
        message(4, "assistant", "", "error"),
        message(5, "assistant", "partial", "stopped"),
        message(6, "assistant", "", "generating"),
    ]
    assert history_for_model(messages) == [
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "partial"},
    ]


def test_retry_only_when_the_last_user_message_has_no_reply() -> None:
    opening = message(1, "assistant", "Hello")
    question = message(2, "user", "Hi")
    assert not can_retry([])
    assert not can_retry([opening])
    assert can_retry([opening, question])
    assert can_retry([opening, question, message(3, "assistant", "", "error")])
    assert not can_retry([opening, question, message(3, "assistant", "Answer")])


def test_validate_message_rejects_nul() -> None:
    with pytest.raises(InvalidInput, match="NUL"):
        validate_message("a\x00b", max_chars=10)


def test_the_previous_start_is_where_the_newest_reply_began() -> None:
    earlier = [
        message(1, "user", "a"),
        message(2, "assistant", "", "error"),  # not shown to the model: not counted
        message(3, "assistant", "b"),
        message(4, "user", "c"),
    ]
    assert previous_start([]) == 0
    assert previous_start(earlier) == 0
    assert previous_start([*earlier, message(5, "assistant", "d", context_start_id=4)]) == 2
    # A newer reply that saw everything resets it; so does a start that is gone (an edit).
    assert previous_start([*earlier, message(5, "assistant", "d", context_start_id=9)]) == 0
    assert (
        previous_start(
            [
                message(1, "user", "a"),
                message(2, "assistant", "b", context_start_id=1),
                message(3, "user", "c"),
                message(4, "assistant", "d"),
            ]
        )
        == 0
    )


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (1, "1 second"),
        (12, "12 seconds"),
        (119, "119 seconds"),
        (120, "2 minutes"),
        (121, "3 minutes"),
    ],
)
def test_a_wait_in_words(seconds: int, words: str) -> None:
    assert wait_in_words(seconds) == words


def test_each_refusal_for_going_too_fast_says_when_to_try_again() -> None:
    assert TooManyAttempts(5).message == "Too many attempts. Try again in 5 seconds."
    assert SendingTooFast(12).message == (
        "You're asking for replies faster than this server allows. Try again in 12 seconds."
    )
    assert StartingChatsTooFast(1).message == (
        "You've started a lot of chats in a short time. Try again in 1 second."
    )
    assert SendingTooFast(12).status_code == StartingChatsTooFast(1).status_code == 429

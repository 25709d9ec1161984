"""CSRF token generation and comparison."""

from __future__ import annotations

import pytest

from chat_ui.security import csrf_tokens_match, new_csrf_token


def test_tokens_are_long_and_unique() -> None:
    tokens = {new_csrf_token() for _ in range(100)}
    assert len(tokens) == 100
    assert all(len(token) >= 40 for token in tokens)


def test_same_token_matches() -> None:
    token = new_csrf_token()
    assert csrf_tokens_match(token, token)


@pytest.mark.parametrize(
    ("expected", "submitted"),
    [
        ("abc", "abd"),
        ("abc", "abcd"),
        ("abc", ""),
        ("", ""),
        (None, None),
        (None, "abc"),
        ("abc", None),
    ],
)
def test_anything_else_does_not_match(expected: str | None, submitted: str | None) -> None:
    assert not csrf_tokens_match(expected, submitted)


def test_non_ascii_submission_does_not_crash() -> None:
    assert not csrf_tokens_match(new_csrf_token(), "jéton")

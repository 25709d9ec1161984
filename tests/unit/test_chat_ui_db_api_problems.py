"""db-api's 422 problems in the app's words: every constraint of its schemas, never its `msg`.

The problems are made by db-api's own schemas and shaped as its 422 body is (FastAPI's
`detail` list, JSON-encoded), so a changed limit shows up here.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, TypeAdapter, ValidationError

from chat_ui.errors import DB_API_PROBLEMS, InvalidInput, db_api_problem_message
from db_api.errors import EmptyMessageContentError
from db_api.schemas import ChatUpdate, PasswordChange, SearchQuery, TurnCreate, UserCreate

ALICE = {"username": "alice", "password": "correct horse battery"}
NEW = {"current_password": "correct horse battery", "new_password": "a new passphrase"}


def detail_for_body(model: type[BaseModel], body: dict[str, Any]) -> list[dict[str, Any]]:
    """The `detail` db-api answers when a request body fails `model`."""
    with pytest.raises(ValidationError) as caught:
        model.model_validate(body)
    errors = [{**error, "loc": ("body", *error["loc"])} for error in caught.value.errors()]
    detail: list[dict[str, Any]] = jsonable_encoder(errors)
    return detail


def detail_for_search(query: str) -> list[dict[str, Any]]:
    """The `detail` db-api answers for `GET /chats/search?q=<query>`."""
    with pytest.raises(ValidationError) as caught:
        TypeAdapter(SearchQuery).validate_python(query)
    errors = [{**error, "loc": ("query", "q")} for error in caught.value.errors()]
    detail: list[dict[str, Any]] = jsonable_encoder(errors)
    return detail


CASES = [
    (("username", "string_too_short"), UserCreate, {**ALICE, "username": "al"}),
    (("username", "string_too_long"), UserCreate, {**ALICE, "username": "a" * 33}),
    (("username", "string_pattern_mismatch"), UserCreate, {**ALICE, "username": "al ice"}),
    (("username", "nul_character"), UserCreate, {**ALICE, "username": "al\x00ice"}),
    (("password", "string_too_short"), UserCreate, {**ALICE, "password": "short"}),
    (("password", "string_too_long"), UserCreate, {**ALICE, "password": "p" * 129}),
    (("password", "nul_character"), UserCreate, {**ALICE, "password": "pass\x00word"}),
    (("new_password", "string_too_short"), PasswordChange, {**NEW, "new_password": "short"}),
    (("new_password", "string_too_long"), PasswordChange, {**NEW, "new_password": "p" * 129}),
    (("new_password", "nul_character"), PasswordChange, {**NEW, "new_password": "pass\x00word"}),
    (("title", "string_too_short"), ChatUpdate, {"title": "   "}),
    (("title", "string_too_long"), ChatUpdate, {"title": "t" * 201}),
    (("title", "nul_character"), ChatUpdate, {"title": "a\x00title"}),
    (("content", "too_short"), TurnCreate, {"content": ""}),
    (("content", "string_too_long"), TurnCreate, {"content": "m" * 32_001}),
    (("content", "nul_character"), TurnCreate, {"content": "a\x00message"}),
]
SEARCH_CASES = [
    (("q", "string_too_short"), "  "),
    (("q", "string_too_long"), "q" * 201),
    (("q", "nul_character"), "a\x00query"),
]
EXPECTED = {
    ("username", "string_too_short"): "Usernames need at least 3 characters.",
    ("username", "string_too_long"): "Usernames can be at most 32 characters.",
    ("username", "string_pattern_mismatch"): (
        "Usernames can only contain letters, digits, dots, dashes and underscores."
    ),
    ("username", "nul_character"): "Usernames can't contain control characters.",
    ("password", "string_too_short"): "Passwords need at least 8 characters.",
    ("password", "string_too_long"): "Passwords can be at most 128 characters.",
    ("password", "nul_character"): "Passwords can't contain NUL characters.",
    ("new_password", "string_too_short"): "Passwords need at least 8 characters.",
    ("new_password", "string_too_long"): "Passwords can be at most 128 characters.",
    ("new_password", "nul_character"): "Passwords can't contain NUL characters.",
    ("title", "string_too_short"): "Give the chat a title.",
    ("title", "string_too_long"): "Chat titles can be at most 200 characters.",
    ("title", "nul_character"): "Chat titles can't contain NUL characters.",
    ("content", "too_short"): "Type a message before sending.",
    ("content", "value_error"): "Type a message before sending.",
    ("content", "string_too_long"): "Messages can be at most 32,000 characters.",
    ("content", "nul_character"): "Messages can't contain NUL characters.",
    ("q", "string_too_short"): "Type something to search for.",
    ("q", "string_too_long"): "Search for at most 200 characters.",
    ("q", "nul_character"): "Searches can't contain NUL characters.",
}


def assert_in_our_words(detail: list[dict[str, Any]], expected: str) -> None:
    message = db_api_problem_message(detail)
    assert message == expected
    for problem in detail:
        assert problem["msg"] not in message


@pytest.mark.parametrize(("problem", "model", "body"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_each_body_constraint_in_our_words(
    problem: tuple[str, str], model: type[BaseModel], body: dict[str, Any]
) -> None:
    assert_in_our_words(detail_for_body(model, body), EXPECTED[problem])


@pytest.mark.parametrize(
    ("problem", "query"), SEARCH_CASES, ids=[" ".join(c[0]) for c in SEARCH_CASES]
)
def test_each_search_constraint_in_our_words(problem: tuple[str, str], query: str) -> None:
    assert_in_our_words(detail_for_search(query), EXPECTED[problem])


def test_a_finished_message_without_text_in_our_words() -> None:
    detail = EmptyMessageContentError().body()["detail"]
    assert_in_our_words(detail, EXPECTED[("content", "value_error")])


def test_every_wording_is_tested() -> None:
    tested = {problem for problem, *_ in CASES} | {problem for problem, _ in SEARCH_CASES}
    tested.add(("content", "value_error"))
    assert tested == DB_API_PROBLEMS.keys() == EXPECTED.keys()


def test_the_first_problem_we_have_words_for_is_told() -> None:
    *known, unknown = detail_for_body(
        UserCreate, {"username": "al", "password": "short", "extra": 1}
    )
    assert unknown["type"] == "extra_forbidden"
    assert db_api_problem_message([unknown, *known]) == EXPECTED[("username", "string_too_short")]


@pytest.mark.parametrize(
    "detail",
    [
        None,
        "Body is not UTF-8 JSON",
        [],
        [1, "two"],
        [{"loc": "body", "type": "string_too_short"}],
        [{"loc": ["body"], "type": "value_error", "msg": "Value error, give at least one"}],
        [{"loc": ["body", "role"], "type": "literal_error", "msg": "Input should be 'user'"}],
        # A limit db-api did not send cannot be filled in.
        [{"loc": ["body", "password"], "type": "string_too_short", "msg": "too short"}],
        [{"loc": ["body", "content"], "type": "string_too_long", "ctx": {"max_length": "x"}}],
    ],
)
def test_anything_else_gets_the_general_message(detail: object) -> None:
    assert db_api_problem_message(detail) == InvalidInput.message

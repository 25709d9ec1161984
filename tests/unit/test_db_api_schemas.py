"""db-api request validation that needs no database."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from db_api import security
from db_api.errors import MessageStatusConflictError
from db_api.schemas import ChatCreate, MessageCreate, MessageUpdate, TurnCreate, UserCreate


def test_titles_are_trimmed_before_the_length_check() -> None:
    assert ChatCreate.model_validate({"title": "  Lisbon  "}).title == "Lisbon"
    with pytest.raises(ValidationError):
        ChatCreate.model_validate({"title": "   "})


@pytest.mark.parametrize("status", ["generating", "stopped", "error"])
def test_unfinished_assistant_reply_may_be_empty(status: str) -> None:
    message = MessageCreate.model_validate({"role": "assistant", "content": "", "status": status})
    assert message.content == ""


@pytest.mark.parametrize(
    ("role", "status"), [("user", "generating"), ("assistant", "complete"), ("system", "error")]
)
def test_other_messages_need_content(role: str, status: str) -> None:
    with pytest.raises(ValidationError, match="content must not be empty"):
        MessageCreate.model_validate({"role": role, "content": "", "status": status})


def test_update_needs_a_change() -> None:
    with pytest.raises(ValidationError, match="at least one"):
        MessageUpdate.model_validate({})


def test_if_status_alone_is_not_a_change() -> None:
    with pytest.raises(ValidationError, match="at least one"):
        MessageUpdate.model_validate({"if_status": "generating"})


def test_context_start_left_out_differs_from_null() -> None:
    left_out = MessageUpdate.model_validate({"content": "x"})
    cleared = MessageUpdate.model_validate({"context_start_id": None})
    assert not left_out.sets_context_start
    assert cleared.sets_context_start
    assert cleared.context_start_id is None
    assert MessageUpdate.model_validate({"context_start_id": 7}).context_start_id == 7


def test_turn_needs_content_and_trims_the_title() -> None:
    turn = TurnCreate.model_validate({"content": " hi ", "title": "  First question  "})
    assert (turn.content, turn.title) == (" hi ", "First question")
    assert TurnCreate.model_validate({"content": "hi"}).title is None
    with pytest.raises(ValidationError):
        TurnCreate.model_validate({"content": ""})
    with pytest.raises(ValidationError):
        TurnCreate.model_validate({"content": "hi", "title": "  "})


def test_status_conflict_body_names_both_statuses() -> None:
    error = MessageStatusConflictError(expected="generating", current="stopped")
    assert error.status_code == 409
    assert error.body() == {"detail": "The message is no longer generating", "status": "stopped"}


def test_nul_characters_are_refused() -> None:
    with pytest.raises(ValidationError, match="NUL"):
        UserCreate.model_validate({"username": "alice", "password": "pass\x00word"})


def test_password_hashes_are_argon2id_and_verify() -> None:
    password_hash = security.hash_password("correct horse battery")
    assert password_hash.startswith("$argon2id$")
    assert security.verify_password(password_hash, "correct horse battery")
    assert not security.verify_password(password_hash, "wrong")
    assert not security.verify_password("not a hash", "wrong")
    assert not security.needs_rehash(password_hash)

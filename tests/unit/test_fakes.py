"""The in-process tier's fakes answer in db-api's documented statuses and shapes.

Every DbClient method is driven against `FakeDbApi` through chat-ui's real client,
through its successes and the refusals chat-ui maps to errors; each answer's status
must be one db-api's OpenAPI schema declares for that operation, and its JSON body must
fit the schema declared for that status. `test_db_api_contract.py` checks the other
direction: what DbClient sends is what db-api accepts.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pytest

from chat_ui.context import ChatMessage
from chat_ui.db_client import DbClient
from chat_ui.errors import (
    ChatNotFound,
    GenerationInProgress,
    InvalidInput,
    MessageStatusChanged,
    SendingTooFast,
    SignInNotFound,
    SignInRequired,
    StartingChatsTooFast,
    TooManyAttempts,
    UsernameTaken,
    WrongCredentials,
    WrongPassword,
)
from chat_ui.lm_client import LmClient
from db_api.config import RateLimit
from db_api.main import app as db_api_app
from tests.support.fakes import (
    LOGIN_MAX_FAILURES,
    FakeDbApi,
    FakeModel,
    in_memory_db_client,
    in_memory_lm_client,
)

Schema = dict[str, Any]
OPENAPI: Schema = db_api_app.openapi()
PASSWORD = "correct horse battery"


def _resolve(schema: Schema) -> Schema:
    while "$ref" in schema:
        target: Any = OPENAPI
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        schema = target
    return schema


def _problems(value: Any, schema: Schema, where: str) -> list[str]:
    """Where `value` does not fit `schema` (the subset of JSON Schema db-api's uses)."""
    schema = _resolve(schema)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [_problems(value, option, where) for option in schema[key]]
            return [] if any(not found for found in options) else [f"{where}: fits no {key}"]
    if "allOf" in schema:
        return [p for part in schema["allOf"] for p in _problems(value, part, where)]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where}: {value!r} not in {schema['enum']}"]
    kind = schema.get("type")
    checks = {
        "object": lambda: isinstance(value, dict),
        "array": lambda: isinstance(value, list),
        "string": lambda: isinstance(value, str),
        "integer": lambda: isinstance(value, int) and not isinstance(value, bool),
        "number": lambda: isinstance(value, int | float) and not isinstance(value, bool),
        "boolean": lambda: isinstance(value, bool),
        "null": lambda: value is None,
    }
    if kind is not None and not checks[kind]():
        return [f"{where}: {value!r} is not {kind}"]
    if kind == "string" and schema.get("format") == "uuid":
        uuid.UUID(value)
    if kind == "string" and schema.get("format") == "date-time":
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    found: list[str] = []
    if kind == "object":
        properties = schema.get("properties", {})
        found += [
            f"{where}.{name}: missing" for name in schema.get("required", ()) if name not in value
        ]
        if properties:
            found += [
                f"{where}.{name}: not in db-api's schema"
                for name in value
                if name not in properties
            ]
        for name, item in value.items():
            if name in properties:
                found += _problems(item, properties[name], f"{where}.{name}")
    if kind == "array":
        for index, item in enumerate(value):
            found += _problems(item, schema.get("items", {}), f"{where}[{index}]")
    return found


def _operation(method: str, path: str) -> tuple[str, Schema]:
    matches = []
    for template, operations in OPENAPI["paths"].items():
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
        if method.lower() in operations and re.match(pattern, path):
            matches.append((template.count("{"), template))
    assert matches, f"the fake answered {method} {path}, which db-api does not serve"
    template = min(matches)[1]
    return template, OPENAPI["paths"][template][method.lower()]


class RecordingApi(FakeDbApi):
    """The fake, keeping every answer it gives for the checks below."""

    def __init__(self) -> None:
        super().__init__()
        self.answers: list[tuple[str, str, int, bytes]] = []

    def answer(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str],
        params: Mapping[str, Any],
        body: Any,
    ) -> tuple[int, dict[str, str], bytes]:
        status, answer_headers, content = super().answer(
            method, path, headers=headers, params=params, body=body
        )
        self.answers.append((method, path, status, content))
        return status, answer_headers, content


async def _every_kind_of_answer(db: DbClient, api: RecordingApi) -> None:
    """Each DbClient method, succeeding and refused the ways chat-ui handles."""
    user = await db.create_user(username="alice", password=PASSWORD)
    with pytest.raises(UsernameTaken):
        await db.create_user(username="ALICE", password=PASSWORD)
    with pytest.raises(InvalidInput):
        await db.create_user(username="alice\x00", password="short")
    assert (await db.verify_user(username="alice", password=PASSWORD)).id == user.id
    started = await db.start_session(user.id, max_age_seconds=3600)
    assert (await db.resolve_session(started.token)).id == user.id
    view, etag = await db.page_view(started.token, chat_id=None)
    assert view is not None
    assert await db.page_view(started.token, chat_id=None, etag=etag) == (None, etag)

    request_id = uuid.uuid4()
    chat, created = await db.create_chat(user.id, title="New chat", request_id=request_id)
    assert created
    assert await db.create_chat(user.id, title="New chat", request_id=request_id) == (chat, False)
    view, _etag = await db.page_view(started.token, chat_id=chat.id)
    assert view is not None and view.chat is not None
    assert [c.id for c in await db.list_chats(user.id)] == [chat.id]
    await db.add_message(user.id, chat.id, role="assistant", content="Hello")
    turn, created = await db.create_turn(
        user.id, chat.id, content="Lisbon?", title="Lisbon", request_id=request_id
    )
    assert created
    assert (await db.create_turn(user.id, chat.id, content="x", request_id=request_id))[1] is False
    with pytest.raises(GenerationInProgress):
        await db.create_turn(user.id, chat.id, content="Again?")
    with pytest.raises(GenerationInProgress):
        await db.add_message(user.id, chat.id, role="assistant", content="", status="generating")
    lease = await db.renew_lease(user.id, chat.id, turn.reply.id, slots=2)
    assert (lease.slot, lease.position) == (0, None)
    assert await db.adopt_reply() is None
    reply = await db.update_message(
        user.id,
        chat.id,
        turn.reply.id,
        content="Alfama.",
        status="complete",
        if_status="generating",
    )
    assert reply.status == "complete"
    with pytest.raises(MessageStatusChanged):
        await db.update_message(
            user.id, chat.id, reply.id, status="stopped", if_status="generating"
        )
    with pytest.raises(MessageStatusChanged):
        await db.renew_lease(user.id, chat.id, reply.id, slots=2)
    assert (await db.get_message(user.id, chat.id, reply.id)).content == "Alfama."
    assert (await db.get_chat(user.id, chat.id)).title == "Lisbon"
    assert [hit.chat.id for hit in await db.search_chats(user.id, "alfama")] == [chat.id]
    with pytest.raises(InvalidInput):
        await db.search_chats(user.id, "lisbon\x00")
    await db.rename_chat(user.id, chat.id, title="Trip")
    with pytest.raises(InvalidInput):
        await db.rename_chat(user.id, chat.id, title="Trip\x00")
    await db.delete_messages_after(user.id, chat.id, after_id=turn.user_message.id)

    bob = await db.create_user(username="bob", password=PASSWORD)
    for someone_elses in (
        db.get_chat(bob.id, chat.id),
        db.get_message(bob.id, chat.id, reply.id),
        db.rename_chat(bob.id, chat.id, title="Mine"),
        db.create_turn(bob.id, chat.id, content="Mine"),
        db.delete_chat(bob.id, chat.id),
    ):
        with pytest.raises(ChatNotFound):
            await someone_elses
    await db.delete_chat(user.id, chat.id)

    await _account_answers(db, user.id, started.token)

    await db.end_session(started.token)
    with pytest.raises(SignInRequired):
        await db.resolve_session(started.token)
    await db.end_all_sessions(user.id)
    for _attempt in range(LOGIN_MAX_FAILURES):
        with pytest.raises(WrongCredentials):
            await db.verify_user(username="bob", password="not the password")
    with pytest.raises(TooManyAttempts):
        await db.verify_user(username="bob", password=PASSWORD)
    assert await db.is_ready()
    assert api.answers


async def _account_answers(db: DbClient, user_id: uuid.UUID, token: str) -> None:
    """The account page's calls: sign-ins listed and ended, export, password, deletion."""
    other = await db.start_session(
        user_id, max_age_seconds=3600, user_agent="Firefox/128.0", client_ip="203.0.113.7"
    )
    listed = await db.list_sessions(user_id, token=token)
    assert [(s.current, s.client_ip) for s in listed] == [(False, "203.0.113.7"), (True, None)]
    await db.end_session_by_id(user_id, listed[0].id)
    with pytest.raises(SignInNotFound):
        await db.end_session_by_id(user_id, listed[0].id)
    with pytest.raises(SignInRequired):
        await db.resolve_session(other.token)
    chats = [await db.create_chat(user_id, title=f"Chat {n}") for n in range(3)]
    first = await db.export_chats(user_id, limit=2)
    assert first.next_after is not None
    rest = await db.export_chats(user_id, after=first.next_after, limit=2)
    exported = [c.id for c in first.items] + [c.id for c in rest.items]
    assert sorted(exported) == sorted(chat.id for chat, _created in chats)
    assert rest.next_after is None

    with pytest.raises(WrongPassword):
        await db.change_password(
            user_id, current_password="not it", new_password="new password", keep_token=token
        )
    with pytest.raises(InvalidInput):
        await db.change_password(
            user_id, current_password=PASSWORD, new_password="short", keep_token=token
        )
    await db.change_password(
        user_id, current_password=PASSWORD, new_password="new password", keep_token=token
    )
    await db.change_password(
        user_id, current_password="new password", new_password=PASSWORD, keep_token=token
    )
    doomed = await db.create_user(username="doomed", password=PASSWORD)
    with pytest.raises(WrongPassword):
        await db.delete_account(doomed.id, password="not it")
    await db.delete_account(doomed.id, password=PASSWORD)
    with pytest.raises(SignInRequired):
        await db.delete_account(doomed.id, password=PASSWORD)


def _as_declared(api: RecordingApi) -> set[tuple[str, str, int]]:
    """(method, path template, status) of every answer, each checked against db-api's schema."""
    statuses = set()
    for method, path, status, content in api.answers:
        template, operation = _operation(method, path)
        declared = operation["responses"]
        assert str(status) in declared, f"{method} {template} answered {status}: {declared.keys()}"
        statuses.add((method, template, status))
        schema = declared[str(status)].get("content", {}).get("application/json", {}).get("schema")
        if content and schema:
            assert not _problems(json.loads(content), schema, f"{method} {template} {status}")
    return statuses


async def test_fake_db_api_answers_in_db_apis_statuses_and_shapes() -> None:
    api = RecordingApi()
    await _every_kind_of_answer(in_memory_db_client(api), api)
    statuses = _as_declared(api)
    # Every operation DbClient uses was answered, with every refusal chat-ui maps.
    assert len({(m, t) for m, t, _s in statuses}) >= 20
    assert {s for _m, _t, s in statuses} >= {200, 201, 204, 304, 401, 403, 404, 409, 422, 429}


async def test_fake_db_api_limits_replies_and_chats_as_db_api_does() -> None:
    """Off unless set; then every way of starting a reply, and new chats, answer 429."""
    api = RecordingApi()
    api.reply_limit = RateLimit(per_minute=6, burst=2)
    api.chat_limit = RateLimit(per_minute=2, burst=1)
    db = in_memory_db_client(api)
    user = await db.create_user(username="hasty", password=PASSWORD)
    chat, _created = await db.create_chat(user.id, title="New chat")
    with pytest.raises(StartingChatsTooFast) as refused_chat:
        await db.create_chat(user.id, title="Another")
    assert 1 <= refused_chat.value.retry_after_seconds <= 30
    turn, _created = await db.create_turn(user.id, chat.id, content="One")
    failed = await db.update_message(user.id, chat.id, turn.reply.id, status="error")
    retried = await db.update_message(user.id, chat.id, failed.id, status="generating")
    await db.update_message(user.id, chat.id, retried.id, content="Done.", status="complete")
    with pytest.raises(SendingTooFast) as refused_turn:
        await db.create_turn(user.id, chat.id, content="Three")
    assert 1 <= refused_turn.value.retry_after_seconds <= 10
    with pytest.raises(SendingTooFast):
        await db.add_message(user.id, chat.id, role="assistant", content="", status="generating")
    with pytest.raises(SendingTooFast):
        await db.update_message(user.id, chat.id, retried.id, status="generating")
    # Nothing of the refused ones was stored; saving a reply is never refused.
    assert [m.content for m in (await db.get_chat(user.id, chat.id)).messages] == ["One", "Done."]
    assert [c.id for c in await db.list_chats(user.id)] == [chat.id]
    statuses = _as_declared(api)
    refused = {(method, template) for method, template, status in statuses if status == 429}
    assert refused == {
        ("POST", "/chats"),
        ("POST", "/chats/{chat_id}/turns"),
        ("POST", "/chats/{chat_id}/messages"),
        ("PATCH", "/chats/{chat_id}/messages/{message_id}"),
    }


async def test_fake_model_is_read_by_the_real_client() -> None:
    model = FakeModel(context_tokens=1000)
    lm: LmClient = in_memory_lm_client(model)
    messages: list[ChatMessage] = [{"role": "user", "content": "Hi there"}]
    assert await lm.context_tokens() == 1000
    assert await lm.total_slots() == 4
    count = await lm.count_tokens(messages)
    bound = await lm.prompt_size_bound()
    assert 0 < count <= bound(messages)
    deltas = [delta async for delta in lm.stream_chat(messages, max_tokens=50)]
    assert "".join(deltas) == "You said: Hi there"
    assert (model.streams_opened, model.streams_closed) == (1, 1)
    assert "id_slot" not in model.completions[-1]
    assert await lm.health() == "ok"
    await lm.aclose()

"""The one contract between chat-ui and db-api, checked against db-api's own OpenAPI schema.

chat-ui keeps its own copy of db-api's response models (`chat_ui/schemas.py`) and
builds its request bodies as dicts (`chat_ui/db_client.py`). This test drives every
`DbClient` method through a recording fake of its HTTP session, so it sees what chat-ui
really sends (method, path, query, headers, JSON body) and which chat-ui model parses
the answer, then checks both against `db_api.main.app.openapi()`:

- requests: the operation exists; every query parameter, header and body key chat-ui
  sends is one db-api declares, with a fitting type, enum and format; everything
  db-api requires is sent. Literal-typed arguments are replayed with every value.
- responses: every field a chat-ui model reads exists in db-api's response schema with
  a compatible type; a field chat-ui requires is required and non-null there; every
  enum value and every type db-api may send is one chat-ui accepts, through nested
  models and lists.

A change on either side fails here until the other side follows.

Code that looks shared stays apart on purpose: the body-size limit (db-api's
`db_api/limits.py` answers JSON; chat-ui's `BodySizeLimit` middleware renders its error
page) and the secret checks (`secrets_from_files`, `PLACEHOLDER_SECRETS` in both
`config.py`). Each image is built with its own service directory as the build context
(`build: ./db-api` and `build: ./chat-ui` in compose.yml; each Dockerfile copies only its
own package), so a shared module would need a third package copied into both contexts.
Those copies are small (both services' secret checks are tested together in
test_production_secrets.py); the copy whose drift breaks the app is the schemas, and
this test guards it.
"""

from __future__ import annotations

import contextlib
import inspect
import ipaddress
import re
import typing
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import pytest
from pydantic import BaseModel

from chat_ui.db_client import DbClient
from db_api.main import app as db_api_app

pytestmark = pytest.mark.unit

Schema = dict[str, Any]

OPENAPI: Schema = db_api_app.openapi()
BASE_URL = "http://db-api.test"

USER_ID = uuid.UUID("2f1c7a4e-8a0e-4c53-9a57-4c3b7d0b9a11")
CHAT_ID = uuid.UUID("8d3e4c1a-3f7b-4e8e-9a51-1b2c3d4e5f60")
REQUEST_ID = uuid.UUID("5b0f9a62-1d3c-4f8e-b7a4-2c9e6d1f0a37")
TOKEN = "session-token-" + "x" * 29
SESSION_ID = uuid.UUID("0c6f3e2a-9b1d-4c7e-8f2a-5d4b3c2a1f09")


@dataclass(frozen=True)
class Contract:
    """A DbClient method, the db-api operation it calls, and calls that reach every branch."""

    operation_id: str
    calls: tuple[Mapping[str, Any], ...]


def _contract(operation_id: str, *calls: Mapping[str, Any]) -> Contract:
    return Contract(operation_id, calls)


_USER = {"user_id": USER_ID}
_CHAT = {"user_id": USER_ID, "chat_id": CHAT_ID}
_MESSAGE = {**_CHAT, "message_id": 7}
_CREDENTIALS = {"username": "alice", "password": "correct horse battery"}

# Every DbClient method that calls db-api. The calls pass each optional argument at
# least once and leave each out at least once, so every conditional body key is sent.
CONTRACTS: dict[str, Contract] = {
    "create_user": _contract(
        "create_user",
        _CREDENTIALS,
        {**_CREDENTIALS, "client_ip": "203.0.113.7", "invite": "an-invite-token"},
    ),
    "public_settings": _contract("public_settings", {}),
    "lookup_link": _contract("lookup_link", {"token": "a-link-token"}),
    "reset_password": _contract(
        "reset_password", {"token": "a-link-token", "new_password": "a new passphrase"}
    ),
    "admin_users": _contract(
        "list_users",
        {"admin_id": USER_ID},
        {"admin_id": USER_ID, "search": "ali", "status": "pending", "offset": 50, "limit": 50},
    ),
    "admin_user": _contract("get_user", {"admin_id": USER_ID, "user_id": SESSION_ID}),
    "admin_set_status": _contract(
        "change_status", {"admin_id": USER_ID, "user_id": SESSION_ID, "status": "active"}
    ),
    "admin_set_role": _contract(
        "change_role", {"admin_id": USER_ID, "user_id": SESSION_ID, "role": "admin"}
    ),
    "admin_delete_user": _contract("delete_user", {"admin_id": USER_ID, "user_id": SESSION_ID}),
    "admin_password_reset": _contract(
        "create_password_reset", {"admin_id": USER_ID, "user_id": SESSION_ID}
    ),
    "admin_invites": _contract("list_invites", {"admin_id": USER_ID}),
    "admin_create_invite": _contract("create_invite", {"admin_id": USER_ID, "valid_hours": 72.0}),
    "admin_revoke_invite": _contract(
        "revoke_invite", {"admin_id": USER_ID, "invite_id": SESSION_ID}
    ),
    "admin_settings": _contract("get_app_settings", {"admin_id": USER_ID}),
    "admin_update_settings": _contract(
        "update_app_settings",
        {
            "admin_id": USER_ID,
            "values": {
                "signup_mode": "closed",
                "replies_per_minute": 3.0,
                "reply_burst": None,
                "chats_per_minute": None,
                "chat_burst": 5,
                "max_message_chars": 2000,
                "system_prompt": "Be brief.",
            },
        },
    ),
    "admin_audit": _contract(
        "audit_log", {"admin_id": USER_ID}, {"admin_id": USER_ID, "before_id": 40, "limit": 50}
    ),
    "verify_user": _contract(
        "verify_user", _CREDENTIALS, {**_CREDENTIALS, "client_ip": "203.0.113.7"}
    ),
    "start_session": _contract(
        "create_session",
        {**_USER, "max_age_seconds": 1_209_600},
        {
            **_USER,
            "max_age_seconds": 1_209_600,
            "user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Firefox/128.0",
            "client_ip": "2001:db8::7",
        },
    ),
    "resolve_session": _contract("resolve_session", {"token": TOKEN}),
    "page_view": _contract(
        "chat_page_view",
        {"token": TOKEN, "chat_id": None},
        {"token": TOKEN, "chat_id": CHAT_ID, "etag": '"12"', "limit": 20},
    ),
    "end_session": _contract("revoke_session", {"token": TOKEN}),
    "end_all_sessions": _contract("revoke_user_sessions", _USER),
    "list_sessions": _contract("list_user_sessions", {**_USER, "token": TOKEN}),
    "end_session_by_id": _contract("revoke_user_session", {**_USER, "session_id": SESSION_ID}),
    "change_password": _contract(
        "change_password",
        {**_USER, "current_password": "old one", "new_password": "a new one", "keep_token": TOKEN},
        {
            **_USER,
            "current_password": "old one",
            "new_password": "a new one",
            "keep_token": TOKEN,
            "client_ip": "203.0.113.7",
        },
    ),
    "delete_account": _contract(
        "delete_account",
        {**_USER, "password": "correct horse battery"},
        {**_USER, "password": "correct horse battery", "client_ip": "203.0.113.7"},
    ),
    "export_chats": _contract("export_chats", _USER, {**_USER, "after": CHAT_ID, "limit": 5}),
    "list_chats": _contract("list_chats", _USER, {**_USER, "limit": 20}),
    "create_chat": _contract(
        "create_chat",
        {**_USER, "title": "Trip to Lisbon"},
        {**_USER, "title": "Trip to Lisbon", "request_id": REQUEST_ID},
    ),
    "get_chat": _contract("get_chat", _CHAT),
    "rename_chat": _contract("rename_chat", {**_CHAT, "title": "Lisbon, day by day"}),
    "delete_chat": _contract("delete_chat", _CHAT),
    "search_chats": _contract(
        "search_chats",
        {**_USER, "query": "alfama"},
        {**_USER, "query": "alfama", "limit": 5},
    ),
    "add_message": _contract(
        "add_message",
        {**_CHAT, "role": "user", "content": "What should I see?"},
        {**_CHAT, "role": "assistant", "content": "", "status": "generating"},
    ),
    "update_message": _contract(
        "update_message",
        {**_MESSAGE, "content": "Start with Alfama.", "if_status": "generating"},
        {**_MESSAGE, "status": "stopped", "if_status": "generating"},
        {**_MESSAGE, "content": "Done.", "status": "complete", "context_start_id": 3},
        {**_MESSAGE, "status": "complete", "clear_context_start": True},
    ),
    "get_message": _contract("get_message", _MESSAGE),
    "renew_lease": _contract("renew_lease", {**_MESSAGE, "slots": 4}),
    "adopt_reply": _contract("adopt", {}),
    "create_turn": _contract(
        "start_turn",
        {**_CHAT, "content": "What should I see?"},
        {**_CHAT, "content": "What should I see?", "title": "Lisbon", "request_id": REQUEST_ID},
        {**_CHAT, "content": "What should I see first?", "replace_after_id": 6},
        {**_CHAT, "content": "And then?", "slots": 4},
    ),
    "delete_messages_after": _contract("delete_messages_after", {**_CHAT, "after_id": 7}),
}

# Public DbClient methods that are not db-api calls with a body to check.
NOT_CONTRACTS = {
    "aclose": "closes the connection pool",
    "is_ready": "GET /health/ready, reads only the status code (checked below)",
}

# Sent on every request by the session itself; db-api declares it as a security scheme.
SESSION_HEADERS = {"authorization"}


# ---- recording what chat-ui sends ------------------------------------------


@dataclass
class SentRequest:
    method: str
    path: str
    params: Mapping[str, Any]
    headers: Mapping[str, str]
    body: Any
    has_body: bool


@dataclass
class Recording:
    requests: list[SentRequest] = field(default_factory=list)
    parsed_with: list[type[BaseModel]] = field(default_factory=list)


class ParsedError(Exception):
    """Stops a method at the point it parses db-api's answer: the model is all we need."""


class _FakeAnswer:
    status = 200
    headers: Mapping[str, str] = {}

    async def read(self) -> bytes:
        return b"{}"

    async def __aenter__(self) -> _FakeAnswer:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        return None


_NOT_SENT = object()


class _RecordingSession:
    """Stands in for aiohttp.ClientSession; an unexpected argument fails loudly (TypeError)."""

    def __init__(self, recording: Recording) -> None:
        self.recording = recording

    def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = _NOT_SENT,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: object = None,
    ) -> _FakeAnswer:
        assert url.startswith(BASE_URL), url
        has_body = json is not _NOT_SENT and json is not None
        self.recording.requests.append(
            SentRequest(
                method=method.upper(),
                path=urlsplit(url).path,
                params=dict(params or {}),
                headers=dict(headers or {}),
                body=json if has_body else None,
                has_body=has_body,
            )
        )
        return _FakeAnswer()


async def _record(
    monkeypatch: pytest.MonkeyPatch, method_name: str, arguments: Mapping[str, Any]
) -> Recording:
    recording = Recording()
    client = DbClient(BASE_URL, service_token="service-token")
    await client.aclose()
    monkeypatch.setattr(client, "_http", _RecordingSession(recording))

    def parse(model: type[BaseModel], _response: object) -> typing.NoReturn:
        recording.parsed_with.append(model)
        raise ParsedError

    monkeypatch.setattr(client, "_parse", parse)
    with contextlib.suppress(ParsedError):
        await getattr(client, method_name)(**arguments)
    return recording


def _literal_values(annotation: Any) -> list[Any]:
    if typing.get_origin(annotation) is typing.Literal:
        return list(typing.get_args(annotation))
    return [value for arg in typing.get_args(annotation) for value in _literal_values(arg)]


def _calls_with_every_literal(
    method_name: str, calls: tuple[Mapping[str, Any], ...]
) -> Iterator[Mapping[str, Any]]:
    """The table's calls, plus each Literal-typed argument replayed with all its values."""
    hints = typing.get_type_hints(getattr(DbClient, method_name))
    for call in calls:
        yield call
        for name in call:
            for value in _literal_values(hints.get(name)):
                if value != call[name]:
                    yield {**call, name: value}


# ---- reading db-api's schema -----------------------------------------------

_UNIONS = ("anyOf", "oneOf", "allOf")
_SHAPES = ("type", "properties", "items", "enum", "const", "required")


@dataclass(frozen=True)
class Side:
    """One side's JSON schema and the document its `$ref`s point into."""

    name: str
    root: Schema

    def resolve(self, schema: Schema) -> Schema:
        while "$ref" in schema:
            target: Any = self.root
            for part in schema["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            schema = target
        return schema

    def options(self, schema: Schema, where: str) -> list[Schema]:
        """The schema as a flat list of alternatives, one JSON type each."""
        schema = self.resolve(schema)
        unions = [key for key in _UNIONS if key in schema]
        if unions:
            assert not any(key in schema for key in _SHAPES), (
                f"{where}: {self.name}'s schema mixes {unions} with other constraints; "
                "teach this test to compare it"
            )
            if "allOf" in schema:
                assert len(schema["allOf"]) == 1, f"{where}: {self.name} uses a multi-part allOf"
            return [
                option
                for key in unions
                for part in schema[key]
                for option in self.options(part, where)
            ]
        declared = schema.get("type")
        if isinstance(declared, list):
            return [{**schema, "type": one} for one in declared]
        if declared is None:
            values = schema.get("enum", [schema["const"]] if "const" in schema else None)
            if values:
                return [{**schema, "type": _json_type(values[0])}]
            if "properties" in schema:
                return [{**schema, "type": "object"}]
        return [schema]


DB_API = Side("db-api", OPENAPI)


def _find_operation(method: str, path: str) -> tuple[str, Schema]:
    """The OpenAPI path template and operation that serve `method path`, literal ones first."""
    matches = []
    for template, operations in OPENAPI["paths"].items():
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
        if method.lower() in operations and re.match(pattern, path):
            matches.append((template.count("{"), template))
    assert matches, f"chat-ui calls {method} {path}, which db-api does not serve"
    template = min(matches)[1]
    return template, OPENAPI["paths"][template][method.lower()]


def _path_values(template: str, path: str) -> dict[str, str]:
    pattern = "^" + re.sub(r"\\\{([^}]+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)) + "$"
    found = re.match(pattern, path)
    assert found is not None
    return found.groupdict()


# ---- does a value chat-ui sends fit db-api's schema? -----------------------

_FORMATS: dict[str, Any] = {
    "uuid": uuid.UUID,
    "date-time": lambda text: datetime.fromisoformat(text.replace("Z", "+00:00")),
    "ipv4": ipaddress.IPv4Address,
    "ipv6": ipaddress.IPv6Address,
}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    raise AssertionError(f"chat-ui sends a {type(value).__name__}, which is not JSON")


def _type_accepts(declared: str, actual: str) -> bool:
    return declared == actual or (declared == "number" and actual == "integer")


def value_problems(value: Any, schema: Schema, where: str) -> list[str]:
    """Why `value` does not fit `schema` (types, enums, formats, keys; not lengths/patterns)."""
    schema = DB_API.resolve(schema)
    problems: list[str] = []
    for part in schema.get("allOf", []):
        problems += value_problems(value, part, where)
    for union in ("anyOf", "oneOf"):
        if union in schema:
            branches = [DB_API.resolve(branch) for branch in schema[union]]
            outcomes = [value_problems(value, branch, where) for branch in branches]
            if all(outcomes):
                typed = [
                    outcome
                    for branch, outcome in zip(branches, outcomes, strict=True)
                    if _type_accepts(branch.get("type", ""), _json_type(value))
                ]
                if len(typed) == 1:
                    problems += typed[0]
                else:
                    reasons = "; or ".join(outcome[0] for outcome in outcomes)
                    problems.append(f"{where}: {value!r} fits none of db-api's options: {reasons}")
    actual = _json_type(value)
    declared = schema.get("type")
    if declared is not None:
        allowed = declared if isinstance(declared, list) else [declared]
        if not any(_type_accepts(option, actual) for option in allowed):
            return [
                *problems,
                f"{where}: chat-ui sends {actual} {value!r}, db-api wants {declared}",
            ]
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: chat-ui sends {value!r}, db-api accepts only {schema['enum']}")
    if "const" in schema and value != schema["const"]:
        problems.append(
            f"{where}: chat-ui sends {value!r}, db-api accepts only {schema['const']!r}"
        )
    parse_format = _FORMATS.get(schema.get("format", ""))
    if parse_format is not None and isinstance(value, str):
        try:
            parse_format(value)
        except ValueError:
            problems.append(f"{where}: chat-ui sends {value!r}, not a {schema['format']}")
    if isinstance(value, dict):
        title = schema.get("title", "schema")
        properties = schema.get("properties", {})
        for key in value:
            if key in properties:
                problems += value_problems(value[key], properties[key], f"{where}.{key}")
            # Unknown keys count where the schema is a whole object (a model), not in a
            # partial constraint such as one branch of an anyOf. db-api forbids them anyway.
            elif declared == "object":
                problems.append(
                    f"{where}.{key}: chat-ui sends it, db-api's {title} has no such field"
                )
        for key in schema.get("required", []):
            if key not in value:
                problems.append(
                    f"{where}.{key}: db-api's {title} requires it, chat-ui leaves it out"
                )
    if isinstance(value, list | tuple) and "items" in schema:
        for index, item in enumerate(value):
            problems += value_problems(item, schema["items"], f"{where}[{index}]")
    return problems


def request_problems(sent: SentRequest, template: str, operation: Schema) -> list[str]:
    label = f"{operation['operationId']} ({sent.method} {template})"
    parameters = [DB_API.resolve(parameter) for parameter in operation.get("parameters", [])]
    problems: list[str] = []
    sent_by_place: dict[str, dict[str, Any]] = {
        "path": dict(_path_values(template, sent.path)),
        "query": dict(sent.params),
        "header": {
            name.lower(): value
            for name, value in sent.headers.items()
            if name.lower() not in SESSION_HEADERS
        },
    }
    for place, values in sent_by_place.items():
        declared = {
            (p["name"].lower() if place == "header" else p["name"]): p
            for p in parameters
            if p["in"] == place
        }
        for name, value in values.items():
            if name not in declared:
                problems.append(f"{label}: chat-ui sends {place} {name!r}, db-api does not read it")
                continue
            schema = declared[name]["schema"]
            # Path, query and header values travel as text; compare what they stand for.
            if place != "header" and isinstance(value, str) and value.isdigit():
                value = int(value)
            problems += value_problems(value, schema, f"{label} {place} {name!r}")
        for name, parameter in declared.items():
            if parameter.get("required") and name not in values:
                problems.append(f"{label}: db-api requires {place} {name!r}, chat-ui leaves it out")
    if "ServiceToken" not in {key for entry in operation.get("security", []) for key in entry}:
        problems.append(f"{label}: db-api no longer declares the service token chat-ui sends")
    body_schema = (
        operation.get("requestBody", {})
        .get("content", {})
        .get("application/json", {})
        .get("schema")
    )
    if sent.has_body:
        if body_schema is None:
            problems.append(f"{label}: chat-ui sends a JSON body, db-api takes none")
        else:
            problems += value_problems(sent.body, body_schema, f"{label} request body")
    elif operation.get("requestBody", {}).get("required"):
        problems.append(f"{label}: db-api requires a JSON body, chat-ui sends none")
    return problems


# ---- does db-api's answer fit what chat-ui reads? --------------------------


def _values(schema: Schema) -> set[Any] | None:
    if "enum" in schema:
        return set(schema["enum"])
    if "const" in schema:
        return {schema["const"]}
    return None


@dataclass
class ResponseCheck:
    db_api: Side
    chat_ui: Side
    fields_checked: int = 0

    def fits(self, sent: Schema, read: Schema, where: str) -> list[str]:
        """Problems with chat-ui reading, as `read`, anything db-api may send as `sent`."""
        read_options = self.chat_ui.options(read, where)
        if any("type" not in option for option in read_options):
            return []  # chat-ui accepts anything here
        problems: list[str] = []
        for sent_option in self.db_api.options(sent, where):
            sent_type = sent_option.get("type")
            if sent_type is None:
                problems.append(
                    f"{where}: db-api does not say what it sends; chat-ui needs it typed"
                )
                continue
            candidates = [
                option for option in read_options if _type_accepts(option["type"], sent_type)
            ]
            if not candidates:
                reads = " or ".join(sorted({option["type"] for option in read_options}))
                if sent_type == "null":
                    problems.append(
                        f"{where}: db-api may send null, chat-ui requires a {reads} (make it "
                        "optional in chat-ui, or non-nullable in db-api)"
                    )
                else:
                    problems.append(f"{where}: db-api sends {sent_type}, chat-ui reads {reads}")
                continue
            outcomes = [self._same_type(sent_option, option, where) for option in candidates]
            if all(outcomes):
                problems += outcomes[0]
        return problems

    def _same_type(self, sent: Schema, read: Schema, where: str) -> list[str]:
        problems: list[str] = []
        read_values, sent_values = _values(read), _values(sent)
        if read_values is not None:
            if sent_values is None:
                problems.append(
                    f"{where}: db-api may send any {sent['type']}, chat-ui accepts only "
                    f"{sorted(read_values)}"
                )
            elif sent_values - read_values:
                problems.append(
                    f"{where}: db-api may send {sorted(sent_values - read_values)}, which "
                    f"chat-ui does not accept (it accepts {sorted(read_values)})"
                )
        if "format" in read and read["format"] != sent.get("format"):
            problems.append(
                f"{where}: chat-ui parses a {read['format']}, db-api declares "
                f"{sent.get('format', 'no format')}"
            )
        if sent["type"] == "array":
            problems += self.fits(sent.get("items", {}), read.get("items", {}), f"{where}[]")
        if sent["type"] == "object":
            problems += self._objects(sent, read, where)
        return problems

    def _objects(self, sent: Schema, read: Schema, where: str) -> list[str]:
        problems: list[str] = []
        title = sent.get("title", "schema")
        sent_fields, read_fields = sent.get("properties", {}), read.get("properties", {})
        sent_required, read_required = set(sent.get("required", [])), set(read.get("required", []))
        for name, read_field in read_fields.items():
            here = f"{where}.{name}"
            self.fields_checked += 1
            if name not in sent_fields:
                problems.append(f"{here}: chat-ui reads it, db-api's {title} has no such field")
                continue
            if name in read_required and name not in sent_required:
                problems.append(f"{here}: chat-ui requires it, db-api's {title} may leave it out")
            problems += self.fits(sent_fields[name], read_field, here)
        if read.get("additionalProperties") is False:
            for name in sent_fields.keys() - read_fields.keys():
                problems.append(f"{where}.{name}: db-api sends it, chat-ui forbids unknown fields")
        return problems


def response_problems(
    method: str, template: str, operation: Schema, model: type[BaseModel]
) -> tuple[list[str], int]:
    label = f"{operation['operationId']} ({method} {template}) response"
    answers = {
        status: answer["content"]["application/json"]["schema"]
        for status, answer in operation["responses"].items()
        if status.startswith("2") and "application/json" in answer.get("content", {})
    }
    if not answers:
        return [f"{label}: chat-ui parses a {model.__name__}, db-api answers no JSON body"], 0
    read_schema = model.model_json_schema(mode="validation")
    check = ResponseCheck(Side("db-api", OPENAPI), Side("chat-ui", read_schema))
    problems: list[str] = []
    for status, sent_schema in answers.items():
        problems += check.fits(sent_schema, read_schema, f"{label} {status}: {model.__name__}")
    return problems, check.fields_checked


# ---- the tests -------------------------------------------------------------


def _db_api_methods() -> set[str]:
    return {
        name
        for name, member in inspect.getmembers(DbClient, inspect.iscoroutinefunction)
        if not name.startswith("_")
    }


def test_every_db_api_call_has_a_contract() -> None:
    missing = _db_api_methods() - CONTRACTS.keys() - NOT_CONTRACTS.keys()
    assert not missing, f"DbClient methods without an entry in CONTRACTS: {sorted(missing)}"
    stale = (CONTRACTS.keys() | NOT_CONTRACTS.keys()) - _db_api_methods()
    assert not stale, f"CONTRACTS names methods DbClient no longer has: {sorted(stale)}"


@pytest.mark.parametrize("method_name", sorted(CONTRACTS))
def test_the_table_reaches_every_argument(method_name: str) -> None:
    parameters = inspect.signature(getattr(DbClient, method_name)).parameters
    optional = {name for name, p in parameters.items() if p.default is not inspect.Parameter.empty}
    calls = CONTRACTS[method_name].calls
    given = {name for call in calls for name in call}
    never_given = set(parameters) - {"self"} - given
    assert not never_given, f"DbClient.{method_name}: no call in CONTRACTS passes {never_given}"
    always_given = {name for name in optional if all(name in call for call in calls)}
    assert not always_given, (
        f"DbClient.{method_name}: every call in CONTRACTS passes {always_given}; "
        "add one that leaves them out"
    )


@pytest.mark.parametrize("method_name", sorted(CONTRACTS))
async def test_chat_ui_and_db_api_agree(monkeypatch: pytest.MonkeyPatch, method_name: str) -> None:
    contract = CONTRACTS[method_name]
    problems: list[str] = []
    for arguments in _calls_with_every_literal(method_name, contract.calls):
        recording = await _record(monkeypatch, method_name, arguments)
        assert len(recording.requests) == 1, (
            f"DbClient.{method_name}({arguments}) made {len(recording.requests)} db-api requests"
        )
        sent = recording.requests[0]
        template, operation = _find_operation(sent.method, sent.path)
        assert operation["operationId"] == contract.operation_id, (
            f"DbClient.{method_name} calls {sent.method} {sent.path}, which is db-api's "
            f"{operation['operationId']}, not {contract.operation_id}"
        )
        problems += request_problems(sent, template, operation)
        for model in recording.parsed_with:
            problems += response_problems(sent.method, template, operation, model)[0]
    unique = list(dict.fromkeys(problems))
    assert not unique, f"DbClient.{method_name} and db-api disagree:\n  " + "\n  ".join(unique)


def test_the_readiness_probe_exists() -> None:
    operation = OPENAPI["paths"].get("/health/ready", {}).get("get")
    assert operation is not None, "DbClient.is_ready calls GET /health/ready; db-api lost it"
    assert "200" in operation["responses"]

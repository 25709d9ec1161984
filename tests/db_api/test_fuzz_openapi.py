"""Generated requests against every db-api operation: no server error, answers as documented.

Schemathesis reads db-api's own OpenAPI schema and sends valid and invalid requests
to a real db-api on a real PostgreSQL. Most requests act for a real user on one of
that user's real chats and messages, so they reach the queries rather than stopping
at "not found". The total number of cases is written to
test-artifacts/reliability/fuzz.json.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance

from db_api.main import app
from harness.db_api import DbApiServer, running_db_api
from harness.factories import auth_headers, create_chat, create_turn, create_user
from harness.postgres import PostgresCluster
from harness.processes import REPO_ROOT

EXAMPLES_PER_OPERATION_AND_MODE = 40
MIN_TOTAL_CASES = 1000
Operation = schemathesis.APIOperation[Any, Any, Any, Any]
GeneratedCase = schemathesis.Case[Any]
ARTIFACT = REPO_ROOT / "test-artifacts" / "reliability" / "fuzz.json"


@dataclass
class FuzzWorld:
    """A real user with real chats, and the tally of what was sent and answered."""

    client: httpx.Client
    user_id: str
    statuses: Counter[int] = field(default_factory=Counter)
    by_operation: Counter[str] = field(default_factory=Counter)
    last_chat: str | None = None

    def settle_last_chat(self) -> None:
        """Finish a reply the previous case left being written: one per user at a time."""
        if self.last_chat is None:
            return
        headers = {"X-User-Id": self.user_id}
        chat = self.client.get(f"/chats/{self.last_chat}", headers=headers)
        for message in chat.json().get("messages", []) if chat.status_code == 200 else []:
            if message["status"] == "generating":
                self.client.patch(
                    f"/chats/{self.last_chat}/messages/{message['id']}",
                    json={"content": "Done.", "status": "complete"},
                    headers=headers,
                )

    def fresh_chat(self) -> tuple[str, list[int]]:
        """A new chat with a finished turn: ids to aim generated requests at."""
        self.settle_last_chat()
        chat = create_chat(self.client, user_id=self.user_id, title="Fuzzed")
        self.last_chat = chat["id"]
        turn = create_turn(self.client, user_id=self.user_id, chat_id=chat["id"], content="Hi")
        reply = turn["reply"]
        finished = self.client.patch(
            f"/chats/{chat['id']}/messages/{reply['id']}",
            json={"content": "Hello!", "status": "complete"},
            headers={"X-User-Id": self.user_id},
        )
        assert finished.status_code == 200, finished.text
        return chat["id"], [turn["user_message"]["id"], reply["id"]]

    def aim(self, case: GeneratedCase) -> None:
        """Point most cases at real data; some keep their random ids (unknown ones)."""
        headers = case.headers if case.headers is not None else {}
        generated_user = headers.get("X-User-Id")
        # A deterministic share keeps the generated (almost surely unknown) user.
        if not (isinstance(generated_user, str) and generated_user.endswith(("0", "8"))):
            headers["X-User-Id"] = self.user_id
        case.headers = headers
        path = case.path_parameters
        if path is None or "chat_id" not in path:
            return
        if str(path["chat_id"]).endswith("0"):
            return
        chat_id, message_ids = self.fresh_chat()
        path["chat_id"] = chat_id
        message_id = path.get("message_id")
        if isinstance(message_id, int) and message_id % 4 != 0:
            path["message_id"] = message_ids[message_id % 2]


# One user starts a chat and a reply for most cases, far faster than a person would.
UNLIMITED = {name: "1000000" for name in ("REPLY_BURST", "CHAT_BURST")}


@pytest.fixture(scope="module")
def fuzzed_db_api(postgres: PostgresCluster) -> Iterator[DbApiServer]:
    """A db-api with a database of its own: generated logins must not throttle other tests."""
    with running_db_api(postgres, database="db_api_fuzz", extra_env=UNLIMITED) as server:
        yield server


@pytest.fixture(scope="module")
def fuzz_world(fuzzed_db_api: DbApiServer) -> Iterator[FuzzWorld]:
    db_api = fuzzed_db_api
    with httpx.Client(base_url=db_api.url, headers=auth_headers(db_api.service_token)) as client:
        world = FuzzWorld(client=client, user_id=create_user(client)["id"])
        yield world
    total = sum(world.statuses.values())
    summary: dict[str, Any] = {
        "cases": total,
        "operations": len(world.by_operation),
        "server_errors": sum(n for status, n in world.statuses.items() if status >= 500),
        "statuses": {str(status): n for status, n in sorted(world.statuses.items())},
        "cases_by_operation": dict(sorted(world.by_operation.items())),
    }
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nfuzzing db-api: {json.dumps(summary)}")
    assert total >= MIN_TOTAL_CASES, summary


@pytest.fixture(scope="module")
def served_schema(fuzzed_db_api: DbApiServer) -> schemathesis.BaseSchema:
    """The schema as the running db-api serves it at /openapi.json."""
    schema = schemathesis.openapi.from_url(f"{fuzzed_db_api.url}/openapi.json")
    # db-api ignores query parameters it does not know, as HTTP APIs usually do; made-up
    # extra parameters are therefore not invalid input here.
    schema.config.generation.allow_extra_parameters = False
    return schema


def _operations(schema: schemathesis.BaseSchema) -> dict[str, Operation]:
    return {operation.label: operation for operation in map(_ok, schema.get_all_operations())}


def _ok(result: Any) -> Operation:
    operation: Operation = result.ok()
    return operation


def _has_inputs(operation: dict[str, Any]) -> bool:
    return bool(operation.get("parameters") or operation.get("requestBody"))


# Test ids from the application's own schema, so every operation is its own test; only
# operations with inputs can be sent invalid ones.
APP_SCHEMA = app.openapi()
OPERATION_LABELS = sorted(_operations(schemathesis.openapi.from_dict(APP_SCHEMA)))
CASES = [
    pytest.param(mode, label, id=f"{mode.value}-{label}")
    for label in OPERATION_LABELS
    for mode in GenerationMode
    if mode is GenerationMode.POSITIVE
    or _has_inputs(APP_SCHEMA["paths"][label.split(" ", 1)[1]][label.split(" ", 1)[0].lower()])
]
# Valid by the schema, refused by what is stored: only an unfinished reply may be empty.
EMPTY_CONTENT_RULE = "content must not be empty"


def test_the_served_schema_is_the_applications(served_schema: schemathesis.BaseSchema) -> None:
    assert sorted(_operations(served_schema)) == OPERATION_LABELS


@pytest.mark.parametrize(("mode", "label"), CASES)
def test_every_operation_answers_as_documented(
    mode: GenerationMode,
    label: str,
    served_schema: schemathesis.BaseSchema,
    fuzz_world: FuzzWorld,
    fuzzed_db_api: DbApiServer,
) -> None:
    """Valid requests and invalid ones (negative mode): never a 5xx, always as documented."""
    operation = _operations(served_schema)[label]
    # The service token is the one input not fuzzed: without it everything is a 401.
    token = {"Authorization": f"Bearer {fuzzed_db_api.service_token}"}

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION_AND_MODE,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def send(case: GeneratedCase) -> None:
        if mode is GenerationMode.POSITIVE:
            # Invalid cases keep every generated value: aiming could repair the invalid one.
            fuzz_world.aim(case)
        response = case.call(base_url=fuzzed_db_api.url, headers=token)
        fuzz_world.statuses[response.status_code] += 1
        fuzz_world.by_operation[label] += 1
        excluded = []
        if response.status_code == 422 and EMPTY_CONTENT_RULE in response.text:
            excluded.append(positive_data_acceptance)
        case.validate_response(response, headers=token, excluded_checks=excluded)

    send()


def test_the_fuzzed_user_is_real(fuzz_world: FuzzWorld) -> None:
    """The aimed requests act for an existing user (else every chat route is a 404)."""
    response = fuzz_world.client.get("/users/me", headers={"X-User-Id": fuzz_world.user_id})
    assert response.status_code == 200
    assert uuid.UUID(response.json()["id"]) == uuid.UUID(fuzz_world.user_id)

"""/docs and /openapi.json are part of the product: served, named and described."""

from __future__ import annotations

import httpx

from harness.db_api import DbApiServer

HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


def test_docs_page_is_served(db_api: DbApiServer) -> None:
    response = httpx.get(f"{db_api.url}/docs")
    assert response.status_code == 200
    assert "swagger" in response.text.lower()


def test_every_operation_is_named_and_summarised(db_api: DbApiServer) -> None:
    response = httpx.get(f"{db_api.url}/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    operations = [
        (path, method, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]
    assert len(operations) == 43
    for path, method, operation in operations:
        where = f"{method.upper()} {path}"
        assert operation.get("summary"), where
        assert operation.get("description"), where
        assert operation.get("tags"), where
        # Readable ids: the handler's name, not FastAPI's path-derived default.
        assert not operation["operationId"].endswith(("_get", "_post", "_patch", "_delete"))
    operation_ids = {operation["operationId"] for _, _, operation in operations}
    assert {
        "create_user",
        "verify_user",
        "list_chats",
        "add_message",
        "start_turn",
        "get_message",
        "update_message",
        "delete_messages_after",
        "search_chats",
    } <= operation_ids


def test_search_is_not_taken_for_a_chat_id(db_api: DbApiServer) -> None:
    paths = httpx.get(f"{db_api.url}/openapi.json").json()["paths"]
    assert paths["/chats/search"]["get"]["operationId"] == "search_chats"


def test_conflict_answer_is_documented(db_api: DbApiServer) -> None:
    spec = httpx.get(f"{db_api.url}/openapi.json").json()
    patch = spec["paths"]["/chats/{chat_id}/messages/{message_id}"]["patch"]
    conflict = patch["responses"]["409"]["content"]["application/json"]["schema"]
    assert conflict["anyOf"] == [
        {"$ref": "#/components/schemas/StatusConflict"},
        {"$ref": "#/components/schemas/ReplyInOtherChat"},
    ]
    message = spec["components"]["schemas"]["MessagePublic"]
    assert "context_start_id" in message["required"]
    assert "search_vector" not in message["properties"]


def test_request_bodies_carry_examples(db_api: DbApiServer) -> None:
    schemas = httpx.get(f"{db_api.url}/openapi.json").json()["components"]["schemas"]
    for name in (
        "SignUp",
        "ChatCreate",
        "ChatUpdate",
        "MessageCreate",
        "MessageUpdate",
        "TurnCreate",
        "SessionCreate",
        "PasswordChange",
        "AccountDeletion",
    ):
        assert schemas[name].get("examples"), name


def test_the_rate_limited_answers_are_documented(db_api: DbApiServer) -> None:
    """Each way of starting a reply, starting a chat and signing up may answer 429."""
    spec = httpx.get(f"{db_api.url}/openapi.json").json()
    limited = [
        ("post", "/users"),
        ("post", "/chats"),
        ("post", "/chats/{chat_id}/turns"),
        ("post", "/chats/{chat_id}/messages"),
        ("patch", "/chats/{chat_id}/messages/{message_id}"),
    ]
    for method, path in limited:
        refused = spec["paths"][path][method]["responses"]["429"]
        schema = refused["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/RateLimited"}, path
        assert "Retry-After" in refused["headers"], path
    body = spec["components"]["schemas"]["RateLimited"]
    assert set(body["required"]) == {"detail", "retry_after_seconds"}
    answering_429 = {
        (method, path)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS and "429" in operation["responses"]
    }
    # Password checks, throttled like sign-ins.
    checking_passwords = {
        ("post", "/users/verify"),
        ("post", "/users/me/password"),
        ("delete", "/users/me"),
    }
    assert answering_429 == {*limited, *checking_passwords}

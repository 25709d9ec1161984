"""/docs and /openapi.json are part of the product: served, named and described."""

from __future__ import annotations

import httpx

from tests.support.db_api import DbApiServer

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
    assert len(operations) == 12
    for path, method, operation in operations:
        where = f"{method.upper()} {path}"
        assert operation.get("summary"), where
        assert operation.get("description"), where
        assert operation.get("tags"), where
        # Readable ids: the handler's name, not FastAPI's path-derived default.
        assert not operation["operationId"].endswith(("_get", "_post", "_patch", "_delete"))
    operation_ids = {operation["operationId"] for _, _, operation in operations}
    assert {"create_user", "verify_user", "list_chats", "add_message"} <= operation_ids


def test_request_bodies_carry_examples(db_api: DbApiServer) -> None:
    schemas = httpx.get(f"{db_api.url}/openapi.json").json()["components"]["schemas"]
    for name in ("UserCreate", "ChatCreate", "ChatUpdate", "MessageCreate", "MessageUpdate"):
        assert schemas[name].get("examples"), name

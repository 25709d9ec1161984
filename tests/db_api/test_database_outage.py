"""While PostgreSQL is down db-api answers 503 with a human message, then recovers."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import httpx
import pytest

from harness.db_api import DbApiServer, running_db_api
from harness.factories import auth_headers, create_chat, create_user, user_headers
from harness.postgres import PostgresCluster, make_cluster_dir

UNAVAILABLE = {"detail": "Database unavailable"}


@pytest.fixture
def fragile_stack() -> Iterator[tuple[PostgresCluster, DbApiServer]]:
    """A cluster of its own, so stopping it cannot disturb the other tests."""
    base_dir = make_cluster_dir("pg-outage-")
    cluster = PostgresCluster(base_dir).start()
    try:
        with running_db_api(cluster, database="db_api_outage") as server:
            yield cluster, server
    finally:
        cluster.stop()
        shutil.rmtree(base_dir, ignore_errors=True)


def test_outage_is_503_and_recovers(fragile_stack: tuple[PostgresCluster, DbApiServer]) -> None:
    cluster, server = fragile_stack
    with httpx.Client(base_url=server.url, headers=auth_headers(server.service_token)) as client:
        user = create_user(client)
        chat = create_chat(client, user_id=user["id"])
        headers = user_headers(user["id"])

        cluster.stop()
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json() == UNAVAILABLE
        assert client.get("/health/live").status_code == 200
        for response in (
            client.get("/chats", headers=headers),
            client.get(f"/chats/{chat['id']}", headers=headers),
            client.post("/chats", json={}, headers=headers),
            client.post("/users/verify", json={"username": "someone", "password": "x" * 8}),
        ):
            assert response.status_code == 503
            assert response.json() == UNAVAILABLE

        cluster.start()
        assert client.get("/health/ready").status_code == 200
        listing = client.get("/chats", headers=headers)
        assert listing.status_code == 200
        assert [item["id"] for item in listing.json()["items"]] == [chat["id"]]

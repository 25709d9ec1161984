"""db-api's route tests talk to its app in the test process, on the session's database.

`db_api_client` here is db-api's real app behind a Starlette TestClient (see
`tests.support.db_api.db_api_in_process`): the same routes, lifespan and PostgreSQL
database as the `db_api` process, which the tests that need a real server keep using
(concurrent requests, the OpenAPI fuzzing, docs pages, outages).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from harness.db_api import DbApiServer
from harness.postgres import PostgresCluster
from tests.support.db_api import db_api_in_process


@pytest.fixture(scope="package")
def db_api_app_client(db_api: DbApiServer, postgres: PostgresCluster) -> Iterator[httpx.Client]:
    with db_api_in_process(db_api, postgres) as client:
        yield client


@pytest.fixture
def db_api_client(db_api_app_client: httpx.Client) -> httpx.Client:
    """db-api in-process, sending the service token (overrides the process-backed one)."""
    return db_api_app_client

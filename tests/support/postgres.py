"""The test session's PostgreSQL cluster, a `harness.postgres.PostgresCluster`."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from harness.postgres import PostgresCluster, make_cluster_dir

__all__ = ["postgres"]


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """The session's PostgreSQL cluster; each service fixture makes its own database."""
    base_dir = make_cluster_dir()
    cluster = PostgresCluster(base_dir).start()
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(base_dir, ignore_errors=True)

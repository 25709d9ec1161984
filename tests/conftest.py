"""Session-wide fixtures: real services, started once, and chat-ui's app in-process.

Each support module exports its fixtures through ``__all__``; importing them here
makes them visible to every test under ``tests/``.
"""

from __future__ import annotations

import pytest

from tests.support.browser import *  # noqa: F403
from tests.support.chat_ui import *  # noqa: F403
from tests.support.db_api import *  # noqa: F403
from tests.support.inprocess import *  # noqa: F403
from tests.support.llama import *  # noqa: F403
from tests.support.native import *  # noqa: F403
from tests.support.nginx import *  # noqa: F403
from tests.support.postgres import *  # noqa: F403

TIER_BY_DIRECTORY = {
    "unit": "unit",
    "inprocess": "inprocess",
    "db_api": "integration",
    "lm_api": "integration",
    "chat_ui": "integration",
    "e2e": "e2e",
    "compose": "compose",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its tier from the folder it lives in."""
    for item in items:
        parts = item.path.parts
        tests_index = len(parts) - 1 - parts[::-1].index("tests")
        directory = parts[tests_index + 1] if tests_index + 1 < len(parts) else ""
        tier = TIER_BY_DIRECTORY.get(directory)
        if tier is not None:
            item.add_marker(getattr(pytest.mark, tier))

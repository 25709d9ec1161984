"""HTTP routes, one module per resource; what several of them answer alike is here."""

from __future__ import annotations

from typing import Any

from db_api.schemas import RateLimited


def rate_limited(description: str) -> dict[str, Any]:
    """The documented 429 of a route that takes a token of a per-user rate limit."""
    return {
        "model": RateLimited,
        "description": description,
        "headers": {"Retry-After": {"description": "Seconds until the next one is allowed"}},
    }

"""Liveness and readiness probes for orchestrators and the test harness."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import text

from db_api.db import get_engine
from db_api.schemas import ErrorDetail

router = APIRouter(prefix="/health", tags=["health"])


class HealthStatus(BaseModel):
    status: Literal["ok"] = "ok"


@router.get(
    "/live",
    summary="Is the process up",
    description="Answers as long as the web server runs; does not touch the database.",
)
def live() -> HealthStatus:
    return HealthStatus()


@router.get(
    "/ready",
    summary="Can the service answer requests",
    description="Runs `SELECT 1` on PostgreSQL. 503 while the database is unreachable.",
    responses={503: {"model": ErrorDetail, "description": "Database unavailable"}},
)
def ready() -> HealthStatus:
    with get_engine().connect() as connection:
        connection.execute(text("SELECT 1"))
    return HealthStatus()

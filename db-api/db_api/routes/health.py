"""Liveness and readiness probes for orchestrators and the test harness."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import text

from db_api.database import ReadSession
from db_api.schemas import ErrorDetail

router = APIRouter(prefix="/health", tags=["health"])


class HealthStatus(BaseModel):
    status: Literal["ok"] = "ok"


@router.get(
    "/live",
    summary="Is the process up",
    description="Answers as long as the web server runs; does not touch the database.",
)
async def live() -> HealthStatus:
    return HealthStatus()


@router.get(
    "/ready",
    summary="Can the service answer requests",
    description="Runs `SELECT 1` on PostgreSQL. 503 while the database is unreachable.",
    responses={503: {"model": ErrorDetail, "description": "Database unavailable"}},
)
async def ready(db: ReadSession) -> HealthStatus:
    await db.execute(text("SELECT 1"))
    return HealthStatus()

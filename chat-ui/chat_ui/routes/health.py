"""Liveness and readiness probes for orchestrators and load balancers."""

from __future__ import annotations

import asyncio

from fastapi.responses import JSONResponse

from chat_ui.deps import DbDep, LmDep
from chat_ui.forms import FormRouter

router = FormRouter(prefix="/health", tags=["health"])


@router.get("", summary="Liveness: the process answers")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", summary="Readiness: db-api and the model server answer")
async def ready(db: DbDep, lm: LmDep) -> JSONResponse:
    db_ready, model_health = await asyncio.gather(db.is_ready(), lm.health())
    checks = {"db_api": "ok" if db_ready else "unreachable", "lm_api": model_health}
    all_ok = all(state == "ok" for state in checks.values())
    return JSONResponse(
        {"status": "ok" if all_ok else "unavailable", "checks": checks},
        status_code=200 if all_ok else 503,
    )

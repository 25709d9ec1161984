"""An empty FastAPI app: the memory floor of a Python service under uvicorn (a baseline)."""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI()


@app.get("/health/ready")
def ready() -> dict[str, str]:
    return {"status": "ok"}

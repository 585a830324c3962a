"""The reference servers of ``bench/fleet_ingest.py``: bare FastAPI + pydantic POST handlers.

Both take the same requests as the fleet server's single-message ingest (path, bearer header,
today's payload with 10 metrics) and answer without storing, evaluating or publishing
anything:

- ``app`` validates the body against the fleet's own wire model
  (:class:`rigwatch.wire.status_v1.StatusMessageV1`: every field of today's system info, time
  and range checks): what FastAPI costs just to accept a status message as the fleet does;
- ``minimal_app`` validates it against a plain model of the top level (typed fields, the
  system info an untyped object): a "bare FastAPI + pydantic handler" at its cheapest.

The benchmark runs them in the same run as the fleet server and reports the fleet server's
rate as a ratio of theirs, which holds from machine to machine where absolute rates do not.

    uvicorn fleet_reference_app:app --app-dir bench
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from rigwatch.wire.status_v1 import StatusMessageV1


class MinimalStatus(BaseModel):
    """Today's payload with plain types only."""

    machine_id: str
    timestamp: str
    status: str | None = None
    sensor_data: dict[str, float | None] = {}
    system_info: dict[str, Any] | None = None
    seq: int | None = None


app = FastAPI()
minimal_app = FastAPI()


@app.post("/api/machines/{machine_id}/status")
async def post_status(machine_id: str, message: StatusMessageV1) -> dict[str, int]:
    """Validate the body as the fleet does and answer as it does (one message accepted)."""
    return {"accepted": 1}


@minimal_app.post("/api/machines/{machine_id}/status")
async def post_status_minimal(machine_id: str, message: MinimalStatus) -> dict[str, int]:
    """Validate the body's top level and answer as the fleet does."""
    return {"accepted": 1}


@app.get("/api/health")
@minimal_app.get("/api/health")
async def health() -> dict[str, str]:
    """For the benchmark's start-up wait."""
    return {"status": "ok"}

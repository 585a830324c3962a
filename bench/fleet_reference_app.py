"""The reference server of ``bench/fleet_ingest.py``: a bare FastAPI + pydantic POST handler.

It takes the same requests as the fleet server's single-message ingest (path, bearer header,
today's payload) and validates the body against the same wire model
(:class:`rigwatch.wire.status_v1.StatusMessageV1`), then answers without storing, evaluating or
publishing anything: what FastAPI costs just to accept a status message. The benchmark runs it
in the same run as the fleet server and reports the fleet server's rate as a ratio of this one,
which holds from machine to machine where absolute rates do not.

    uvicorn fleet_reference_app:app --app-dir bench
"""

from __future__ import annotations

from fastapi import FastAPI

from rigwatch.wire.status_v1 import StatusMessageV1

app = FastAPI()


@app.post("/api/machines/{machine_id}/status")
async def post_status(machine_id: str, message: StatusMessageV1) -> dict[str, int]:
    """Validate the body and answer as the fleet server does (one message accepted)."""
    return {"accepted": 1}


@app.get("/api/health")
async def health() -> dict[str, str]:
    """For the benchmark's start-up wait."""
    return {"status": "ok"}

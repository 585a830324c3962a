"""A tiny stand-in for the fleet server's ingest endpoints, served by uvicorn in a thread.

``POST /api/machines/{machine_id}/status`` and ``.../status/batch`` check the bearer key,
validate bodies against the wire schema (``rigwatch.wire.status_v1``), drop duplicates by
``seq`` and record what they accept. The server can be switched off (its port closed: clients
get "connection refused", like a real outage) and on again on the same port, or told to answer
a given status code (503 with Retry-After...).
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from rigwatch.wire.status_v1 import StatusBatchV1, StatusMessageV1


@dataclass
class IngestRecord:
    """What the stub accepted."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    seqs: set[int] = field(default_factory=set)
    duplicates: int = 0
    requests: int = 0
    batches: int = 0
    refused: int = 0
    arrived: threading.Condition = field(default_factory=threading.Condition)


def build_app(machine_id: str, key: str, record: IngestRecord, state: dict[str, Any]) -> FastAPI:
    app = FastAPI()

    def _auth(mid: str, authorization: str | None) -> JSONResponse | None:
        if authorization != f"Bearer {key}" or mid != machine_id:
            return JSONResponse({"title": "unauthorised"}, status_code=401)
        forced = state.get("status")
        if forced is not None:
            headers = {"Retry-After": str(state["retry_after"])} if "retry_after" in state else {}
            return JSONResponse({"title": "forced"}, status_code=forced, headers=headers)
        return None

    def _store(raw: dict[str, Any]) -> None:
        seq = raw.get("seq")
        with record.arrived:
            if seq in record.seqs:
                record.duplicates += 1
            else:
                record.seqs.add(seq)
                record.messages.append(raw)
            record.arrived.notify_all()

    @app.post("/api/machines/{mid}/status")
    async def status(
        mid: str, request: Request, authorization: str | None = Header(default=None)
    ) -> JSONResponse:
        record.requests += 1
        refused = _auth(mid, authorization)
        if refused is not None:
            return refused
        raw = await request.json()
        try:
            StatusMessageV1.model_validate(raw)
        except ValidationError as exc:
            record.refused += 1
            return JSONResponse({"title": "invalid", "detail": str(exc)}, status_code=422)
        _store(raw)
        return JSONResponse({"accepted": 1})

    @app.post("/api/machines/{mid}/status/batch")
    async def batch(
        mid: str, request: Request, authorization: str | None = Header(default=None)
    ) -> JSONResponse:
        record.requests += 1
        refused = _auth(mid, authorization)
        if refused is not None:
            return refused
        raw = await request.json()
        try:
            StatusBatchV1.model_validate(raw)
        except ValidationError as exc:
            record.refused += 1
            return JSONResponse({"title": "invalid", "detail": str(exc)}, status_code=422)
        record.batches += 1
        for m in raw["messages"]:
            _store(m)
        return JSONResponse({"accepted": len(raw["messages"])})

    return app


class IngestStub:
    """The stub server; ``url`` stays the same across :meth:`down` / :meth:`up`."""

    def __init__(
        self,
        machine_id: str = "mill_1",
        key: str = "k-secret",
        *,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
    ) -> None:
        self.machine_id = machine_id
        self.key = key
        self._ssl = {"ssl_certfile": ssl_certfile, "ssl_keyfile": ssl_keyfile}
        self.record = IngestRecord()
        self.state: dict[str, Any] = {}
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        scheme = "https" if ssl_certfile else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    def up(self) -> None:
        """Start serving (bind the port again)."""
        if self._server is not None:
            return
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(64)
        server = uvicorn.Server(
            uvicorn.Config(
                build_app(self.machine_id, self.key, self.record, self.state),
                log_level="warning",
                lifespan="off",
                **self._ssl,  # type: ignore[arg-type]
            )
        )
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        self._server, self._thread, self._sock = server, thread, sock

    def down(self) -> None:
        """Stop serving and close the port (clients then get connection refused)."""
        if self._server is None:
            return
        self._server.should_exit = True
        assert self._thread is not None and self._sock is not None
        self._thread.join(20)
        self._sock.close()
        self._server = self._thread = self._sock = None

    def wait_for(self, n: int, timeout_s: float = 10.0) -> bool:
        """Wait until ``n`` distinct messages were accepted."""
        with self.record.arrived:
            return self.record.arrived.wait_for(
                lambda: len(self.record.messages) >= n, timeout=timeout_s
            )

    def __enter__(self) -> IngestStub:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

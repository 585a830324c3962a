"""Ingest endpoints: ``POST /api/machines/{machine_id}/status`` and ``.../status/batch``.

Order of checks (cheapest refusal first; nothing is stored unless all pass):

1. ``Content-Length`` above the limit: 413 before reading; a body that grows past the limit
   while read (chunked): 413.
2. ``Authorization: Bearer <key>``: missing, unknown or revoked key: 401 (``fleet.key_refused``);
   a valid key of another machine: 403 (``fleet.key_mismatch``). A full commit queue: 503 with
   Retry-After before the body is read.
3. Validation against the wire schema: 422 with one problem per bad field; the message's
   ``machine_id`` must be the URL's.
   Bodies in progress are bounded in bytes (``max_in_flight_bytes``): beyond, 503 with
   Retry-After before the body is read.
4. Per-key rate limit: 429 with Retry-After.
5. Group commit: queue full: 503 with Retry-After; commit failed: 503 (send again).
   2xx only once the messages are committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request, Response

from rigwatch.errors import WireError
from rigwatch.fleet.ingest import retry_after
from rigwatch.fleet.problems import ProblemError, problem_responses
from rigwatch.fleet.schemas import IngestResult, MachineId
from rigwatch.fleet.security import secret_hash
from rigwatch.fleet.services import FleetServices
from rigwatch.wire import StatusMessage, validate_batch, validate_status

_MESSAGE_REF = {"$ref": "#/components/schemas/StatusMessageV1"}
_BATCH_REF = {"$ref": "#/components/schemas/StatusBatchV1"}
_RESPONSES = problem_responses(401, 403, 413, 422, 429, 503)


def _services(request: Request) -> FleetServices:
    services: FleetServices = request.app.state.fleet
    return services


Chunks = AsyncIterator[bytes]


async def _read_body(chunks: Chunks, limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise ProblemError(
                413, f"body exceeds the limit of {limit} bytes", counter="fleet.oversized"
            )
        parts.append(chunk)
    return b"".join(parts)


async def _authorise(services: FleetServices, authorization: str, machine_id: str) -> str:
    """The key's hash when it is valid for ``machine_id``."""
    scheme, _, key = authorization.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise ProblemError(
            401,
            "missing API key: send Authorization: Bearer <machine key>",
            headers={"WWW-Authenticate": "Bearer"},
            counter="fleet.key_refused",
        )
    key_hash = secret_hash(key.strip())
    found, owner = services.key_cache.get(key_hash)
    if not found:
        owner = await asyncio.to_thread(services.store.machine_for_key_hash, key_hash)
        services.key_cache.put(key_hash, owner)
    if owner is None:
        raise ProblemError(
            401,
            "unknown or revoked API key",
            headers={"WWW-Authenticate": "Bearer"},
            counter="fleet.key_refused",
        )
    if owner != machine_id:
        raise ProblemError(
            403,
            f"this key belongs to another machine; it cannot write for {machine_id!r}",
            counter="fleet.key_mismatch",
        )
    return key_hash


def _check_ids(machine_id: str, messages: list[StatusMessage], batch: bool) -> None:
    errors = [
        {
            "field": f"messages[{i}].machine_id" if batch else "machine_id",
            "message": f"{m.machine_id!r} differs from the machine of the URL ({machine_id!r})",
            "type": "machine_mismatch",
        }
        for i, m in enumerate(messages)
        if m.machine_id != machine_id
    ]
    if errors:
        raise ProblemError(422, errors[0]["message"], errors, counter="fleet.invalid_message")


async def ingest(
    services: FleetServices,
    machine_id: str,
    batch: bool,
    authorization: str,
    content_length: str | None,
    chunks: Chunks,
) -> IngestResult:
    """Authorise, read, validate, rate-limit and commit one ingest request.

    Args:
        services: the server.
        machine_id: the machine of the URL.
        batch: the batch endpoint (``{"messages": [...]}``).
        authorization: the ``Authorization`` header ("" when absent).
        content_length: the ``Content-Length`` header, if any.
        chunks: the body, as it arrives.

    Raises:
        ProblemError: every refusal (see the module's notes for the order and statuses).
    """
    server = services.config.server
    limit = server.max_batch_bytes if batch else server.max_message_bytes
    declared: int | None = None
    if content_length is not None:
        if not content_length.isdigit():
            raise ProblemError(400, "Content-Length is not a number")
        declared = int(content_length)
        if declared > limit:
            raise ProblemError(
                413,
                f"body of {content_length} bytes exceeds the limit of {limit} bytes",
                counter="fleet.oversized",
            )
    key_hash = await _authorise(services, authorization, machine_id)
    retry = {"Retry-After": str(services.config.ingest.retry_after_s)}
    if services.writer.full:
        # refuse before reading: under overload a refused body costs nothing
        raise ProblemError(
            503, "the server is busy: send again later", headers=retry, counter="fleet.busy"
        )
    reserved = declared if declared is not None else limit
    if not services.reserve_body(reserved):
        raise ProblemError(
            503,
            "the server is busy reading other requests: send again later",
            headers=retry,
            counter="fleet.busy",
        )
    try:
        body = await _read_body(chunks, limit)
        now = services.clock()
        try:
            if batch:
                messages = list(validate_batch(body, now=now).messages)
            else:
                messages = [validate_status(body, now=now)]
        except WireError as exc:
            raise ProblemError(
                422, str(exc), exc.problems, counter="fleet.invalid_message"
            ) from None
        del body
    finally:
        services.release_body(reserved)
    _check_ids(machine_id, messages, batch)
    wait = services.limiter.take(key_hash, len(messages))
    if wait is not None:
        raise ProblemError(
            429,
            f"rate limit of machine {machine_id!r} reached",
            headers={"Retry-After": retry_after(wait)},
            counter="fleet.rate_limited",
        )
    try:
        return await services.submit(machine_id, messages)
    except OverflowError:
        raise ProblemError(
            503, "the server is busy: send again later", headers=retry, counter="fleet.busy"
        ) from None
    except Exception as exc:
        raise ProblemError(
            503,
            f"the messages could not be stored ({type(exc).__name__}); send again",
            headers=retry,
            counter="fleet.store_failed",
        ) from None


async def _ingest(request: Request, machine_id: str, batch: bool) -> Response:
    result = await ingest(
        _services(request),
        machine_id,
        batch,
        request.headers.get("authorization", ""),
        request.headers.get("content-length"),
        request.stream(),
    )
    return Response(result.model_dump_json().encode(), media_type="application/json")


def ingest_router() -> APIRouter:
    """The ingest routes (paths kept exactly as today's agents post)."""
    router = APIRouter(tags=["ingest"])

    @router.post(
        "/api/machines/{machine_id}/status",
        response_model=IngestResult,
        responses=_RESPONSES,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _MESSAGE_REF}},
            }
        },
        summary="Store one status message of a machine (its own key only)",
    )
    async def ingest_one(machine_id: MachineId, request: Request) -> Any:
        return await _ingest(request, machine_id, batch=False)

    @router.post(
        "/api/machines/{machine_id}/status/batch",
        response_model=IngestResult,
        responses=_RESPONSES,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _BATCH_REF}},
            }
        },
        summary="Store a backlog of status messages of a machine, oldest first",
    )
    async def ingest_batch(machine_id: MachineId, request: Request) -> Any:
        return await _ingest(request, machine_id, batch=True)

    return router

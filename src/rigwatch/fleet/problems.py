"""RFC 9457 problem details for every error of the fleet server, counted.

Every error answer is ``application/problem+json`` with ``title``, ``status``, ``detail`` and,
for invalid input, ``errors``: one ``{"field", "message", "type"}`` per bad field (dotted path,
``messages[3].sensor_data.temperature``).
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rigwatch.counters import Counters
from rigwatch.errors import AlertError, FleetAuthError, FleetForbidden, FleetStoreError
from rigwatch.fleet.schemas import Problem
from rigwatch.wire import field_path

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

BODY_REFUSED = "rigwatch.body_refused"
"""Scope key set by the fleet's body limit when it cut a body short (it answers 413 itself)."""


class ProblemError(Exception):
    """Raise to answer a problem: status, detail, optional field errors and headers."""

    def __init__(
        self,
        status: int,
        detail: str,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        counter: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors
        self.headers = headers
        self.counter = counter


def title_of(status: int) -> str:
    """The HTTP reason phrase of ``status``."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem_body(
    status: int, detail: str, errors: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    """The body of a problem answer (RFC 9457): ``type``, ``title``, ``status``, ``detail``
    and, for field problems, ``errors``."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title_of(status),
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    return body


def problem(
    status: int,
    detail: str,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """An ``application/problem+json`` response of :func:`problem_body`."""
    return JSONResponse(
        problem_body(status, detail, errors),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries of problem answers."""
    return {s: {"model": Problem, "description": title_of(s)} for s in statuses}


def install_problem_handlers(app: FastAPI, counters: Counters) -> None:
    """Answer every error as problem details and count it (``fleet.http_<status>``, or the
    name of the refusal: ``fleet.invalid_request``, ``fleet.auth_refused``...).

    A JSON body that cannot even be decoded (not UTF-8, nested too deeply) is invalid JSON
    like any other: 422 with the field ``body`` and type ``json_invalid``, as ingest answers it
    (FastAPI's own answer would be a 400 the API does not document).
    """

    def _undecodable_body(cause: BaseException) -> JSONResponse:
        if isinstance(cause, UnicodeDecodeError):
            reason = f"not UTF-8 text (byte {cause.start})"
        elif isinstance(cause, RecursionError):
            reason = "nested too deeply"
        else:
            reason = str(cause)[:200]
        message = f"the body is not valid JSON: {reason}"
        counters.inc("fleet.invalid_request", message=message)
        errors = [{"field": "body", "message": message, "type": "json_invalid"}]
        return problem(422, f"invalid request: body: {message}", errors)

    @app.exception_handler(ProblemError)
    async def _problem(_r: Request, exc: ProblemError) -> JSONResponse:
        counters.inc(exc.counter or f"fleet.http_{exc.status}", message=exc.detail[:300])
        return problem(exc.status, exc.detail, exc.errors, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(r: Request, exc: StarletteHTTPException) -> JSONResponse:
        if r.scope.get(BODY_REFUSED):  # the read was cut by the body limit: it answers 413
            return problem(413, "body too large")
        if exc.status_code == 400 and isinstance(exc.__cause__, ValueError | RecursionError):
            return _undecodable_body(exc.__cause__)
        counters.inc(f"fleet.http_{exc.status_code}", message=str(exc.detail)[:300])
        return problem(exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def _validation(_r: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for e in exc.errors():
            loc = tuple(p for p in e.get("loc", ()) if isinstance(p, str | int))
            message = e.get("msg", "invalid")
            if e.get("type") == "extra_forbidden":
                message = "unknown field (not part of the schema; check its spelling)"
            errors.append({"field": field_path(loc), "message": message, "type": e.get("type", "")})
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        counters.inc("fleet.invalid_request", message=detail[:300])
        return problem(422, f"invalid request: {detail}", errors)

    @app.exception_handler(FleetAuthError)
    async def _auth(_r: Request, exc: FleetAuthError) -> JSONResponse:
        status = 403 if isinstance(exc, FleetForbidden) else 401
        counters.inc("fleet.auth_refused", message=str(exc)[:300])
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return problem(status, str(exc), headers=headers)

    @app.exception_handler(FleetStoreError)
    async def _store(_r: Request, exc: FleetStoreError) -> JSONResponse:
        text = str(exc)
        status = 404 if text.startswith("no ") else 409
        counters.inc(f"fleet.http_{status}", message=text[:300])
        return problem(status, text)

    @app.exception_handler(AlertError)
    async def _alert(_r: Request, exc: AlertError) -> JSONResponse:
        text = str(exc)
        status = 404 if text.startswith("no alert") else 409
        counters.inc(f"fleet.http_{status}", message=text[:300])
        return problem(status, text)

    @app.exception_handler(Exception)
    async def _unexpected(_r: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        counters.inc("fleet.server_error", message=f"{type(exc).__name__}: {exc}"[:300])
        return problem(500, "internal error (logged on the server)")

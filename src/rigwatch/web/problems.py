"""RFC 9457 problem details for every HTTP error of rigwatch's servers, and their counters.

Every error answer is ``application/problem+json`` naming what was wrong. Rejected requests
are counted (``http.rejected_request``, ``http.invalid_request``, ``http.busy``), and so is
every server error that remains (``http.server_error``), with its last message.
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
from rigwatch.web.limits import Busy
from rigwatch.web.schemas import Problem

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem(
    status: int,
    detail: str,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: object,
) -> JSONResponse:
    """An ``application/problem+json`` response (RFC 9457 section 3)."""
    body = {
        "type": "about:blank",
        "title": title or _title(status),
        "status": status,
        "detail": detail,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries documenting problem-details answers of ``statuses``."""
    ref = {"$ref": "#/components/schemas/Problem"}
    return {
        s: {
            "model": Problem,
            "description": _title(s),
            "content": {PROBLEM_JSON: {"schema": ref}},
        }
        for s in statuses
    }


def document_problems(app: FastAPI) -> None:
    """Make ``/openapi.json`` say what the server sends on errors: problem details.

    Every error response declared with :func:`problem_responses` is documented as
    ``application/problem+json`` only (the ``model`` there just registers the schema), and
    FastAPI's default 422 body (``HTTPValidationError``) is replaced by a problem.
    """
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = original()
        ref = {"$ref": "#/components/schemas/Problem"}
        for item in spec.get("paths", {}).values():
            for op in item.values():
                for code, resp in op.get("responses", {}).items():
                    if not code.startswith(("4", "5")):
                        continue
                    resp["content"] = {PROBLEM_JSON: {"schema": ref}}
                    resp["description"] = _title(int(code))
        schemas = spec.get("components", {}).get("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


def install_problem_handlers(app: FastAPI, counters: Counters) -> None:
    """Answer HTTP errors, validation errors, bounded-resource refusals and unexpected
    exceptions as problem details; count them."""

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if 400 <= exc.status_code < 500 and exc.status_code != 404:
            counters.inc("http.rejected_request", message=str(exc.detail))
        elif exc.status_code >= 500:
            counters.inc("http.server_error", message=str(exc.detail))
        return problem(exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]), "reason": e["msg"]} for e in exc.errors()
        ]
        detail = "; ".join(f"{e['field']}: {e['reason']}" for e in errors)
        counters.inc("http.invalid_request", message=detail)
        return problem(422, detail, title="Invalid request", errors=errors)

    @app.exception_handler(Busy)
    async def _busy(_request: Request, exc: Busy) -> JSONResponse:
        counters.inc("http.busy", message=str(exc))
        return problem(exc.status, str(exc), headers={"Retry-After": exc.retry_after_header})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        message = f"{request.method} {request.url.path}: {type(exc).__name__}: {exc}"
        counters.inc("http.server_error", message=message)
        log.error("unexpected error in %s", message, exc_info=exc)
        return problem(500, f"internal error ({type(exc).__name__}); it was logged and counted")

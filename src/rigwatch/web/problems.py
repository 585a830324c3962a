"""RFC 9457 problem details for every HTTP error of rigwatch's servers."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rigwatch.counters import Counters

PROBLEM_JSON = "application/problem+json"


def problem(status: int, title: str, detail: str, **extra: object) -> JSONResponse:
    """A ``application/problem+json`` response (RFC 9457 section 3)."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def install_problem_handlers(app: FastAPI, counters: Counters) -> None:
    """Answer HTTP and validation errors as problem details; count rejected requests."""

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if 400 <= exc.status_code < 500 and exc.status_code != 404:
            counters.inc("http.rejected_request", message=str(exc.detail))
        title = {400: "Bad Request", 404: "Not Found", 409: "Conflict"}.get(
            exc.status_code, "Error"
        )
        return problem(exc.status_code, title, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]), "reason": e["msg"]} for e in exc.errors()
        ]
        detail = "; ".join(f"{e['field']}: {e['reason']}" for e in errors)
        counters.inc("http.invalid_request", message=detail)
        return problem(422, "Invalid request", detail, errors=errors)

"""The ingest endpoints as a plain ASGI handler in front of FastAPI.

``POST /api/machines/{machine_id}/status`` and ``.../status/batch`` are the hot path: every
machine posts every N seconds. FastAPI's request machinery (middleware stack, routing,
dependency solving, response validation) costs more per request than our whole check of a
message, so the fleet app (:class:`rigwatch.fleet.app.FleetApp`) hands those two paths to
:func:`answer_ingest` before any of it, which answers them with exactly the same code
(:func:`rigwatch.fleet.routes_ingest.ingest`) and the same answers (problem details,
counters). The FastAPI routes stay for the OpenAPI description and behave identically; a path
whose machine id does not match the id pattern falls through to them (and gets their 422).
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from rigwatch.fleet.problems import PROBLEM_JSON, ProblemError, problem_body
from rigwatch.fleet.routes_ingest import ingest
from rigwatch.fleet.services import FleetServices

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

INGEST_PATH = re.compile(r"^/api/machines/([A-Za-z_][A-Za-z0-9_\-]{0,63})/status(/batch)?$")


class _Disconnected(Exception):
    pass


async def answer_ingest(
    services: FleetServices | None, scope: Scope, receive: Receive, send: Send
) -> bool:
    """Answer the request when it is an ingest POST (see the module's notes).

    Returns:
        True when answered; False when the request is not an ingest or the server has not
        started (``services`` None): the caller passes it on.
    """
    if services is None or scope["type"] != "http" or scope["method"] != "POST":
        return False
    found = INGEST_PATH.match(scope["path"])
    if found is None:
        return False
    await _handle(services, found, scope, receive, send)
    return True


async def _handle(
    services: FleetServices,
    found: re.Match[str],
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    authorization = ""
    length: str | None = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"content-length":
            length = value.decode("latin-1")

    async def chunks() -> AsyncIterator[bytes]:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            yield message.get("body", b"")
            if not message.get("more_body", False):
                return

    try:
        result = await ingest(
            services,
            found.group(1),
            found.group(2) is not None,
            authorization,
            length,
            chunks(),
        )
    except ProblemError as exc:
        services.counters.inc(exc.counter or f"fleet.http_{exc.status}", message=exc.detail[:300])
        body = problem_body(exc.status, exc.detail, exc.errors)
        await _respond(send, exc.status, orjson.dumps(body), PROBLEM_JSON, exc.headers)
        return
    except _Disconnected:
        services.counters.inc("fleet.client_disconnected")
        return
    except Exception as exc:
        log.exception("ingest failed")
        services.counters.inc("fleet.server_error", message=f"{type(exc).__name__}: {exc}")
        body = problem_body(500, "internal error (logged on the server)")
        await _respond(send, 500, orjson.dumps(body), PROBLEM_JSON, None)
        return
    await _respond(send, 200, result.model_dump_json().encode(), "application/json", None)


async def _respond(
    send: Send, status: int, body: bytes, content_type: str, headers: dict[str, str] | None
) -> None:
    raw = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    raw.extend(
        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()
    )
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})

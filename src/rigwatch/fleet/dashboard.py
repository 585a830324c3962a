"""The fleet dashboard (a web page built from ``frontend/fleet.html`` into ``static/``) and
what it reads besides the REST API: ``GET /api/rules``, the rule set in use (thresholds drawn
on the machine page's trend charts).

:func:`mount_dashboard` is called last by :func:`rigwatch.fleet.app.create_fleet_app`: the
page is mounted at ``/`` (``index.html`` for ``/``) behind every API route, only when it has
been built (``npm run build`` in ``frontend/``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.staticfiles import StaticFiles

from rigwatch.fleet.problems import problem_responses
from rigwatch.fleet.routes_api import Viewer
from rigwatch.fleet.services import FleetServices

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
"""Where the dashboard is built (``frontend/vite.config.ts``, mode ``fleet``)."""


def rules_router() -> APIRouter:
    """``GET /api/rules`` (viewer)."""
    r = APIRouter()

    @r.get("/api/rules", tags=["state"], responses=problem_responses(401, 403))
    async def rules(request: Request, _who: Viewer) -> dict[str, Any]:
        """The rule set in use: machine settings (``grey_after_s``...), metric rules with
        their conditions, warning and critical thresholds (a number, or ``[low, high]`` for
        ``outside``) and units, and the not-accessible rules."""
        services: FleetServices = request.app.state.fleet
        return services.status.rules.model_dump(mode="json")

    return r


def mount_dashboard(app: FastAPI, static_dir: Path = STATIC_DIR) -> bool:
    """Add ``GET /api/rules`` and serve the built dashboard at ``/`` (call after every other
    route). Returns whether the page was found (``static_dir/index.html``)."""
    app.include_router(rules_router())
    if not (static_dir / "index.html").is_file():
        log.info("fleet dashboard not built (%s missing): API only", static_dir / "index.html")
        return False
    app.mount("/", StaticFiles(directory=static_dir, html=True), name="dashboard")
    return True

"""``rigwatch agent``: run the reporter of a machine computer, inspect its outbox."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from rigwatch.agent.config import load_agent_config
from rigwatch.agent.outbox import Outbox
from rigwatch.agent.run import run_blocking
from rigwatch.errors import RigwatchError

app = typer.Typer(
    no_args_is_help=True,
    help="The agent: reports a machine to the fleet server, keeping messages while offline.",
)

log = logging.getLogger(__name__)

ConfigArg = Annotated[Path, typer.Argument(help="The agent's TOML config (configs/agent.toml).")]


def _fail(exc: Exception) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(code=2)


@app.command()
def run(
    config: ConfigArg,
    once: Annotated[
        bool, typer.Option("--once", help="One sample and one send attempt, then exit.")
    ] = False,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Sample the sensors every interval_s and send to the fleet server until stopped
    (Ctrl-C, SIGTERM, Ctrl-Break). Messages wait in the local outbox while the server is
    unreachable."""
    logging.basicConfig(
        level=getattr(logging, log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        cfg = load_agent_config(config)
        counters = run_blocking(cfg, once=once)
    except RigwatchError as exc:
        raise _fail(exc) from None
    if once:
        typer.echo(json.dumps(counters.snapshot()))


@app.command()
def outbox(config: ConfigArg) -> None:
    """Print the outbox's fill state and counters (JSON)."""
    try:
        cfg = load_agent_config(config)
        with Outbox(cfg.outbox.resolved_path(), cfg.outbox.max_bytes) as box:
            stats = box.stats()
    except RigwatchError as exc:
        raise _fail(exc) from None
    typer.echo(json.dumps({"path": str(cfg.outbox.resolved_path()), **asdict(stats)}))

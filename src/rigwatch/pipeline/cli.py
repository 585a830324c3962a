"""``rigwatch pipeline``: run one stage, or all of them under the supervisor; ``manifest`` and
``calibrate`` are the manifest's and the calibration's own command-line apps.

Every command imports what it needs when it runs (the manifest and calibration apps too), so
``rigwatch --help`` does not load SQLAlchemy or SciPy."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer

from rigwatch.errors import RigwatchError

app = typer.Typer(
    no_args_is_help=True,
    help="The pipeline: collector, processor, reporter, compressor, syncer, retention.",
)

log = logging.getLogger(__name__)

ConfigOpt = Annotated[
    Path, typer.Option("--config", "-c", help="The pipeline's TOML config (configs/phorest.toml).")
]


_PASS_THROUGH = {
    "context_settings": {"allow_extra_args": True, "ignore_unknown_options": True},
    "add_help_option": False,
}


def _forward(module: str, ctx: typer.Context, prog: str) -> None:
    """Run the Typer ``app`` of ``module`` with the remaining command-line arguments."""
    import importlib

    sub = importlib.import_module(module).app
    command = typer.main.get_command(sub)
    command.main(args=list(ctx.args), prog_name=prog, standalone_mode=True)


@app.command(**_PASS_THROUGH)  # type: ignore[arg-type]
def manifest(ctx: typer.Context) -> None:
    """The manifest: status counts, online backup, migrate, retry failed items
    (``rigwatch pipeline manifest --help``)."""
    _forward("rigwatch.pipeline.manifest.cli", ctx, "rigwatch pipeline manifest")


@app.command(**_PASS_THROUGH)  # type: ignore[arg-type]
def calibrate(ctx: typer.Context) -> None:
    """Locate the gratings of a camera image and write ROI_manifest.json
    (``rigwatch pipeline calibrate --help``)."""
    _forward("rigwatch.pipeline.analysis.cli", ctx, "rigwatch pipeline calibrate")


def _fail(exc: Exception) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(code=2)


@app.command()
def run(
    stage: Annotated[
        str,
        typer.Argument(help="collector, processor, reporter, compressor, syncer or retention."),
    ],
    config: ConfigOpt,
    name: Annotated[str | None, typer.Option(help="Process name (its status file).")] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Run one stage in the foreground until Ctrl-C or SIGTERM (it finishes its current item
    and gives its other items back)."""
    from rigwatch.pipeline.config import STAGE_NAMES
    from rigwatch.pipeline.stages.run import run_stage

    if stage not in STAGE_NAMES:
        raise _fail(ValueError(f"unknown stage {stage!r}; stages: {', '.join(STAGE_NAMES)}"))
    logging.basicConfig(
        level=getattr(logging, log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        run_stage(stage, config, name)  # type: ignore[arg-type, unused-ignore]
    except RigwatchError as exc:
        raise _fail(exc) from None


@app.command()
def up(config: ConfigOpt) -> None:
    """Start every enabled stage under the supervisor, in the background."""
    from rigwatch.pipeline.supervisor import up as start

    try:
        pid = start(config)
    except RigwatchError as exc:
        raise _fail(exc) from None
    typer.echo(f"pipeline running (supervisor pid {pid})")


@app.command()
def down(config: ConfigOpt) -> None:
    """Stop the supervisor and its stages (each finishes its current item)."""
    from rigwatch.pipeline.supervisor import down as stop

    try:
        stopped = stop(config)
    except RigwatchError as exc:
        raise _fail(exc) from None
    typer.echo("pipeline stopped" if stopped else "pipeline was not running")


@app.command()
def status(
    config: ConfigOpt,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Each stage's state (and why it waits), restarts, and counts per stage and status."""
    from rigwatch.pipeline.supervisor import status as read

    try:
        info = read(config)
    except RigwatchError as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps(info, indent=1))
        return
    typer.echo("running" if info["running"] else "not running")
    children = info["supervisor"].get("children", {})
    for name, st in info["stages"].items():
        child = children.get(name, {})
        if st is None:
            typer.echo(f"  {name:<14} no status")
            continue
        reason = f" ({st['reason']})" if st.get("reason") else ""
        typer.echo(
            f"  {name:<14} {st['state']:<9} done {st['done']:<7} failed {st['failed']:<5} "
            f"restarts {child.get('restarts', 0)}{reason}"
        )
    for stage, counts in info.get("counts", {}).items():
        text = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        typer.echo(f"  [{stage}] {text}")


@app.command("import-phorest")
def import_phorest(
    source: Annotated[Path, typer.Argument(help="Today's Phorest_config.toml.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The rigwatch config to write.")],
) -> None:
    """Convert today's Phorest_config.toml into a rigwatch pipeline config."""
    from rigwatch.pipeline.phorest_import import convert_file

    try:
        notes = convert_file(source, output)
    except RigwatchError as exc:
        raise _fail(exc) from None
    for note in notes:
        typer.echo(f"note: {note}")
    typer.echo(f"wrote {output}")


from rigwatch.pipeline.tui_cli import tui  # noqa: E402  (cheap: Textual loads when it runs)

app.command("tui")(tui)

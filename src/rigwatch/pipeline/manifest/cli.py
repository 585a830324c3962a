"""``rigwatch pipeline manifest``: look at and maintain a manifest (status counts, online
backup, migrating, retrying failed items)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer

from rigwatch.errors import PipelineError
from rigwatch.pipeline.manifest.backup import backup_sqlite
from rigwatch.pipeline.manifest.store import Manifest

app = typer.Typer(help="The pipeline's manifest: status, backup, migrate, retry.")

Target = Annotated[str, typer.Argument(help="SQLite file or postgresql+psycopg:// URL")]
Schema = Annotated[str | None, typer.Option(help="PostgreSQL schema")]


def _open(target: str, schema: str | None) -> Manifest:
    try:
        return Manifest.open(target, schema=schema)
    except PipelineError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


@app.command()
def status(target: Target, schema: Schema = None) -> None:
    """Counts per stage and status, as JSON."""
    with _open(target, schema) as manifest:
        typer.echo(orjson.dumps(manifest.counts(), option=orjson.OPT_INDENT_2).decode())


@app.command()
def migrate(target: Target, schema: Schema = None) -> None:
    """Create or upgrade the manifest's schema (opening it does the same)."""
    with _open(target, schema):
        typer.echo("manifest schema is current")


@app.command()
def backup(
    target: Target,
    dest: Annotated[Path, typer.Argument(help="folder of the backups")],
    keep: Annotated[int, typer.Option(help="backups kept")] = 7,
) -> None:
    """Online backup of a SQLite manifest (it may be in use)."""
    try:
        typer.echo(str(backup_sqlite(target, dest, keep=keep)))
    except PipelineError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


@app.command()
def retry(
    target: Target,
    stage: Annotated[str, typer.Argument(help="the stage whose failed items to retry")],
    schema: Schema = None,
) -> None:
    """Put the failed items of a stage back to pending, with fresh attempts."""
    with _open(target, schema) as manifest:
        try:
            typer.echo(f"{manifest.retry_failed(stage)} items of {stage} will be retried")
        except PipelineError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc

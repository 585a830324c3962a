"""The ``rigwatch`` command: station, demo, recordings and config checks."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Column, Table

from rigwatch.errors import RigwatchError

app = typer.Typer(no_args_is_help=True, help="rigwatch: monitor and control instrumented machines.")
station_app = typer.Typer(no_args_is_help=True, help="Run a station next to a machine.")
config_app = typer.Typer(no_args_is_help=True, help="Check configuration files.")
recordings_app = typer.Typer(no_args_is_help=True, help="List and export recorded segments.")
app.add_typer(station_app, name="station")
app.add_typer(config_app, name="config")
app.add_typer(recordings_app, name="recordings")

console = Console()
err_console = Console(stderr=True)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEMO_CONFIG = PROJECT_ROOT / "configs" / "demo.toml"


def _fail(exc: Exception) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
    return typer.Exit(code=2)


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _serve(config_path: Path, host: str | None, port: int | None, duration_s: float | None) -> None:
    import uvicorn

    from rigwatch.config import load_config
    from rigwatch.station import Station
    from rigwatch.web.station_app import create_app

    try:
        cfg = load_config(config_path)
        station = Station(cfg)
    except RigwatchError as exc:
        raise _fail(exc) from None
    host = host or cfg.server.host
    port = cfg.server.port if port is None else port
    fastapi_app = create_app(station)
    server = uvicorn.Server(
        uvicorn.Config(
            fastapi_app,
            host=host,
            port=port,
            log_level="info",
            ws_max_size=1 << 20,
            ws_per_message_deflate=False,
        )
    )
    if duration_s is not None:
        timer = threading.Timer(duration_s, lambda: setattr(server, "should_exit", True))
        timer.daemon = True
        timer.start()
    console.print(
        f"[bold]rigwatch station[/] {cfg.name!r}: {len(cfg.devices)} device(s); "
        f"page at http://{host}:{port}/ , API docs at http://{host}:{port}/docs , "
        f"recordings in {cfg.recorder.directory}",
        highlight=False,
    )
    server.run()


@station_app.command("run")
def station_run(
    config: Annotated[Path, typer.Argument(help="Station TOML config.")],
    host: Annotated[str | None, typer.Option(help="Override server.host.")] = None,
    port: Annotated[int | None, typer.Option(help="Override server.port.")] = None,
    duration_s: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: run until Ctrl-C).")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run a station: acquire, record, serve the API, the live WebSocket and the page."""
    _logging(verbose)
    _serve(config, host, port, duration_s)


@app.command()
def demo(
    port: Annotated[int | None, typer.Option(help="Override the demo's port (5001).")] = None,
    duration_s: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
) -> None:
    """Replay real bearing-vibration recordings (CWRU) as live devices, record and serve them."""
    _logging(False)
    if not DEMO_CONFIG.is_file():
        raise _fail(FileNotFoundError(f"demo config not found at {DEMO_CONFIG}"))
    _serve(DEMO_CONFIG, None, port, duration_s)


@config_app.command("check")
def config_check(file: Annotated[Path, typer.Argument(help="TOML config file.")]) -> None:
    """Validate a station config; print what it defines or what is wrong."""
    from rigwatch.config import load_config

    try:
        cfg = load_config(file)
    except RigwatchError as exc:
        raise _fail(exc) from None
    console.print(f"[green]ok[/] {file}: station {cfg.name!r}", highlight=False)
    for d in cfg.devices:
        console.print(f"  device {d.name!r} ({d.driver})", highlight=False)


@recordings_app.command("list")
def recordings_list(
    directory: Annotated[Path, typer.Argument(help="Recordings folder.")] = Path("recordings"),
) -> None:
    """List recorded segments with device, rows, duration and size."""
    from rigwatch.acquisition.parquet_files import list_recordings

    table = Table(Column("file", overflow="fold"), "device", "rows", "duration s", "MB", "channels")
    for r in list_recordings(directory):
        d = r.to_dict()
        if d.get("error"):
            table.add_row(d["filename"], "-", "-", "-", "-", f"[red]{d['error']}[/]")
            continue
        dur = (d["end_ns"] - d["start_ns"]) / 1e9 if d.get("end_ns") else 0.0
        table.add_row(
            d["filename"],
            d["device"],
            str(d["rows"]),
            f"{dur:.2f}",
            f"{d['size_bytes'] / 1e6:.2f}",
            ",".join(d["channels"]),
        )
    console.print(table)


@recordings_app.command("export")
def recordings_export(
    file: Annotated[Path, typer.Argument(help="A recorded .parquet segment.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output file.")],
    fmt: Annotated[str, typer.Option("--to", help="csv or parquet")] = "csv",
    channels: Annotated[str | None, typer.Option(help="Comma-separated channel names.")] = None,
) -> None:
    """Export a recording to CSV or Parquet, with a progress bar."""
    from rich.progress import Progress

    from rigwatch.acquisition.parquet_files import export_recording

    if fmt not in ("csv", "parquet"):
        raise _fail(ValueError(f"--to must be csv or parquet, got {fmt!r}"))
    chans = [c.strip() for c in channels.split(",")] if channels else None
    with Progress(console=console) as progress:
        task = progress.add_task(f"export {file.name}", total=None)

        def cb(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        try:
            export_recording(file, out, fmt, channels=chans, progress=cb)  # type: ignore[arg-type]
        except RigwatchError as exc:
            raise _fail(exc) from None
    console.print(f"[green]wrote[/] {out}", highlight=False)

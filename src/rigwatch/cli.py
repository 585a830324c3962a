"""The ``rigwatch`` command: station, demo, recordings and config checks."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table

from rigwatch.acoustics.cli import app as acoustics_app
from rigwatch.agent.cli import app as agent_app
from rigwatch.errors import RigwatchError
from rigwatch.fleet.cli import app as fleet_app
from rigwatch.pipeline.cli import app as pipeline_app

app = typer.Typer(no_args_is_help=True, help="rigwatch: monitor and control instrumented machines.")
station_app = typer.Typer(no_args_is_help=True, help="Run a station next to a machine.")
config_app = typer.Typer(no_args_is_help=True, help="Check configuration files.")
recordings_app = typer.Typer(no_args_is_help=True, help="List and export recorded segments.")
app.add_typer(station_app, name="station")
app.add_typer(config_app, name="config")
app.add_typer(recordings_app, name="recordings")
app.add_typer(agent_app, name="agent")
app.add_typer(acoustics_app, name="acoustics")
app.add_typer(fleet_app, name="fleet")
app.add_typer(pipeline_app, name="pipeline")

console = Console()
err_console = Console(stderr=True)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEMO_CONFIG = PROJECT_ROOT / "configs" / "demo.toml"


def _fail(exc: Exception) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
    return typer.Exit(code=2)


LOG_LEVELS = ("debug", "info", "warning", "error")
SWITCH_INTERVAL_S = 0.001
"""The station process's GIL switch interval (Python's default: 0.005 s)."""


def _logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _serve(
    config_path: Path,
    host: str | None,
    port: int | None,
    duration_s: float | None,
    *,
    simulate: bool = False,
    recordings: Path | None = None,
    log_level: str = "info",
) -> None:
    import uvicorn

    from rigwatch.config import load_config
    from rigwatch.station import Station
    from rigwatch.web.security import AccessPolicy
    from rigwatch.web.station_app import create_app

    try:
        cfg = load_config(config_path)
        if recordings is not None:
            recorder = cfg.recorder.model_copy(update={"directory": recordings.resolve()})
            cfg = cfg.model_copy(update={"recorder": recorder})
        host = host or cfg.server.host
        access = AccessPolicy.from_config(cfg.server, host)
        station = Station(cfg, simulate=simulate)
    except RigwatchError as exc:
        raise _fail(exc) from None
    port = cfg.server.port if port is None else port
    fastapi_app = create_app(station, access=access)
    server = uvicorn.Server(
        uvicorn.Config(
            fastapi_app,
            host=host,
            port=port,
            log_level=log_level,
            ws_max_size=1 << 20,
            ws_per_message_deflate=False,
            timeout_graceful_shutdown=cfg.server.shutdown_grace_s,
        )
    )
    if duration_s is not None:
        timer = threading.Timer(duration_s, lambda: setattr(server, "should_exit", True))
        timer.daemon = True
        timer.start()
    simulated = " (hardware simulated)" if simulate else ""
    console.print(
        f"[bold]rigwatch station[/] {cfg.name!r}: {len(cfg.devices)} device(s){simulated}; "
        f"page at http://{host}:{port}/ , API docs at http://{host}:{port}/docs , "
        f"recordings in {cfg.recorder.directory}",
        highlight=False,
    )
    # the event loop (live stream) waits for the GIL behind threads doing heavy work (queries,
    # encoding); handing it over every millisecond instead of every 5 keeps frames on time
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    _abort_on_signal(server, station)
    _run_until_signal(server)


def _abort_on_signal(server: Any, station: Any) -> None:
    """On SIGTERM or Ctrl-C, ask the station's control part to run the abort sequence at once
    if the stand is armed, running or holding (it only queues the request: safe in a signal
    handler); uvicorn then shuts down as usual, and the station's stop waits for ``safe``
    before the devices close."""
    handle_exit = server.handle_exit

    def abort_then_exit(sig: int, frame: Any) -> None:
        station.control.abort_on_signal(signal.Signals(sig).name)
        handle_exit(sig, frame)

    server.handle_exit = abort_then_exit


def _run_until_signal(server: Any) -> None:
    """Run uvicorn; a Ctrl-C (SIGINT) or SIGTERM is a clean stop: the station closes its
    segments and the process exits 0. uvicorn re-raises the signal it caught once it has shut
    down; the handlers installed here take it instead of the default ones (which would exit
    130 or die by the signal)."""
    caught: list[int] = []

    def note(signum: int, _frame: object) -> None:
        caught.append(signum)

    previous = {sig: signal.signal(sig, note) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if caught:
        console.print(f"stopped by {signal.Signals(caught[0]).name}", highlight=False)


@station_app.command("run")
def station_run(
    config: Annotated[Path, typer.Argument(help="Station TOML config.")],
    host: Annotated[str | None, typer.Option(help="Override server.host.")] = None,
    port: Annotated[int | None, typer.Option(help="Override server.port.")] = None,
    duration_s: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: run until Ctrl-C).")
    ] = None,
    simulate: Annotated[
        bool,
        typer.Option(
            "--simulate",
            help="Replace every hardware device (NI-DAQ, STM32...) by its simulated twin.",
        ),
    ] = False,
    recordings: Annotated[
        Path | None, typer.Option(help="Override recorder.directory (where segments go).")
    ] = None,
    log_level: Annotated[
        str, typer.Option(help=f"Logging level: {', '.join(LOG_LEVELS)}.")
    ] = "info",
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Same as debug.")] = False,
) -> None:
    """Run a station: acquire, record, serve the API, the live WebSocket and the page."""
    level = "debug" if verbose else log_level.lower()
    if level not in LOG_LEVELS:
        raise _fail(ValueError(f"--log-level must be one of {', '.join(LOG_LEVELS)}"))
    _logging(level)
    _serve(
        config,
        host,
        port,
        duration_s,
        simulate=simulate,
        recordings=recordings,
        log_level=level,
    )


@app.command()
def demo(
    port: Annotated[int | None, typer.Option(help="Override the demo's port (5001).")] = None,
    duration_s: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
) -> None:
    """Replay real bearing-vibration recordings (CWRU) as live devices, record and serve them."""
    _logging("info")
    if not DEMO_CONFIG.is_file():
        raise _fail(FileNotFoundError(f"demo config not found at {DEMO_CONFIG}"))
    _serve(DEMO_CONFIG, None, port, duration_s)


@app.command("openapi")
def openapi(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="File (default: stdout).")] = None,
) -> None:
    """Print the station API's OpenAPI document (the web page's types are generated from it)."""
    import json

    from rigwatch.config.station import StationConfig
    from rigwatch.station import Station
    from rigwatch.web.security import AccessPolicy
    from rigwatch.web.station_app import create_app

    # any station has the same API; this one is never started
    cfg = StationConfig.from_dict(
        {"devices": [{"name": "d", "driver": "sim", "sample_rate_hz": 1, "channel_count": 1}]}
    )
    spec = create_app(
        Station(cfg), manage_station=False, access=AccessPolicy(frozenset(), None)
    ).openapi()
    spec["info"]["title"] = "rigwatch station"
    text = json.dumps(spec, indent=2, sort_keys=True) + "\n"
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")


@config_app.command("check")
def config_check(file: Annotated[Path, typer.Argument(help="TOML config file.")]) -> None:
    """Validate a station config; print what it defines or what is wrong."""
    from rigwatch.config import load_config

    try:
        cfg = load_config(file)
    except RigwatchError as exc:
        raise _fail(exc) from None
    from rigwatch.devices.registry import drivers

    known = drivers()
    console.print(f"[green]ok[/] {file}: station {cfg.name!r}", highlight=False)
    for d in cfg.devices:
        driver = known.get(d.driver)
        twin = " (simulated with --simulate)" if driver and driver.needs_hardware else ""
        console.print(f"  device {d.name!r} ({d.driver}){twin}", highlight=False)


@app.command("drivers")
def drivers_list() -> None:
    """List the installed device drivers (entry points 'rigwatch.drivers')."""
    from rigwatch.devices.registry import drivers

    try:
        found = drivers()
    except RigwatchError as exc:
        raise _fail(exc) from None
    table = Table("driver", "hardware", "module", "description")
    for name, d in sorted(found.items()):
        table.add_row(
            name,
            "yes (simulated twin)" if d.needs_hardware else "no",
            d.config_model.__module__,
            escape(d.description),
        )
    console.print(table)


@recordings_app.command("list")
def recordings_list(
    directory: Annotated[Path, typer.Argument(help="Recordings folder.")] = Path("recordings"),
) -> None:
    """List recorded segments with device, rows, duration and size."""
    from rigwatch.recordings.catalog import list_recordings

    table = Table(Column("file", overflow="fold"), "device", "rows", "duration s", "MB", "channels")
    for r in list_recordings(directory):
        if r.error:
            table.add_row(r.filename, "-", "-", "-", "-", f"[red]{escape(r.error)}[/]")
            continue
        dur = (r.end_ns - r.start_ns) / 1e9 if r.end_ns is not None and r.start_ns else 0.0
        table.add_row(
            r.filename,
            r.device,
            str(r.rows),
            f"{dur:.2f}",
            f"{r.size_bytes / 1e6:.2f}",
            ",".join(r.channels),
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

    from rigwatch.recordings.export import export_recording

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

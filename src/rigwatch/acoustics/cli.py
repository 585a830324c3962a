"""``rigwatch acoustics``: the acoustic camera's tools (the demo recording)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, help="Acoustic camera tools.")

DEFAULT_DRONE = Path(__file__).resolve().parents[3] / "data" / "acoustics" / "measurement_drone.wav"


@app.command("scene")
def scene(
    out: Annotated[Path, typer.Argument(help="HDF5 file to write (Acoular time-data format).")],
    drone: Annotated[
        Path, typer.Option(help="The drone recording placed as a source (mono, 51 200 Hz).")
    ] = DEFAULT_DRONE,
) -> None:
    """Write the demo recording: a real drone recording and a white-noise source on the ball
    mill's pipe surface, propagated to its 9-microphone array (48 kHz, Pa)."""
    from rigwatch.acoustics.demo_scene import write_demo_scene
    from rigwatch.errors import RigwatchError

    try:
        summary = write_demo_scene(drone, out)
    except RigwatchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(
        f"{out}: {summary['samples']} samples x {summary['channels']} microphones at "
        f"{summary['sample_rate_hz']:g} Hz; sources at {summary['source_positions_m']}"
    )

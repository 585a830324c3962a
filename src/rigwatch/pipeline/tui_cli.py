"""``rigwatch pipeline tui``: the command that opens the pipeline's TUI
(:class:`rigwatch.pipeline.tui.PipelineTui`).

Kept apart from the TUI so that registering the command costs no import of Textual, the
manifest or NumPy: they are imported when the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

REFRESH_S = 2.0
"""Default seconds between two polls of the status files and the manifest."""

ConfigOpt = Annotated[
    Path, typer.Option("--config", "-c", help="The pipeline's TOML config (configs/phorest.toml).")
]


def tui(
    config: ConfigOpt,
    features: Annotated[
        Path | None,
        typer.Option(help="Feature_locations.toml (default: in the config's folder)."),
    ] = None,
    chip_maps: Annotated[
        Path | None,
        typer.Option(help="Chip maps per chip type (default: chip_maps.toml there)."),
    ] = None,
    template: Annotated[
        Path | None,
        typer.Option(help="Image of one label mark (default: label_template.png there)."),
    ] = None,
    calibration_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where calibration writes ROI_manifest.json and located_rois.png (default: "
            "the folder of the grating analysis' roi_manifest, else the config's folder)."
        ),
    ] = None,
    refresh_s: Annotated[float, typer.Option(min=0.2, help="Seconds between polls.")] = REFRESH_S,
) -> None:
    """The pipeline's TUI: each stage's state, counts per status, throughput and errors;
    start/stop all stages (u/d), calibration (c), live capture (l)."""
    from rigwatch.errors import RigwatchError
    from rigwatch.pipeline.monitor import CalibrationFiles, Monitor
    from rigwatch.pipeline.tui import PipelineTui

    try:
        monitor = Monitor(config)
    except RigwatchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None
    files = CalibrationFiles.defaults(monitor.config, config)
    files = CalibrationFiles(
        features=features or files.features,
        chip_maps=chip_maps or files.chip_maps,
        template=template or files.template,
        out_dir=calibration_dir or files.out_dir,
    )
    PipelineTui(config, monitor=monitor, calibration=files, refresh_s=refresh_s).run()

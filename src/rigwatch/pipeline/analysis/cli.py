"""``calibrate``: locate the gratings of a camera image and write ``ROI_manifest.json``.

A Typer sub-app; mounted under ``rigwatch pipeline`` it reads::

    rigwatch pipeline calibrate IMAGE --features Feature_locations.toml \\
        --chip-maps chips.toml --template label.png --out-dir .
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rigwatch.errors import AnalysisError

app = typer.Typer(no_args_is_help=True, help="Calibration of the grating analysis.")


@app.command()
def calibrate(
    image: Annotated[Path, typer.Argument(help="Camera image (16- or 8-bit grayscale PNG).")],
    features: Annotated[
        Path, typer.Option(help="Feature_locations.toml: chip_type and >= 2 label positions.")
    ],
    chip_maps: Annotated[
        Path, typer.Option(help="Chip maps per chip type (TOML or JSON): label and box per label.")
    ],
    template: Annotated[Path, typer.Option(help="Image of one label mark, centred on it.")],
    out_dir: Annotated[
        Path, typer.Option(help="Where ROI_manifest.json and located_rois.png go.")
    ] = Path("."),
    min_correlation: Annotated[
        float, typer.Option(help="Least normalised correlation that counts as found.")
    ] = 0.5,
) -> None:
    """Locate the gratings, write ROI_manifest.json and draw them into located_rois.png."""
    from rigwatch.pipeline.analysis.calibration import calibrate as run_calibration
    from rigwatch.pipeline.analysis.calibration import load_chip_maps
    from rigwatch.pipeline.analysis.images import read_image

    try:
        result = run_calibration(
            read_image(image),
            features,
            load_chip_maps(chip_maps),
            read_image(template),
            out_dir,
            min_correlation=min_correlation,
        )
    except AnalysisError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None
    typer.echo(
        f"{len(result.manifest.rois)} ROIs from {len(result.matches)} labels: image_angle "
        f"{result.manifest.image_angle:.4f} deg, scale {result.transform.scale:.5f}, RMS "
        f"residual {result.rms_residual_px:.2f} px -> {Path(out_dir) / 'ROI_manifest.json'}"
    )

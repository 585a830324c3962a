"""Synthetic grating images whose resonance positions are known.

A chip holds a grid of gratings; each grating is split into two halves side by side (the right
one flipped, as today's ROI detection does) and has a label mark above its left corner. Every
row of a half shows one resonance line along x, Gaussian or Fano (see :mod:`.linefits` for the
shapes), at a position that drifts slowly down the rows. The chip is drawn upright, scaled and
offset, then rotated by ``angle_deg`` about the image centre (``scipy.ndimage.rotate``), noise
is added and the image is stored as ``uint16``.

The generator returns the image with its ground truth: the ROI manifest of the upright frame
(the frame the analysis works in after rotating by ``-image_angle``), each ROI's true position
per row, the chip map and the label positions in the image (for calibration).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from rigwatch.pipeline.analysis.images import rotate_image, rotate_points
from rigwatch.pipeline.analysis.roi_manifest import Roi, RoiManifest

LABEL_MARK = np.array(
    [
        [1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
        [1, 1, 0, 0, 0, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 1, 1, 1, 0, 0, 0],
        [1, 1, 0, 0, 1, 1, 1, 0, 0, 0],
        [1, 1, 0, 0, 1, 1, 1, 0, 0, 0],
        [1, 1, 0, 0, 0, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0, 0, 0, 0, 1],
    ],
    dtype=np.float64,
)
"""The label mark (1 = bright), drawn at scale 1 with its centre on the label position."""


@dataclass(frozen=True)
class ChipSpec:
    """A chip design in chip units (1 unit = 1 pixel at scale 1).

    Attributes:
        rows, cols: grid of gratings.
        half_size: ``(height, width)`` of each half of a grating.
        pitch: ``(dy, dx)`` between gratings.
        label_offset: ``(dx, dy)`` of a label's centre from its grating's top-left corner.
    """

    rows: int = 46
    cols: int = 7
    half_size: tuple[int, int] = (30, 120)
    pitch: tuple[int, int] = (44, 290)
    label_offset: tuple[float, float] = (6.0, -8.0)

    def labels(self) -> list[str]:
        """Grating labels ``R<row>C<col>``, row-major."""
        return [f"R{r:02d}C{c:02d}" for r in range(self.rows) for c in range(self.cols)]

    def chip_map(self) -> dict[str, dict[str, list[float]]]:
        """``{label: {"label": [x, y], "box": [x, y, w, h]}}`` in chip units; the box covers
        both halves of the grating."""
        h, w = self.half_size
        out = {}
        for i, name in enumerate(self.labels()):
            r, c = divmod(i, self.cols)
            x, y = float(c * self.pitch[1]), float(r * self.pitch[0])
            out[name] = {
                "label": [x + self.label_offset[0], y + self.label_offset[1]],
                "box": [x, y, float(2 * w), float(h)],
            }
        return out


@dataclass(frozen=True)
class SyntheticSpec:
    """What to draw.

    Attributes:
        shape: image ``(rows, cols)``.
        chip: the chip design; origin: pixel ``(x, y)`` of chip point (0, 0) in the upright
            frame; scale: pixels per chip unit (ROI sizes are rounded to whole pixels).
        angle_deg: rotation of the chip in the image (the manifest's ``image_angle``).
        line: ``"gaussian"`` (``sigma`` px) or ``"fano"`` (``gamma`` px, asymmetry ``q``).
        amplitude: line height above the background (counts); background: counts.
        noise: standard deviation of Gaussian noise (counts).
        drift_px: change of the position from the first to the last row of a half.
        shift_px: added to every position (a synthetic camera moves the lines with it).
    """

    shape: tuple[int, int] = (2048, 2048)
    chip: ChipSpec = field(default_factory=ChipSpec)
    origin: tuple[float, float] = (12.0, 16.0)
    scale: float = 1.0
    angle_deg: float = 0.0
    line: Literal["gaussian", "fano"] = "gaussian"
    sigma: float = 2.5
    gamma: float = 3.0
    q: float = 2.5
    amplitude: float = 20_000.0
    background: float = 8_000.0
    noise: float = 150.0
    drift_px: float = 3.0
    shift_px: float = 0.0


@dataclass(frozen=True)
class SyntheticGratingImage:
    """A generated image and its truth.

    Attributes:
        image: ``(rows, cols)`` ``uint16``.
        manifest: the true ROI manifest (upright frame, ``image_angle = angle_deg``).
        positions: ``{roi name: (height,) float64}`` true resonance position of each row, in
            the ROI's own coordinates (after its flip): ``mu`` for Gaussian lines, ``x_r`` for
            Fano lines.
        peak_offset: where the line's maximum lies from that position (0 for Gaussian lines,
            ``gamma / q`` for Fano lines), pixels.
        label_positions: ``{label: (x, y)}`` label centres in the (rotated) image.
    """

    image: np.ndarray
    manifest: RoiManifest
    positions: dict[str, np.ndarray]
    peak_offset: float
    label_positions: dict[str, tuple[float, float]]


def line_profile(spec: SyntheticSpec, d: np.ndarray) -> np.ndarray:
    """Line shape (counts above the background) at offsets ``d`` from the position."""
    if spec.line == "gaussian":
        return spec.amplitude * np.exp(-(d**2) / (2 * spec.sigma**2))
    a = spec.amplitude / spec.q**2  # the maximum, a (1 + q^2), is amplitude above baseline a
    g = spec.gamma
    return a * ((spec.q * g + d) ** 2 / (g**2 + d**2) - 1.0)


def make_grating_image(spec: SyntheticSpec | None = None, seed: int = 0) -> SyntheticGratingImage:
    """Draw a grating image (see the module docstring); deterministic for a given seed."""
    sp = spec or SyntheticSpec()
    rng = np.random.default_rng(seed)
    height, width = sp.shape
    canvas = np.full(sp.shape, sp.background, dtype=np.float64)
    h = round(sp.chip.half_size[0] * sp.scale)
    w = round(sp.chip.half_size[1] * sp.scale)
    x = np.arange(w, dtype=np.float64)
    rois: list[Roi] = []
    positions: dict[str, np.ndarray] = {}
    labels_upright: dict[str, tuple[float, float]] = {}
    mark = LABEL_MARK * sp.amplitude
    for name, entry in sp.chip.chip_map().items():
        bx, by = entry["box"][0], entry["box"][1]
        col = round(sp.origin[0] + bx * sp.scale)
        row = round(sp.origin[1] + by * sp.scale)
        base = rng.uniform(0.3, 0.7) * w + sp.shift_px
        per_row = base + sp.drift_px * (np.arange(h) / max(h - 1, 1) - 0.5)
        for half, flip in ((1, False), (2, True)):
            c0 = col + (half - 1) * w
            roi = Roi(f"ROI_{name}_{half}", name, flip, row, c0, h, w)
            pos = per_row + (half - 1) * rng.uniform(-4, 4)
            drawn_at = (w - 1 - pos) if flip else pos
            d = x[None, :] - drawn_at[:, None]
            if flip:  # the line shape mirrors with the ROI
                d = -d
            canvas[row : row + h, c0 : c0 + w] += line_profile(sp, d)
            rois.append(roi)
            positions[roi.name] = pos
        lx = sp.origin[0] + entry["label"][0] * sp.scale
        ly = sp.origin[1] + entry["label"][1] * sp.scale
        labels_upright[name] = (lx, ly)
        r0 = round(ly - (mark.shape[0] - 1) / 2)
        c0 = round(lx - (mark.shape[1] - 1) / 2)
        if r0 >= 0 and r0 + mark.shape[0] <= height and c0 >= 0 and c0 + mark.shape[1] <= width:
            canvas[r0 : r0 + mark.shape[0], c0 : c0 + mark.shape[1]] += mark
    canvas = rotate_image(canvas, sp.angle_deg)
    outside = canvas == 0  # rotate_image fills with zeros
    canvas[outside] = sp.background
    canvas += rng.normal(0.0, sp.noise, canvas.shape)
    image = np.clip(np.rint(canvas), 0, 65535).astype(np.uint16)
    names = list(labels_upright)
    upright = np.array([labels_upright[n] for n in names])
    rotated = rotate_points(upright, sp.angle_deg, sp.shape)
    return SyntheticGratingImage(
        image=image,
        manifest=RoiManifest(tuple(rois), sp.angle_deg),
        positions=positions,
        peak_offset=0.0 if sp.line == "gaussian" else sp.gamma / sp.q,
        label_positions={
            n: (float(p[0]), float(p[1])) for n, p in zip(names, rotated, strict=True)
        },
    )

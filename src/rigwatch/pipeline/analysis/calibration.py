"""Calibration ("locate gratings"): from a few user-given label positions to ``ROI_manifest.json``.

Inputs, as today's pipeline:

- ``Feature_locations.toml``: the chip type and at least two labels with their approximate
  pixel position ``[x, y]`` (``x`` = column, ``y`` = row) in the camera image::

      chip_type = "demo_chip"
      [[features]]
      label = "R00C00"
      feature_location = [18.0, 8.0]

- a chip map: per label, the label mark's centre ``[x, y]`` and the grating's box
  ``[x, y, w, h]`` in chip units (:class:`ChipMap`);
- a template image of one label mark as the camera sees it.

Steps: (1) least-squares similarity transform (scale, rotation, offset) from the chip map's
label positions to the given ones; (2) each given label refined by normalised cross-correlation
with the template (:func:`skimage.feature.match_template`, J. P. Lewis, "Fast Normalized
Cross-Correlation", Vision Interface 1995) in a window around its position, peak to sub-pixel
by a parabola through the peak and its neighbours along each axis, then the transform
re-estimated; (3) optionally every other label of the map inside the image refined the same
way (kept only when its correlation is high and it agrees with the transform), and the
transform estimated from all of them; (4) each grating box mapped into the upright frame (the
image rotated by ``-image_angle``, where the analysis cuts ROIs) and split into two halves side
by side, the second one flipped (``ROI_<label>_1``, ``ROI_<label>_2``).

The similarity fit is the closed-form least-squares solution (S. Umeyama, IEEE TPAMI 13 (1991)
376, without reflection), written with complex numbers: ``z' = a z + b`` with
``a = s e^{i phi}``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from skimage.feature import match_template

from rigwatch.errors import CalibrationError
from rigwatch.pipeline.analysis.images import check_image, normalise_uint8, rotate_points
from rigwatch.pipeline.analysis.roi_manifest import Roi, RoiManifest, write_roi_manifest

log = logging.getLogger(__name__)

MIN_CORRELATION = 0.5
"""A template match is accepted when its normalised cross-correlation peak reaches this."""
SEARCH_RADIUS_PX = 15
"""Half size of the search window around a user-given label position (pixels)."""
REFINE_RADIUS_PX = 6
"""Half size of the search window around a label predicted by the refined transform."""
MAX_RESIDUAL_PX = 2.0
"""Labels located further than this from the fitted transform are left out of the fit."""


@dataclass(frozen=True)
class Feature:
    """A user-given label position in the image (pixels, ``x`` = column, ``y`` = row)."""

    label: str
    x: float
    y: float


@dataclass(frozen=True)
class FeatureLocations:
    """Contents of ``Feature_locations.toml``."""

    chip_type: str
    features: tuple[Feature, ...]


def _pair(value: Any) -> tuple[float, float] | None:
    if (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        and all(math.isfinite(float(v)) for v in value)
    ):
        return float(value[0]), float(value[1])
    return None


def parse_feature_locations(
    data: Mapping[str, Any], source: str = "feature locations"
) -> FeatureLocations:
    """Validate decoded ``Feature_locations.toml`` content.

    Raises:
        CalibrationError: no ``chip_type``, no ``[[features]]`` list, a feature without a
            ``label`` or with a ``feature_location`` that is not two finite numbers, a label
            given twice, fewer than two features; the message names ``source`` and the entry.
    """
    chip_type = data.get("chip_type")
    if not isinstance(chip_type, str) or not chip_type:
        raise CalibrationError(f"{source}: chip_type must be a non-empty string, got {chip_type!r}")
    raw = data.get("features")
    if not isinstance(raw, list):
        raise CalibrationError(f"{source}: needs a [[features]] list, got {raw!r}")
    features: list[Feature] = []
    for i, entry in enumerate(raw):
        where = f"{source}: features[{i}]"
        if not isinstance(entry, Mapping):
            raise CalibrationError(f"{where} must be a table, got {entry!r}")
        label = entry.get("label")
        if not isinstance(label, str) or not label:
            raise CalibrationError(f"{where}: label must be a non-empty string, got {label!r}")
        xy = _pair(entry.get("feature_location"))
        if xy is None:
            raise CalibrationError(
                f"{where} ({label}): feature_location must be [x, y] (two finite numbers), "
                f"got {entry.get('feature_location')!r}"
            )
        if any(f.label == label for f in features):
            raise CalibrationError(f"{where}: label {label!r} is given twice")
        features.append(Feature(label, xy[0], xy[1]))
    if len(features) < 2:
        raise CalibrationError(
            f"{source}: at least two labels are needed to find rotation and scale, "
            f"got {len(features)}"
        )
    return FeatureLocations(chip_type, tuple(features))


def load_feature_locations(path: str | Path) -> FeatureLocations:
    """Read ``Feature_locations.toml``.

    Raises:
        CalibrationError: missing or unreadable file, invalid TOML, invalid content (see
            :func:`parse_feature_locations`).
    """
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CalibrationError(f"{p}: cannot read the feature locations: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise CalibrationError(f"{p}: not valid TOML: {exc}") from exc
    return parse_feature_locations(data, str(p))


@dataclass(frozen=True)
class ChipMap:
    """One chip type's design in chip units.

    Attributes:
        labels: ``{label: (x, y)}`` centre of each label mark.
        boxes: ``{label: (x, y, w, h)}`` top-left corner and size of each grating (both halves).
    """

    labels: dict[str, tuple[float, float]]
    boxes: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str = "chip map") -> ChipMap:
        """From ``{label: {"label": [x, y], "box": [x, y, w, h]}}`` (``box`` optional for labels
        that mark no grating).

        Raises:
            CalibrationError: not a mapping, no label, a malformed entry (names it).
        """
        if not isinstance(data, Mapping) or not data:
            raise CalibrationError(f"{source}: must map labels to entries, got {data!r}")
        labels: dict[str, tuple[float, float]] = {}
        boxes: dict[str, tuple[float, float, float, float]] = {}
        for name, entry in data.items():
            where = f"{source}: {name}"
            xy = _pair(entry.get("label")) if isinstance(entry, Mapping) else None
            if xy is None:
                raise CalibrationError(f"{where}: needs label = [x, y], got {entry!r}")
            labels[str(name)] = xy
            box = entry.get("box")
            if box is None:
                continue
            if (
                not isinstance(box, list | tuple)
                or len(box) != 4
                or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in box)
                or not all(math.isfinite(float(v)) for v in box)
                or box[2] <= 0
                or box[3] <= 0
            ):
                raise CalibrationError(f"{where}: box must be [x, y, w > 0, h > 0], got {box!r}")
            boxes[str(name)] = (float(box[0]), float(box[1]), float(box[2]), float(box[3]))
        if not boxes:
            raise CalibrationError(f"{source}: has no grating box")
        return cls(labels, boxes)


def load_chip_maps(path: str | Path) -> dict[str, ChipMap]:
    """Read chip maps per chip type from a TOML or JSON file:
    ``{chip_type: {label: {"label": [x, y], "box": [x, y, w, h]}}}``.

    Raises:
        CalibrationError: unreadable file, invalid TOML/JSON, malformed content.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
        data: Any = json.loads(text) if p.suffix.lower() == ".json" else tomllib.loads(text)
    except OSError as exc:
        raise CalibrationError(f"{p}: cannot read the chip map: {exc}") from exc
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise CalibrationError(f"{p}: malformed chip map file: {exc}") from exc
    if not isinstance(data, dict) or not data:
        raise CalibrationError(f"{p}: must map chip types to chip maps")
    return {str(k): ChipMap.from_mapping(v, f"{p}: {k}") for k, v in data.items()}


@dataclass(frozen=True)
class Similarity:
    """``image = scale * R(phi) @ chip + (tx, ty)`` in image pixels (x = column, y = row).

    ``image_angle`` (degrees) is today's manifest angle: the image rotated by ``-image_angle``
    (:func:`~rigwatch.pipeline.analysis.images.rotate_image`) shows the chip upright;
    ``image_angle = -phi``.
    """

    scale: float
    phi: float
    tx: float
    ty: float

    @property
    def image_angle(self) -> float:
        return -math.degrees(self.phi)

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Map chip points ``(n, 2)`` to image pixels ``(n, 2)``."""
        z = points[:, 0] + 1j * points[:, 1]
        w = self.scale * np.exp(1j * self.phi) * z + complex(self.tx, self.ty)
        return np.column_stack([w.real, w.imag])


def fit_similarity(chip: np.ndarray, image: np.ndarray) -> Similarity:
    """Least-squares similarity transform from ``chip`` ``(n, 2)`` to ``image`` ``(n, 2)``
    points (closed form, see the module docstring).

    Raises:
        CalibrationError: fewer than two points, or the points coincide (no scale).
    """
    if len(chip) < 2:
        raise CalibrationError(f"at least two label positions are needed, got {len(chip)}")
    z = chip[:, 0] + 1j * chip[:, 1]
    w = image[:, 0] + 1j * image[:, 1]
    zc, wc = z - z.mean(), w - w.mean()
    denom = float(np.sum(np.abs(zc) ** 2))
    if denom == 0.0:
        raise CalibrationError("the labels used lie at one point of the chip map")
    a = complex(np.sum(wc * np.conj(zc)) / denom)
    if abs(a) == 0.0:
        raise CalibrationError("the given label positions coincide: no scale can be found")
    b = complex(w.mean() - a * z.mean())
    return Similarity(abs(a), math.atan2(a.imag, a.real), b.real, b.imag)


@dataclass(frozen=True)
class Match:
    """A label located by template matching: position (pixels) and correlation peak."""

    label: str
    x: float
    y: float
    correlation: float


def _parabola_peak(minus: float, centre: float, plus: float) -> float:
    """Offset (in ``[-0.5, 0.5]``) of the vertex of the parabola through three samples."""
    denom = minus - 2.0 * centre + plus
    if denom >= 0.0:
        return 0.0
    return float(np.clip(0.5 * (minus - plus) / denom, -0.5, 0.5))


def match_label(
    image: np.ndarray, template: np.ndarray, label: str, x: float, y: float, radius: int
) -> Match | None:
    """Find ``template`` (its centre) near ``(x, y)`` within ``radius`` pixels.

    Returns:
        The sub-pixel position of the best normalised cross-correlation and its value, or
        ``None`` when no placement of the template around ``(x, y)`` fits in the image (the
        window is clipped to the image otherwise).
    """
    th, tw = template.shape
    cy, cx = (th - 1) / 2.0, (tw - 1) / 2.0  # the template's centre, in its own pixels
    # top-left placements of the template whose centres lie within the radius, in the image
    r0 = max(round(y - cy) - radius, 0)
    c0 = max(round(x - cx) - radius, 0)
    r1 = min(round(y - cy) + radius, image.shape[0] - th) + th
    c1 = min(round(x - cx) + radius, image.shape[1] - tw) + tw
    if r1 - r0 < th or c1 - c0 < tw:
        return None
    window = image[r0:r1, c0:c1].astype(np.float64)
    ncc = match_template(window, template)  # (2 radius + 1) squared, top-left placements
    iy, ix = np.unravel_index(int(np.argmax(ncc)), ncc.shape)
    peak = float(ncc[iy, ix])
    dy = dx = 0.0
    if 0 < iy < ncc.shape[0] - 1:
        dy = _parabola_peak(ncc[iy - 1, ix], peak, ncc[iy + 1, ix])
    if 0 < ix < ncc.shape[1] - 1:
        dx = _parabola_peak(ncc[iy, ix - 1], peak, ncc[iy, ix + 1])
    return Match(label, c0 + ix + dx + cx, r0 + iy + dy + cy, peak)


@dataclass(frozen=True)
class CalibrationResult:
    """What calibration found.

    Attributes:
        manifest: the ROI manifest (upright frame, ``image_angle`` in degrees).
        transform: chip units to image pixels.
        matches: the located labels used for the final fit.
        rms_residual_px: RMS distance of those labels from the fitted transform (pixels).
    """

    manifest: RoiManifest
    transform: Similarity
    matches: tuple[Match, ...]
    rms_residual_px: float


def _refit(chip_map: ChipMap, matches: list[Match]) -> tuple[Similarity, np.ndarray]:
    chip = np.array([chip_map.labels[m.label] for m in matches])
    img = np.array([[m.x, m.y] for m in matches])
    sim = fit_similarity(chip, img)
    residual = np.hypot(*(sim.apply(chip) - img).T)
    return sim, residual


def rois_for(chip_map: ChipMap, transform: Similarity, shape: tuple[int, int]) -> RoiManifest:
    """The ROI manifest of ``chip_map``'s gratings under ``transform`` in an image of ``shape``
    (rows, cols): each box in the upright frame, split into two halves side by side (width
    ``round(scale * w / 2)``, height ``round(scale * h)``), the second one flipped. Gratings
    not wholly inside the image are left out."""
    angle = transform.image_angle
    origin = rotate_points(transform.apply(np.zeros((1, 2))), -angle, shape)[0]
    s = transform.scale
    rois: list[Roi] = []
    for label, (bx, by, bw, bh) in chip_map.boxes.items():
        h, w = round(s * bh), round(s * bw / 2.0)
        row, col = round(origin[1] + s * by), round(origin[0] + s * bx)
        if h < 1 or w < 3:
            raise CalibrationError(f"grating {label} maps to {h} x {w} px: scale {s:.3g} too small")
        if row < 0 or col < 0 or row + h > shape[0] or col + 2 * w > shape[1]:
            log.info("grating %s lies outside the image; left out", label)
            continue
        rois.append(Roi(f"ROI_{label}_1", label, False, row, col, h, w))
        rois.append(Roi(f"ROI_{label}_2", label, True, row, col + w, h, w))
    if not rois:
        raise CalibrationError("no grating of the chip map lies inside the image")
    return RoiManifest(tuple(rois), angle)


def locate_gratings(
    image: np.ndarray,
    features: FeatureLocations,
    chip_map: ChipMap,
    template: np.ndarray,
    *,
    min_correlation: float = MIN_CORRELATION,
    search_radius: int = SEARCH_RADIUS_PX,
    use_all_labels: bool = True,
) -> CalibrationResult:
    """Locate the gratings of ``chip_map`` in ``image`` (see the module docstring).

    Args:
        image: 2-D camera image (any numeric dtype).
        features: the user-given label positions (at least two).
        chip_map: the design of ``features.chip_type``.
        template: 2-D image of one label mark as the camera sees it (centred on the mark, at
            the camera's magnification: it is not rescaled).
        min_correlation: least normalised cross-correlation peak that counts as found.
        search_radius: pixels around each user-given position searched.
        use_all_labels: also locate every other label of the map and fit to all of them.

    Raises:
        CalibrationError: a label not in the chip map, a user-given label whose template is not
            found (correlation below ``min_correlation`` or window outside the image), a
            degenerate geometry, no grating inside the image.
    """
    img = check_image(image)
    tpl = np.asarray(template, dtype=np.float64)
    if tpl.ndim != 2 or min(tpl.shape) < 3 or float(tpl.std()) == 0.0:
        raise CalibrationError(
            f"the label template must be a 2-D, non-constant image, got {tpl.shape}"
        )
    unknown = [f.label for f in features.features if f.label not in chip_map.labels]
    if unknown:
        raise CalibrationError(
            f"labels not in the chip map of {features.chip_type!r}: {', '.join(unknown)}"
        )
    shape = (img.shape[0], img.shape[1])
    # 1. the given positions, as the user clicked them, must fix a transform
    given = [Match(f.label, f.x, f.y, math.nan) for f in features.features]
    transform, _ = _refit(chip_map, given)
    # 2. refine each given label by template matching around its position
    matches: list[Match] = []
    for f in features.features:
        m = match_label(img, tpl, f.label, f.x, f.y, search_radius)
        if m is None:
            raise CalibrationError(
                f"label {f.label} at ({f.x:.1f}, {f.y:.1f}) lies outside the image or too close to "
                f"its edge for the template"
            )
        if not m.correlation >= min_correlation:
            raise CalibrationError(
                f"label {f.label}: template not found near ({f.x:.1f}, {f.y:.1f}): best "
                f"normalised correlation {m.correlation:.2f} < {min_correlation}"
            )
        matches.append(m)
    transform, _ = _refit(chip_map, matches)
    # 3. every other label predicted by the refined transform
    if use_all_labels:
        given_labels = {m.label for m in matches}
        names = [n for n in chip_map.labels if n not in given_labels]
        predicted = transform.apply(np.array([chip_map.labels[n] for n in names]).reshape(-1, 2))
        extra = []
        for name, (px, py) in zip(names, predicted, strict=True):
            m = match_label(img, tpl, name, float(px), float(py), REFINE_RADIUS_PX)
            if m is not None and m.correlation >= min_correlation:
                extra.append(m)
        if extra:
            # labels that disagree with the fit of all of them (false matches) are left out
            _candidate, residual = _refit(chip_map, matches + extra)
            keep = [
                m for m, r in zip(matches + extra, residual, strict=True) if r <= MAX_RESIDUAL_PX
            ]
            if len(keep) >= 2:
                matches = keep
    transform, residual = _refit(chip_map, matches)
    rms = float(np.sqrt(np.mean(residual**2)))
    log.info(
        "located %d labels: angle %.4f deg, scale %.5f, RMS residual %.2f px",
        len(matches),
        transform.image_angle,
        transform.scale,
        rms,
    )
    return CalibrationResult(rois_for(chip_map, transform, shape), transform, tuple(matches), rms)


def draw_rois(image: np.ndarray, result: CalibrationResult, path: str | Path) -> None:
    """Draw the located ROIs (mapped back into the camera image; unflipped halves cyan,
    flipped ones orange) and the located labels (red crosses) over ``image`` and save a PNG of
    the image's size, at most 2048 pixels wide (matplotlib, Agg; written under a temporary
    name, then renamed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Polygon

    img = normalise_uint8(check_image(image))
    shape = (img.shape[0], img.shape[1])
    angle = result.manifest.image_angle
    dpi = 100.0  # one figure pixel per image pixel, up to 2048 pixels wide
    zoom = min(1.0, 2048.0 / shape[1])
    fig = Figure(figsize=(shape[1] * zoom / dpi, shape[0] * zoom / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.imshow(img, cmap="gray", interpolation="nearest")
    for roi in result.manifest.rois:
        corners = np.array(
            [
                [roi.col - 0.5, roi.row - 0.5],
                [roi.col + roi.width - 0.5, roi.row - 0.5],
                [roi.col + roi.width - 0.5, roi.row + roi.height - 0.5],
                [roi.col - 0.5, roi.row + roi.height - 0.5],
            ]
        )
        colour = "tab:orange" if roi.flip else "tab:cyan"
        ax.add_patch(
            Polygon(
                rotate_points(corners, angle, shape), closed=True, fill=False, lw=0.4, ec=colour
            )
        )
    xy = np.array([[m.x, m.y] for m in result.matches])
    ax.plot(xy[:, 0], xy[:, 1], "+", color="tab:red", ms=4, mew=0.6)
    ax.set_xlim(-0.5, shape[1] - 0.5)
    ax.set_ylim(shape[0] - 0.5, -0.5)
    ax.set_axis_off()
    out = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".png", dir=out.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, format="png")
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def calibrate(
    image: np.ndarray,
    features_path: str | Path,
    chip_maps: Mapping[str, ChipMap],
    template: np.ndarray,
    out_dir: str | Path,
    **options: Any,
) -> CalibrationResult:
    """Calibrate from files: read ``Feature_locations.toml``, pick the chip map of its chip
    type, :func:`locate_gratings`, write ``ROI_manifest.json`` (atomically) and
    ``located_rois.png`` into ``out_dir``.

    Raises:
        CalibrationError: see :func:`load_feature_locations` and :func:`locate_gratings`; an
            unknown chip type.
    """
    features = load_feature_locations(features_path)
    chip_map = chip_maps.get(features.chip_type)
    if chip_map is None:
        raise CalibrationError(
            f"unknown chip_type {features.chip_type!r}; known: {', '.join(sorted(chip_maps))}"
        )
    result = locate_gratings(image, features, chip_map, template, **options)
    out = Path(out_dir)
    write_roi_manifest(result.manifest, out / "ROI_manifest.json")
    draw_rois(image, result, out / "located_rois.png")
    return result

"""Grating resonance analysis of one camera image (today's analysis, vectorised).

Steps (as today's pipeline, ``docs`` of the seed system): brightness and contrast of the raw
image; min-max normalisation to ``uint8``; rotation by ``-image_angle``; each ROI of the ROI
manifest cut out and mirrored left-right when ``flip``; optionally its rows averaged into
``number_of_subROIs`` groups of consecutive rows (``numpy.array_split`` sizes); every row is an
intensity profile along x; rows whose standard deviation is below 0.1 are skipped; the
resonance position of each row by one method (:data:`OUTPUTS`); per output, statistics across
the rows of the ROI (:data:`STATISTICS`).

Statistics of an output's values ``v`` (rows in order, skipped rows left out): Mean, STD
(population, ddof 0), LQ/Median/UQ (25/50/75th percentiles, linear interpolation), Max, Min
and Smoothness ``= std(diff(v)) / (max(v) - min(v))`` (``0`` when all values are equal,
``None`` with fewer than two values). All statistics are ``None`` for an ROI without a row.

Vectorised: only the ROIs' pixels are normalised and rotated (same values as rotating the
whole image, :func:`~rigwatch.pipeline.analysis.images.rotated_blocks`), the rows of all ROIs of one
width are fitted together (:mod:`.linefits`), and the statistics are computed for all ROIs at
once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pydantic

from rigwatch.errors import AnalysisError, ImageError
from rigwatch.pipeline.analysis import linefits
from rigwatch.pipeline.analysis.base import Source
from rigwatch.pipeline.analysis.images import (
    check_image,
    normaliser,
    read_image,
    rotated_blocks,
    summarise,
)
from rigwatch.pipeline.analysis.roi_manifest import Roi, RoiManifest, load_roi_manifest

log = logging.getLogger(__name__)

Method = Literal["max_intensity", "centre", "gaussian", "fano"]
METHODS: tuple[Method, ...] = ("max_intensity", "centre", "gaussian", "fano")
OUTPUTS: dict[str, tuple[str, ...]] = {
    "max_intensity": ("max_intensity",),
    "centre": ("centre",),
    "gaussian": ("amplitude", "mu", "sigma", "offset", "error"),
    "fano": ("amplitude", "asymmetry", "resonance", "gamma", "offset", "error"),
}
"""Outputs of each method, in pixels for positions and widths, intensity (0..255) for
amplitudes, offsets and errors (RMS residual of the fit)."""
POSITION_OUTPUT = {
    "max_intensity": "max_intensity",
    "centre": "centre",
    "gaussian": "mu",
    "fano": "resonance",
}
"""The output of each method that is the resonance position (pixels along the ROI row)."""
STATISTICS = ("Mean", "STD", "LQ", "Median", "UQ", "Max", "Min", "Smoothness")
MIN_ROW_STD = 0.1
"""Rows whose standard deviation (uint8 units) is below this are skipped."""


def row_values(method: str, rows: np.ndarray) -> np.ndarray:
    """``(n_rows, n_outputs)`` values of ``method`` for ``rows`` ``(n_rows, width)``; rows with
    a standard deviation below :data:`MIN_ROW_STD` are NaN.

    Raises:
        AnalysisError: unknown method.
    """
    if method not in OUTPUTS:
        raise AnalysisError(f"unknown grating method {method!r}; known: {', '.join(METHODS)}")
    out = np.full((rows.shape[0], len(OUTPUTS[method])), np.nan)
    mean, std = linefits.mean_std(rows)
    keep = np.flatnonzero(std >= MIN_ROW_STD)
    if keep.size == 0:
        return out
    sel = rows if keep.size == rows.shape[0] else rows[keep]
    if method == "max_intensity":
        out[keep, 0] = linefits.max_intensity(sel)
    elif method == "centre":
        out[keep, 0] = linefits.centroid(sel, (mean[keep], std[keep]))
    elif method == "gaussian":
        out[keep] = linefits.fit_gaussian(sel)
    else:
        out[keep] = linefits.fit_fano(sel)
    return out


def _masked_mean_std(
    values: np.ndarray, valid: np.ndarray, count: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population standard deviation of the valid entries of each row of ``values``
    (rows with ``count > 0``)."""
    zeroed = np.where(valid, values, 0.0)
    mean = zeroed.sum(axis=1) / count
    dev = np.where(valid, values - mean[:, None], 0.0)
    return mean, np.sqrt((dev * dev).sum(axis=1) / count)


def _percentile_sorted(ordered: np.ndarray, count: np.ndarray, q: float) -> np.ndarray:
    """``numpy.percentile(v, q)`` (linear method) of each row whose ``count`` valid values lead
    ``ordered`` in ascending order; same interpolation formula as NumPy's."""
    pos = q / 100.0 * (count - 1)
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, count - 1)
    t = pos - lo
    a = np.take_along_axis(ordered, lo[:, None], axis=1)[:, 0]
    b = np.take_along_axis(ordered, hi[:, None], axis=1)[:, 0]
    diff = b - a
    return np.where(t >= 0.5, b - diff * (1.0 - t), a + diff * t)


def statistics(values: np.ndarray) -> dict[str, np.ndarray]:
    """Statistics across rows: ``values`` ``(n_series, n_rows)`` with NaN for skipped rows.

    Computed for all series at once (one sort, masked sums), with NumPy's definitions.

    Returns:
        ``{statistic: (n_series,) float64}``; NaN where undefined (see the module docstring).
    """
    out: dict[str, np.ndarray] = {name: np.full(values.shape[0], np.nan) for name in STATISTICS}
    valid_all = ~np.isnan(values)
    has = valid_all.any(axis=1)
    if not has.any():
        return out
    v = values[has]
    valid = valid_all[has]
    count = valid.sum(axis=1)
    out["Mean"][has], out["STD"][has] = _masked_mean_std(v, valid, count)
    ordered = np.sort(v, axis=1)  # NaN sort last
    for name, q in (("LQ", 25.0), ("Median", 50.0), ("UQ", 75.0)):
        out[name][has] = _percentile_sorted(ordered, count, q)
    vmin = ordered[:, 0]
    vmax = np.take_along_axis(ordered, (count - 1)[:, None], axis=1)[:, 0]
    out["Max"][has], out["Min"][has] = vmax, vmin
    # differences of consecutive valid values: pack the valid values to the front in order
    order = np.argsort(~valid, axis=1, kind="stable")
    packed = np.take_along_axis(v, order, axis=1)
    smooth = np.full(v.shape[0], np.nan)
    two = count >= 2
    if two.any() and v.shape[1] > 1:
        diffs = np.diff(packed[two], axis=1)
        dvalid = np.arange(diffs.shape[1])[None, :] < (count[two] - 1)[:, None]
        _mean, diff_std = _masked_mean_std(diffs, dvalid, count[two] - 1)
        spread = vmax[two] - vmin[two]
        with np.errstate(invalid="ignore", divide="ignore"):
            smooth[two] = np.where(spread > 0, diff_std / np.where(spread > 0, spread, 1.0), 0.0)
    out["Smoothness"][has] = smooth
    return out


def subroi_rows(blocks: np.ndarray, n_sub: int | None) -> np.ndarray:
    """Average the rows of ``blocks`` ``(k, h, w)`` into ``n_sub`` groups of consecutive rows
    (sizes as ``numpy.array_split``); ``None`` or ``n_sub >= h`` keeps every row."""
    h = blocks.shape[1]
    if n_sub is None or n_sub >= h:
        return blocks.astype(np.float64)
    sizes = np.array([len(a) for a in np.array_split(np.arange(h), n_sub)])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    sums = np.add.reduceat(blocks.astype(np.float64), starts, axis=1)
    return sums / sizes[None, :, None]


def cut_rois(
    image: np.ndarray,
    rois: list[Roi],
    angle_deg: float = 0.0,
    prepare: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """The ROIs (all of one size) of ``rotate_image(prepare(image), angle_deg)`` as
    ``(k, h, w)``, mirrored left-right where ``flip``; only the ROIs' pixels are computed
    (:func:`~rigwatch.pipeline.analysis.images.rotated_blocks`)."""
    boxes = np.array([[roi.row, roi.col, roi.height, roi.width] for roi in rois])
    blocks = np.stack(rotated_blocks(image, angle_deg, boxes, prepare))
    flips = np.array([roi.flip for roi in rois])
    blocks[flips] = blocks[flips, :, ::-1]
    return blocks


@dataclass(frozen=True)
class RoiResult:
    """One ROI's statistics: ``{output: {statistic: value or None}}``."""

    name: str
    label: str
    method: str
    outputs: dict[str, dict[str, float | None]]

    def position(self, statistic: str = "Median") -> float | None:
        """The resonance position's ``statistic`` (pixels)."""
        return self.outputs[POSITION_OUTPUT[self.method]][statistic]


@dataclass(frozen=True)
class GratingResult:
    """Brightness and contrast of the raw image, and the ROIs' results in manifest order."""

    brightness: float
    contrast: float
    rois: tuple[RoiResult, ...]

    def to_record(self) -> dict[str, Any]:
        """``{"image_analysis": [...]}`` in today's results-line layout: first
        ``{brightness, contrast}``, then per ROI ``{"ROI-label", "Analysis-method",
        <output>: {Mean, STD, LQ, Median, UQ, Max, Min, Smoothness}}``."""
        items: list[dict[str, Any]] = [{"brightness": self.brightness, "contrast": self.contrast}]
        for roi in self.rois:
            item: dict[str, Any] = {"ROI-label": roi.name, "Analysis-method": roi.method}
            item.update(roi.outputs)
            items.append(item)
        return {"image_analysis": items}


def analyse_image(
    image: np.ndarray,
    manifest: RoiManifest,
    method: str = "gaussian",
    number_of_subrois: int | None = None,
) -> GratingResult:
    """Run today's grating analysis on ``image`` (2-D, any unsigned/float dtype).

    Raises:
        ImageError: the image is not 2-D numeric, or an ROI lies outside it (wrong size for the
            manifest).
        AnalysisError: unknown method, ``number_of_subrois < 1``.
    """
    if method not in OUTPUTS:
        raise AnalysisError(f"unknown grating method {method!r}; known: {', '.join(METHODS)}")
    if number_of_subrois is not None and number_of_subrois < 1:
        raise AnalysisError(f"number_of_subROIs must be >= 1, got {number_of_subrois}")
    img = check_image(image)
    misfit = manifest.check_fits((img.shape[0], img.shape[1]))
    if misfit is not None:
        raise ImageError(f"image of the wrong size for the ROI manifest: {misfit}")
    summary = summarise(img)
    normalise = normaliser(img, summary)
    angle = -manifest.image_angle
    rois = list(manifest.rois)
    n_out = len(OUTPUTS[method])
    # rows of each ROI, grouped by width (one fit batch per width)
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, roi in enumerate(rois):
        by_size.setdefault((roi.height, roi.width), []).append(i)
    by_width: dict[int, list[tuple[list[int], np.ndarray]]] = {}
    for (_h, w), idx in by_size.items():
        blocks = cut_rois(img, [rois[i] for i in idx], angle, normalise)
        rows = subroi_rows(blocks, number_of_subrois)
        by_width.setdefault(w, []).append((idx, rows))
    max_rows = max(rows.shape[1] for groups in by_width.values() for _idx, rows in groups)
    values = np.full((len(rois), n_out, max_rows), np.nan)
    for groups in by_width.values():
        stacked = np.concatenate([rows.reshape(-1, rows.shape[2]) for _i, rows in groups])
        fitted = row_values(method, stacked)
        at = 0
        for idx, rows in groups:
            k, h = rows.shape[0], rows.shape[1]
            part = fitted[at : at + k * h].reshape(k, h, n_out)
            values[np.array(idx), :, :h] = part.transpose(0, 2, 1)
            at += k * h
    stats = statistics(values.reshape(len(rois) * n_out, max_rows))
    # plain floats per statistic, NaN as None
    table = {s: [None if v != v else v for v in stats[s].tolist()] for s in STATISTICS}
    results = []
    for i, roi in enumerate(rois):
        outputs = {
            out: {s: table[s][i * n_out + j] for s in STATISTICS}
            for j, out in enumerate(OUTPUTS[method])
        }
        results.append(RoiResult(roi.name, roi.label, method, outputs))
    return GratingResult(summary.brightness, summary.contrast, tuple(results))


class GratingConfig(pydantic.BaseModel):
    """Config of the grating plugin (today's ``Data_Analysis`` section and the ROI manifest).

    Attributes:
        roi_manifest: path of ``ROI_manifest.json``.
        method: one of :data:`METHODS`.
        number_of_subROIs: rows are averaged into this many groups; ``None``: every row.
    """

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    roi_manifest: Path
    method: Method = "gaussian"
    number_of_subrois: int | None = pydantic.Field(default=None, ge=1, alias="number_of_subROIs")


class GratingAnalysis:
    """The ``grating`` plugin: :func:`analyse_image` on an image file or array with the ROI
    manifest of its config (read once, when the plugin is built)."""

    name = "grating"

    def __init__(self, config: GratingConfig, manifest: RoiManifest | None = None) -> None:
        self.config = config
        self.manifest = manifest if manifest is not None else load_roi_manifest(config.roi_manifest)

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> GratingAnalysis:
        """Build from a config mapping (see :class:`GratingConfig`).

        Raises:
            AnalysisError: invalid config; RoiManifestError: unreadable or malformed manifest.
        """
        try:
            cfg = GratingConfig.model_validate(dict(config))
        except pydantic.ValidationError as exc:
            raise AnalysisError(f"invalid grating config: {exc}") from exc
        return cls(cfg)

    def analyse(self, source: Source) -> GratingResult:
        """Analyse an image array or file (16-bit or 8-bit grayscale PNG...).

        Raises:
            ImageError: corrupt, truncated or unreadable file; wrong size for the manifest.
        """
        image = source if isinstance(source, np.ndarray) else read_image(Path(source))
        return analyse_image(
            image, self.manifest, self.config.method, self.config.number_of_subrois
        )

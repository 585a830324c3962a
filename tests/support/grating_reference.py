"""A straightforward per-row implementation of today's grating analysis.

It follows the steps of the seed system one ROI and one row at a time, with
``scipy.optimize.curve_fit`` for the fits; the tests and ``bench/grating.py`` check
``rigwatch.pipeline.analysis.grating`` against it (same starting points, same definitions).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.optimize import curve_fit

OUTPUTS = {
    "max_intensity": ("max_intensity",),
    "centre": ("centre",),
    "gaussian": ("amplitude", "mu", "sigma", "offset", "error"),
    "fano": ("amplitude", "asymmetry", "resonance", "gamma", "offset", "error"),
}


def gaussian(x: np.ndarray, a: float, mu: float, s: float, off: float) -> np.ndarray:
    return a * np.exp(-((x - mu) ** 2) / (2 * s**2)) + off


def fano(x: np.ndarray, amp: float, q: float, res: float, g: float, off: float) -> np.ndarray:
    return amp * ((q * g + (x - res)) ** 2 / (g**2 + (x - res) ** 2)) + off


def _half_max_count(row: np.ndarray, base: float) -> int:
    return int(np.sum(row > (row.max() + base) / 2))


def gaussian_p0(row: np.ndarray) -> list[float]:
    lo, hi = float(row.min()), float(row.max())
    i = int(np.argmax(row))
    mu, sigma = float(i), max(_half_max_count(row, lo) / 2.3548200450309493, 0.5)
    if 0 < i < len(row) - 1:
        with np.errstate(divide="ignore", invalid="ignore"):
            lm, l0, lp = np.log(row[i - 1 : i + 2] - lo)
            c = lm - 2 * l0 + lp
            delta = (lm - lp) / (2 * c)
            s = np.sqrt(-1 / c)
        if (
            np.isfinite(delta)
            and np.isfinite(s)
            and c < 0
            and abs(delta) <= 1
            and 0.5 <= s <= len(row)
        ):
            mu, sigma = i + float(delta), float(s)
    return [hi - lo, mu, sigma, lo]


def fano_p0(row: np.ndarray) -> list[float]:
    base, top = float(np.median(row)), float(row.max())
    peak = int(np.argmax(row))
    q = 3.0 if int(np.argmin(row)) < peak else -3.0
    amp = (top - base) / q**2
    g = max(_half_max_count(row, base) / 2, 0.5)
    return [amp, q, peak - g / q, g, base - amp]


def row_result(method: str, row: np.ndarray) -> list[float] | None:
    x = np.arange(len(row), dtype=float)
    if method == "max_intensity":
        return [float(np.argmax(row))]
    if method == "centre":
        above = row > row.mean() + 3 * row.std()
        if not above.any():
            return None
        return [float(np.sum(x[above] * row[above]) / np.sum(row[above]))]
    model, p0 = (gaussian, gaussian_p0(row)) if method == "gaussian" else (fano, fano_p0(row))
    try:
        p, _cov = curve_fit(model, x, row, p0=p0, maxfev=2000)
    except RuntimeError:
        return None
    err = float(np.sqrt(np.mean((model(x, *p) - row) ** 2)))
    p = [float(v) for v in p]
    if method == "gaussian":
        p[2] = abs(p[2])
    elif p[3] < 0:
        p[1], p[3] = -p[1], -p[3]
    return [*p, err]


def stats(values: list[float]) -> dict[str, float | None]:
    names = ("Mean", "STD", "LQ", "Median", "UQ", "Max", "Min", "Smoothness")
    if not values:
        return dict.fromkeys(names)
    v = np.array(values)
    spread = float(v.max() - v.min())
    if len(v) < 2:
        smooth: float | None = None
    elif spread == 0:
        smooth = 0.0
    else:
        smooth = float(np.std(np.diff(v)) / spread)
    return {
        "Mean": float(np.mean(v)),
        "STD": float(np.std(v)),
        "LQ": float(np.percentile(v, 25)),
        "Median": float(np.median(v)),
        "UQ": float(np.percentile(v, 75)),
        "Max": float(v.max()),
        "Min": float(v.min()),
        "Smoothness": smooth,
    }


def analyse_per_row(
    image: np.ndarray, manifest: dict[str, Any], method: str, n_sub: int | None = None
) -> list[dict[str, Any]]:
    """Today's ``image_analysis`` list for one image, computed row by row."""
    out: list[dict[str, Any]] = [
        {
            "brightness": float(np.mean(image)),
            "contrast": float(np.percentile(image, 95) - np.percentile(image, 5)),
        }
    ]
    lo, hi = float(image.min()), float(image.max())
    norm = np.clip(np.rint((image.astype(float) - lo) / (hi - lo) * 255), 0, 255).astype(np.uint8)
    angle = manifest.get("image_angle", 0)
    if angle:
        norm = ndimage.rotate(norm, -angle, reshape=False, order=1, mode="constant", cval=0)
    for key, entry in manifest.items():
        if key == "image_angle":
            continue
        (r, c), (h, w) = entry["coords"], entry["size"]
        roi = norm[r : r + h, c : c + w].astype(float)
        if entry["flip"]:
            roi = np.fliplr(roi)
        if n_sub is not None and n_sub < h:
            roi = np.array([chunk.mean(axis=0) for chunk in np.array_split(roi, n_sub)])
        columns: dict[str, list[float]] = {name: [] for name in OUTPUTS[method]}
        for row in roi:
            if row.std() < 0.1:
                continue
            res = row_result(method, row)
            if res is None or not all(math.isfinite(v) for v in res):
                continue
            for name, value in zip(OUTPUTS[method], res, strict=True):
                columns[name].append(value)
        item: dict[str, Any] = {"ROI-label": key, "Analysis-method": method}
        item.update({name: stats(vals) for name, vals in columns.items()})
        out.append(item)
    return out

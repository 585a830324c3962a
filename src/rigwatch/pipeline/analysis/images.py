"""Grating images: reading, brightness and contrast, 8-bit normalisation, rotation.

These steps follow today's analysis: brightness is the mean and contrast ``q95 - q05`` of the
raw image; the image is then min-max normalised to ``uint8`` and rotated by ``-image_angle``
about its centre (``scipy.ndimage.rotate``, bilinear, same shape, zero outside).
:func:`rotated_blocks` gives the same pixels for a set of boxes without normalising and rotating
the whole image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from rigwatch.errors import ImageError

CONTRAST_PERCENTILES = (5.0, 95.0)


def read_image(path: str | Path) -> np.ndarray:
    """Read a grayscale image (16-bit or 8-bit PNG, TIFF...) with Pillow.

    Returns:
        2-D ``uint16`` or ``uint8`` array ``(rows, cols)``.

    Raises:
        ImageError: missing, unreadable, truncated or corrupt file; colour or other modes.
    """
    p = Path(path)
    try:
        with Image.open(p) as im:
            im.load()
            mode = im.mode
            arr = np.asarray(im)
    except FileNotFoundError as exc:
        raise ImageError(f"{p}: image file does not exist") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{p}: corrupt, truncated or unreadable image: {exc}") from exc
    if arr.ndim != 2:
        raise ImageError(f"{p}: expected a grayscale image, got mode {mode} shape {arr.shape}")
    if arr.dtype.kind not in "ui":
        raise ImageError(f"{p}: expected integer pixels, got mode {mode} ({arr.dtype})")
    if arr.dtype.kind == "i":  # Pillow's "I" mode for 16-bit files written as I;16
        if arr.min() < 0 or arr.max() > 65535:
            raise ImageError(f"{p}: pixel values outside 0..65535")
        arr = arr.astype(np.uint16)
    return np.ascontiguousarray(arr)


def check_image(image: np.ndarray) -> np.ndarray:
    """``image`` as a 2-D array of unsigned integers or finite floats, at least 3 x 3.

    Raises:
        ImageError: other shapes or dtypes, non-finite values.
    """
    arr = np.asarray(image)
    if arr.ndim != 2 or min(arr.shape) < 3:
        raise ImageError(f"expected a 2-D image of at least 3 x 3 pixels, got shape {arr.shape}")
    if arr.dtype.kind not in "uif":
        raise ImageError(f"expected numeric pixels, got dtype {arr.dtype}")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ImageError("the image holds NaN or infinite pixels")
    return arr


def _percentiles_from_counts(counts: np.ndarray, q: tuple[float, ...]) -> list[float]:
    """``np.percentile(image, q)`` (linear method) from the histogram ``counts`` of an image of
    unsigned integers (``counts[v]`` pixels of value ``v``)."""
    cum = np.cumsum(counts)
    n = int(cum[-1])
    out = []
    for pct in q:
        pos = pct / 100.0 * (n - 1)
        lo = int(np.floor(pos))
        hi = min(lo + 1, n - 1)
        v_lo = int(np.searchsorted(cum, lo, side="right"))
        v_hi = int(np.searchsorted(cum, hi, side="right"))
        out.append(float(v_lo + (v_hi - v_lo) * (pos - lo)))
    return out


@dataclass(frozen=True)
class ImageSummary:
    """Brightness (mean), contrast (95th minus 5th percentile, linear interpolation as
    ``numpy.percentile``), minimum and maximum of a raw image, in its own units."""

    brightness: float
    contrast: float
    minimum: float
    maximum: float


def summarise(image: np.ndarray) -> ImageSummary:
    """:class:`ImageSummary` of ``image``; unsigned 8/16-bit images from one histogram (the
    mean from the exact integer sum, as ``numpy.mean`` whose float sums of such pixels are
    exact).

    Raises:
        ImageError: see :func:`check_image`.
    """
    arr = check_image(image)
    if arr.dtype.kind == "u" and arr.itemsize <= 2:
        counts = np.bincount(arr.ravel())
        present = np.flatnonzero(counts)
        total = int(counts @ np.arange(counts.size, dtype=np.int64))
        q05, q95 = _percentiles_from_counts(counts, CONTRAST_PERCENTILES)
        return ImageSummary(total / arr.size, q95 - q05, float(present[0]), float(present[-1]))
    q05, q95 = (float(v) for v in np.percentile(arr, CONTRAST_PERCENTILES))
    return ImageSummary(
        float(arr.mean(dtype=np.float64)), q95 - q05, float(arr.min()), float(arr.max())
    )


def brightness_contrast(image: np.ndarray) -> tuple[float, float]:
    """Brightness (mean pixel value) and contrast (95th minus 5th percentile, linear
    interpolation as ``numpy.percentile``) of the raw image, in its own units."""
    summary = summarise(image)
    return summary.brightness, summary.contrast


def normaliser(
    image: np.ndarray, summary: ImageSummary | None = None
) -> Callable[[np.ndarray], np.ndarray]:
    """The min-max normalisation of ``image`` to ``uint8`` as a pixel-wise function (to apply
    to the whole image or to parts of it): ``rint((v - min) / (max - min) * 255)`` with
    ``min``/``max`` of the whole image; a constant image maps to zeros. Unsigned 8/16-bit
    images go through a lookup table (same values). ``summary``: the image's
    :func:`summarise`, if known (its minimum and maximum are used)."""
    arr = check_image(image)
    if summary is not None:
        lo, hi = summary.minimum, summary.maximum
    else:
        lo, hi = arr.min(), arr.max()
    if hi == lo:
        return lambda part: np.zeros(part.shape, np.uint8)
    if arr.dtype.kind == "u" and arr.itemsize <= 2:
        values = np.arange(int(hi) + 1, dtype=np.float64)
        lut = np.clip(np.rint((values - float(lo)) / (float(hi) - float(lo)) * 255.0), 0, 255)
        table = lut.astype(np.uint8)
        return lambda part: table[part]
    flo, fhi = float(lo), float(hi)

    def scale(part: np.ndarray) -> np.ndarray:
        scaled = np.rint((part.astype(np.float64) - flo) / (fhi - flo) * 255.0)
        return np.clip(scaled, 0, 255).astype(np.uint8)

    return scale


def normalise_uint8(image: np.ndarray) -> np.ndarray:
    """Min-max normalisation of the whole image to ``uint8`` (see :func:`normaliser`)."""
    return normaliser(image)(image)


def rotate_image(image: np.ndarray, angle_deg: float) -> np.ndarray:
    """Rotate by ``angle_deg`` (counter-clockwise as displayed) about the centre, same shape,
    bilinear, zeros outside (``scipy.ndimage.rotate``); ``0`` returns the image unchanged."""
    if angle_deg == 0:
        return image
    from scipy import ndimage  # only for rotations: an unrotated image needs no SciPy

    return ndimage.rotate(image, angle_deg, reshape=False, order=1, mode="constant", cval=0)


def rotate_points(points_xy: np.ndarray, angle_deg: float, shape: tuple[int, int]) -> np.ndarray:
    """Where points ``(x=col, y=row)`` of an image of ``shape`` land after
    :func:`rotate_image` by ``angle_deg``.

    Returns:
        ``(n, 2)`` float64 ``(x, y)``.
    """
    pts = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    cy, cx = (shape[0] - 1) / 2.0, (shape[1] - 1) / 2.0
    a = np.deg2rad(angle_deg)
    dx, dy = pts[:, 0] - cx, pts[:, 1] - cy
    # counter-clockwise as displayed, with rows growing downwards
    x = cx + np.cos(a) * dx + np.sin(a) * dy
    y = cy - np.sin(a) * dx + np.cos(a) * dy
    return np.column_stack([x, y])


def _rotation(angle_deg: float, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Matrix and offset of ``scipy.ndimage.rotate(..., reshape=False)``: output pixel ``o``
    (row, col) samples the input at ``matrix @ o + offset``."""
    from scipy import special

    c, s = special.cosdg(angle_deg), special.sindg(angle_deg)
    matrix = np.array([[c, s], [-s, c]])
    centre = (np.asarray(shape, dtype=np.float64) - 1.0) / 2.0
    return matrix, centre - matrix @ centre


def _lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``a + (b - a) t`` as a new float64 array."""
    out = np.subtract(b, a, dtype=np.float64)
    out *= t
    out += a
    return out


def _round_like_ndimage(
    values: np.ndarray, dtype: np.dtype[Any], convex: bool = False
) -> np.ndarray:
    """Cast interpolated values as ``scipy.ndimage`` does for its output dtype: unsigned
    integers ``floor(v + 0.5)`` for ``v > 0`` else 0, clipped to the dtype's maximum; signed
    integers rounded half away from zero; floats unchanged. ``convex``: the values are convex
    combinations of values of ``dtype`` (so within its range; ``values`` is overwritten)."""
    if convex and dtype.kind == "u":
        values += 0.5
        return values.astype(dtype)  # truncation is floor for these non-negative values
    if dtype.kind == "u":
        info = np.iinfo(dtype)
        return np.minimum(np.floor(np.maximum(values, 0.0) + 0.5), info.max).astype(dtype)
    if dtype.kind == "i":
        info = np.iinfo(dtype)
        rounded = np.where(values > 0, np.floor(values + 0.5), np.ceil(values - 0.5))
        return np.clip(rounded, info.min, info.max).astype(dtype)
    return values.astype(dtype)


BLOCK_PIXELS = 1 << 17
"""Pixels resampled per batch by :func:`rotated_blocks` (keeps temporaries in cache)."""


def rotated_blocks(
    image: np.ndarray,
    angle_deg: float,
    boxes: np.ndarray,
    prepare: Callable[[np.ndarray], np.ndarray] | None = None,
) -> list[np.ndarray]:
    """Blocks of ``rotate_image(prepare(image), angle_deg)`` computing only their pixels.

    Every output pixel ``o = (row, col)`` of a box samples ``prepare(image)`` at
    ``matrix @ o + offset`` (the matrix and offset of ``scipy.ndimage.rotate``) by bilinear
    interpolation, rounded to the output dtype as ``scipy.ndimage`` does, so the blocks equal
    those cut from the rotated whole image (the arithmetic differs from SciPy's only in the
    last bits of the double-precision values before rounding). Only the needed pixels are
    interpolated; boxes that sample within one pixel of the image border (where
    ``mode="constant"`` blends in zeros) go through ``scipy.ndimage.affine_transform`` on their
    source region.

    Args:
        image: 2-D array.
        angle_deg: as :func:`rotate_image`.
        boxes: ``(k, 4)`` integers ``row, col, height, width`` in the rotated image.
        prepare: pixel-wise function applied to the source pixels first (identity if None),
            e.g. the one from :func:`normaliser`.

    Returns:
        ``k`` arrays ``(height, width)`` of ``prepare``'s output dtype.
    """
    prep = prepare if prepare is not None else (lambda part: part)
    boxes = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
    shape = (image.shape[0], image.shape[1])
    if angle_deg == 0:
        return [prep(image[r : r + h, c : c + w]) for r, c, h, w in boxes]
    dtype = prep(image[:1, :1]).dtype
    matrix, offset = _rotation(angle_deg, shape)
    out: list[np.ndarray | None] = [None] * len(boxes)
    # source extent of every box: its corners mapped back
    r, c, h, w = boxes.T
    corner_r = np.stack([r, r, r + h - 1, r + h - 1], axis=1).astype(np.float64)
    corner_c = np.stack([c, c + w - 1, c, c + w - 1], axis=1).astype(np.float64)
    src_r = corner_r * matrix[0, 0] + corner_c * matrix[0, 1] + offset[0]
    src_c = corner_r * matrix[1, 0] + corner_c * matrix[1, 1] + offset[1]
    # both neighbours of every sample inside the image, with a margin for rounding
    eps = 1e-6
    inside = (
        (src_r.min(axis=1) >= eps)
        & (src_r.max(axis=1) <= shape[0] - 1 - eps)
        & (src_c.min(axis=1) >= eps)
        & (src_c.max(axis=1) <= shape[1] - 1 - eps)
    )
    groups: dict[tuple[int, int], list[int]] = {}
    for i in np.flatnonzero(inside):
        groups.setdefault((int(h[i]), int(w[i])), []).append(int(i))
    if groups:
        flat = np.ascontiguousarray(prep(image)).ravel()
        ncols = shape[1]
        index_type = np.int32 if flat.size < 2**31 else np.int64
        origin_y = r * matrix[0, 0] + c * matrix[0, 1] + offset[0]
        origin_x = r * matrix[1, 0] + c * matrix[1, 1] + offset[1]
    for (bh, bw), members in groups.items():
        ii, jj = np.meshgrid(np.arange(bh), np.arange(bw), indexing="ij")
        step_y = ii * matrix[0, 0] + jj * matrix[0, 1]
        step_x = ii * matrix[1, 0] + jj * matrix[1, 1]
        per_batch = max(1, BLOCK_PIXELS // (bh * bw))
        for at in range(0, len(members), per_batch):
            idx = np.array(members[at : at + per_batch])
            sy = origin_y[idx, None, None] + step_y[None]
            sx = origin_x[idx, None, None] + step_x[None]
            # floor (all >= 0 here); int32 holds every flat index of images below 2**31 px
            iy, ix = sy.astype(index_type), sx.astype(index_type)
            sy -= iy  # fractional parts
            sx -= ix
            base = iy
            base *= ncols
            base += ix
            top = _lerp(flat[base], flat[base + 1], sx)
            base += ncols
            bottom = _lerp(flat[base], flat[base + 1], sx)
            bottom -= top
            bottom *= sy
            top += bottom  # the bilinear value
            blocks = _round_like_ndimage(top, dtype, convex=True)
            for k, i in enumerate(idx):
                out[i] = blocks[k]
    for i in np.flatnonzero(~inside):
        out[i] = _rotated_block_ndimage(image, matrix, offset, boxes[i], prep, dtype)
    return [b for b in out if b is not None]


def _rotated_block_ndimage(
    image: np.ndarray,
    matrix: np.ndarray,
    offset: np.ndarray,
    box: np.ndarray,
    prep: Callable[[np.ndarray], np.ndarray],
    dtype: np.dtype[Any],
) -> np.ndarray:
    """One box through ``scipy.ndimage.affine_transform`` on its source region (plus a
    2-pixel margin, clipped to the image: the region's borders inside the image are never
    sampled, those on the image's border are the same border)."""
    r, c, h, w = (int(v) for v in box)
    shape = np.array(image.shape[:2])
    corners = np.array([[r, c], [r, c + w - 1], [r + h - 1, c], [r + h - 1, c + w - 1]])
    src = corners @ matrix.T + offset
    lo = np.maximum(np.floor(src.min(axis=0)).astype(np.int64) - 2, 0)
    hi = np.minimum(np.ceil(src.max(axis=0)).astype(np.int64) + 3, shape)
    if np.any(hi <= lo):  # the whole box samples outside the image
        return np.zeros((h, w), dtype=dtype)
    part = prep(image[lo[0] : hi[0], lo[1] : hi[1]])
    block_offset = offset + matrix @ np.array([r, c], dtype=np.float64) - lo
    from scipy import ndimage

    result: np.ndarray = ndimage.affine_transform(
        part,
        matrix,
        block_offset,
        output_shape=(h, w),
        output=dtype,
        order=1,
        mode="constant",
        cval=0.0,
        prefilter=False,
    )
    return result

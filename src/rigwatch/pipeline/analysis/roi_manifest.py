"""ROI manifests in today's ``ROI_manifest.json`` format.

Layout: one JSON object; ``"image_angle"`` (degrees: the analysis rotates the image by
``-image_angle`` before cutting ROIs) and one entry per ROI, keyed ``"ROI_<label>_<half>"``::

    {"ROI_A1_1": {"label": "A1", "flip": false, "coords": [row, col], "size": [h, w]}, ...,
     "image_angle": 1.25}

``coords`` is the top-left pixel (row, column) in the rotated image, ``size`` the height and
width in pixels; ``flip`` mirrors the ROI left-right before its rows are analysed.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rigwatch.errors import RoiManifestError

ANGLE_KEY = "image_angle"


@dataclass(frozen=True)
class Roi:
    """One region of interest.

    Attributes:
        name: its key in the manifest (``ROI_<label>_<half>``).
        label: the grating's label.
        flip: mirror left-right before the analysis.
        row, col: top-left pixel in the rotated image.
        height, width: size in pixels (>= 1).
    """

    name: str
    label: str
    flip: bool
    row: int
    col: int
    height: int
    width: int

    def to_json(self) -> dict[str, Any]:
        """The manifest entry: ``{label, flip, coords, size}``."""
        return {
            "label": self.label,
            "flip": self.flip,
            "coords": [self.row, self.col],
            "size": [self.height, self.width],
        }


@dataclass(frozen=True)
class RoiManifest:
    """ROIs and the image angle (degrees)."""

    rois: tuple[Roi, ...]
    image_angle: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """Today's JSON object (ROIs in order, then ``image_angle``)."""
        out: dict[str, Any] = {roi.name: roi.to_json() for roi in self.rois}
        out[ANGLE_KEY] = self.image_angle
        return out

    def check_fits(self, shape: tuple[int, int]) -> str | None:
        """``None`` when every ROI lies inside an image of ``shape`` (rows, cols), else why not."""
        h, w = shape
        for roi in self.rois:
            if roi.row < 0 or roi.col < 0 or roi.row + roi.height > h or roi.col + roi.width > w:
                return (
                    f"{roi.name} spans rows {roi.row}..{roi.row + roi.height - 1}, columns "
                    f"{roi.col}..{roi.col + roi.width - 1}, outside the {h} x {w} image"
                )
        return None


def _int_pair(name: str, key: str, value: Any) -> tuple[int, int]:
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        or not all(float(v).is_integer() for v in value)
    ):
        raise RoiManifestError(f"{name}.{key} must be a list of two integers, got {value!r}")
    return int(value[0]), int(value[1])


def parse_roi_manifest(data: Any, source: str = "ROI manifest") -> RoiManifest:
    """Validate a decoded manifest object.

    Raises:
        RoiManifestError: not an object, no ROIs, an entry without ``label``/``flip``/``coords``
            /``size`` or with wrong types, a non-positive size, a non-finite angle; the message
            names ``source`` and the entry.
    """
    if not isinstance(data, dict):
        raise RoiManifestError(f"{source}: must be a JSON object, got {type(data).__name__}")
    angle = data.get(ANGLE_KEY, 0.0)
    if not isinstance(angle, int | float) or isinstance(angle, bool) or not math.isfinite(angle):
        raise RoiManifestError(f"{source}: {ANGLE_KEY} must be a finite number, got {angle!r}")
    rois: list[Roi] = []
    for name, entry in data.items():
        if name == ANGLE_KEY:
            continue
        where = f"{source}: {name}"
        if not isinstance(entry, dict):
            raise RoiManifestError(f"{where} must be an object, got {type(entry).__name__}")
        missing = [k for k in ("label", "flip", "coords", "size") if k not in entry]
        if missing:
            raise RoiManifestError(f"{where} lacks {', '.join(missing)}")
        if not isinstance(entry["flip"], bool):
            raise RoiManifestError(f"{where}.flip must be true or false, got {entry['flip']!r}")
        row, col = _int_pair(where, "coords", entry["coords"])
        height, width = _int_pair(where, "size", entry["size"])
        if height < 1 or width < 3:
            raise RoiManifestError(f"{where}.size must be >= [1, 3], got {[height, width]}")
        rois.append(Roi(str(name), str(entry["label"]), entry["flip"], row, col, height, width))
    if not rois:
        raise RoiManifestError(f"{source}: holds no ROI")
    return RoiManifest(tuple(rois), float(angle))


def load_roi_manifest(path: str | Path) -> RoiManifest:
    """Read and validate ``ROI_manifest.json``.

    Raises:
        RoiManifestError: missing or unreadable file, invalid JSON, invalid content.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise RoiManifestError(f"{p}: cannot read the ROI manifest: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RoiManifestError(f"{p}: not valid JSON: {exc}") from exc
    return parse_roi_manifest(data, str(p))


def write_roi_manifest(manifest: RoiManifest, path: str | Path) -> None:
    """Write ``manifest`` atomically (temporary file, fsync, rename)."""
    p = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(manifest.to_json(), fh, indent=2)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

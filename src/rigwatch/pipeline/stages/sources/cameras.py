"""Cameras: a synthetic one drawing grating images with known resonances, and OpenCV (V4L2)
USB cameras. A camera gives one grayscale frame per :meth:`Camera.capture` call.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import numpy as np

from rigwatch.errors import CameraError
from rigwatch.pipeline.config import SyntheticCameraConfig, UsbCameraConfig

log = logging.getLogger(__name__)

CAMERA_EXTRA = "rigwatch[camera]"
"""The optional dependency set that brings OpenCV."""


class Camera(Protocol):
    """A source of grayscale frames."""

    def capture(self) -> np.ndarray:
        """One frame, 2-D ``uint8`` or ``uint16`` ``(rows, cols)``.

        Raises:
            CameraError: no frame.
        """
        ...

    def close(self) -> None:
        """Release the device."""
        ...


class SyntheticCamera:
    """Grating images drawn by :func:`rigwatch.pipeline.analysis.synthetic.make_grating_image`,
    the lines moving by ``drift_px_per_image`` from one image to the next.

    Writes the true ROI manifest to ``config.roi_manifest`` when given (so a processor can
    analyse the images without a calibration).
    """

    def __init__(self, config: SyntheticCameraConfig, seed: int = 0) -> None:
        from rigwatch.pipeline.analysis.roi_manifest import write_roi_manifest
        from rigwatch.pipeline.analysis.synthetic import ChipSpec, SyntheticSpec

        self.config = config
        self.seed = seed
        self.count = 0
        self.spec = SyntheticSpec(
            shape=config.shape,
            chip=ChipSpec(
                rows=config.chip_rows,
                cols=config.chip_cols,
                half_size=config.half_size,
                pitch=config.pitch,
            ),
            line=config.line,
            noise=config.noise,
        )
        if config.roi_manifest is not None:
            truth = self._draw(0)
            config.roi_manifest.parent.mkdir(parents=True, exist_ok=True)
            write_roi_manifest(truth.manifest, config.roi_manifest)

    def _draw(self, n: int) -> Any:
        from dataclasses import replace

        from rigwatch.pipeline.analysis.synthetic import make_grating_image

        spec = replace(self.spec, shift_px=n * self.config.drift_px_per_image)
        return make_grating_image(spec, seed=self.seed)

    def capture(self) -> np.ndarray:
        image = self._draw(self.count).image
        self.count += 1
        return np.asarray(image)

    def close(self) -> None:
        pass


_TRANSFORMS = {
    "rotate_90": lambda a: np.rot90(a, -1),
    "rotate_180": lambda a: np.rot90(a, 2),
    "rotate_270": lambda a: np.rot90(a, 1),
    "flip_h": lambda a: a[:, ::-1],
    "flip_v": lambda a: a[::-1, :],
}


def import_cv2() -> Any:
    """The ``cv2`` module.

    Raises:
        CameraError: OpenCV is not installed (the message names the extra to install).
    """
    try:
        import cv2  # type: ignore[import-not-found, unused-ignore]
    except ImportError as exc:
        raise CameraError(
            f"USB cameras need OpenCV: pip install '{CAMERA_EXTRA}' "
            f"(opencv-python-headless); import failed: {exc}"
        ) from exc
    return cv2


class UsbCamera:
    """A USB camera through OpenCV's V4L2 backend.

    Raises:
        CameraError: OpenCV missing, or the device cannot be opened.
    """

    def __init__(self, config: UsbCameraConfig) -> None:
        self.cv2 = import_cv2()
        self.config = config
        cv2 = self.cv2
        backend = getattr(cv2, "CAP_V4L2", 0)
        self.cap = cv2.VideoCapture(config.device, backend)
        if not self.cap.isOpened():
            raise CameraError(f"USB camera {config.device!r} cannot be opened")
        props = {
            "CAP_PROP_FRAME_WIDTH": config.width,
            "CAP_PROP_FRAME_HEIGHT": config.height,
            "CAP_PROP_EXPOSURE": config.exposure,
            "CAP_PROP_GAIN": config.gain,
            "CAP_PROP_BRIGHTNESS": config.brightness,
            "CAP_PROP_CONTRAST": config.contrast,
        }
        for prop, value in props.items():
            if value is not None and not self.cap.set(getattr(cv2, prop), float(value)):
                log.warning("USB camera %r refused %s=%s", config.device, prop, value)

    def capture(self) -> np.ndarray:
        ok, frame = self.cap.read()
        if not ok or frame is None:
            raise CameraError(f"USB camera {self.config.device!r} returned no frame")
        arr = np.asarray(frame)
        if arr.ndim == 3:
            arr = self.cv2.cvtColor(arr, self.cv2.COLOR_BGR2GRAY)
        transform = _TRANSFORMS.get(self.config.transform)
        if transform is not None:
            arr = transform(arr)
        return np.ascontiguousarray(arr)

    def close(self) -> None:
        self.cap.release()

"""Playing focused signals on the station's own sound card (optional extra ``rigwatch[audio]``).

``sounddevice`` (PortAudio) is imported only when a :class:`SoundCardSink` is opened, so the
rest of the acoustic camera runs without it.
"""

from __future__ import annotations

import importlib
import logging
from types import ModuleType, TracebackType
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from rigwatch.errors import AcousticsError

log = logging.getLogger(__name__)

__all__ = ["SoundCardSink", "import_sounddevice"]


def import_sounddevice() -> ModuleType:
    """Import ``sounddevice``.

    Raises:
        AcousticsError: it is not installed (install the optional extra ``rigwatch[audio]``),
            or PortAudio could not be loaded.
    """
    try:
        return importlib.import_module("sounddevice")
    except ImportError as exc:
        raise AcousticsError(
            "playing on the sound card needs the optional extra rigwatch[audio] "
            "(pip install 'rigwatch[audio]', which installs sounddevice): " + str(exc)
        ) from exc
    except OSError as exc:  # sounddevice raises OSError when the PortAudio library is missing
        raise AcousticsError(f"sounddevice is installed but PortAudio is missing: {exc}") from exc


class SoundCardSink:
    """A blocking output stream that plays focused signals, all selections mixed to mono.

    Args:
        sample_rate_hz: rate of the signals written (the sound card must support it).
        full_scale: value that maps to the sound card's full scale (1.0); larger values clip.
        device: PortAudio output device (index or name), ``None`` for the default.

    Raises:
        AcousticsError: ``sounddevice`` missing (extra ``rigwatch[audio]``), a bad argument, or
            the stream could not be opened.
    """

    def __init__(
        self, sample_rate_hz: float, *, full_scale: float = 1.0, device: int | str | None = None
    ) -> None:
        if not sample_rate_hz > 0:
            raise AcousticsError(f"sample_rate_hz must be positive, got {sample_rate_hz}")
        if not full_scale > 0:
            raise AcousticsError(f"full_scale must be positive, got {full_scale}")
        sd = import_sounddevice()
        self._full_scale = float(full_scale)
        try:
            self._stream: Any = sd.OutputStream(
                samplerate=sample_rate_hz, channels=1, dtype="float32", device=device
            )
            self._stream.start()
        except Exception as exc:  # PortAudioError and friends; name the device
            raise AcousticsError(
                f"cannot open sound card {device!r} at {sample_rate_hz} Hz: {exc}"
            ) from exc
        log.info("sound card %r open at %s Hz", device, sample_rate_hz)

    def write(self, samples: ArrayLike) -> None:
        """Play ``(n,)`` or ``(n, n_selections)`` samples (selections averaged); blocks until
        the sound card has room."""
        x = np.asarray(samples, dtype=np.float32)
        if x.ndim == 2:
            x = x.mean(axis=1) if x.shape[1] else np.zeros(x.shape[0], dtype=np.float32)
        if x.ndim != 1:
            raise AcousticsError(f"samples must be (n,) or (n, n_selections), got {x.shape}")
        out = np.clip(x / self._full_scale, -1.0, 1.0).astype(np.float32)
        self._stream.write(out.reshape(-1, 1))

    def close(self) -> None:
        """Stop and close the stream."""
        self._stream.stop()
        self._stream.close()

    def __enter__(self) -> SoundCardSink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

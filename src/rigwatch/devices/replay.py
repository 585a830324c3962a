"""Replay of a recording file as a live acquisition device.

The whole recording is loaded (and optionally resampled) when the device is built, so
:meth:`ReplayDevice.describe` works before :meth:`ReplayDevice.start` and a bad file is reported
at once. Blocks are cut from the in-memory samples, paced against the monotonic clock
(``pace="realtime"``) or delivered as fast as they are asked for (``pace="fast"``), optionally
looping without a seam.
"""

from __future__ import annotations

import logging
from fractions import Fraction

import numpy as np

from rigwatch.acquisition.formats import Recording, read_recording
from rigwatch.config.station import ReplayDeviceConfig
from rigwatch.devices.pacing import Clock, PacedStream, Sleep
from rigwatch.devices.protocols import (
    Block,
    ChannelInfo,
    EndOfStream,
    StreamInfo,
    channel_infos,
)
from rigwatch.errors import DeviceError, FormatError

log = logging.getLogger(__name__)

MAX_RESAMPLE_DENOMINATOR = 1000
"""Largest ``up``/``down`` denominator tried when approximating ``resample_hz / rate``."""


def resample(data: np.ndarray, rate_hz: float, target_hz: float) -> tuple[np.ndarray, float]:
    """Polyphase-resample ``data`` from ``rate_hz`` to (about) ``target_hz``.

    The ratio ``target_hz / rate_hz`` is approximated by ``up / down`` with
    ``Fraction(...).limit_denominator(1000)``; :func:`scipy.signal.resample_poly` runs in
    float64 along axis 0.

    Args:
        data: ``(samples, channels)`` float array.
        rate_hz: its sample rate.
        target_hz: the wanted rate.

    Returns:
        ``(resampled, achieved_rate_hz)``: ``(ceil(samples * up / down), channels)`` float32
        C-contiguous, and exactly ``rate_hz * up / down``. Unchanged data (as float32) when the
        ratio is 1.

    Raises:
        DeviceError: the ratio cannot be represented (rounds to 0).
    """
    ratio = Fraction(target_hz / rate_hz).limit_denominator(MAX_RESAMPLE_DENOMINATOR)
    up, down = ratio.numerator, ratio.denominator
    if up == 0:
        raise DeviceError(
            f"cannot resample {rate_hz:g} Hz to {target_hz:g} Hz: ratio rounds to 0 "
            f"with denominators up to {MAX_RESAMPLE_DENOMINATOR}"
        )
    if up == down:
        return np.ascontiguousarray(data, dtype=np.float32), float(rate_hz)
    from scipy.signal import resample_poly

    out = resample_poly(np.asarray(data, dtype=np.float64), up, down, axis=0)
    return np.ascontiguousarray(out.astype(np.float32)), float(rate_hz) * up / down


class ReplayDevice:
    """Plays a recording file as a device (driver ``"replay"``).

    Args:
        config: the device's :class:`ReplayDeviceConfig`.
        clock: monotonic seconds used for real-time pacing (default :func:`time.monotonic`);
            injectable for tests.
        sleep: how :meth:`read_block` waits for a block to be due (default: an interruptible
            wait that :meth:`stop` cuts short).

    Raises:
        DeviceError: the file cannot be read (the :class:`FormatError` is chained and its
            message included), ``config.channels`` does not have one entry per channel of the
            file, or resampling is impossible.

    Blocks hold ``round(block_duration_s * rate)`` rows (at least 1), ``float32``, the file's
    raw values (calibration from ``config.channels`` is declared in :meth:`describe` and
    applied by the engine). Without ``loop`` the last block may be shorter and the next
    :meth:`read_block` raises :class:`EndOfStream`; with ``loop`` the recording repeats
    seamlessly (a block may span its end and its beginning). Timestamps are
    :func:`regular_timestamps_ns` from ``time.time_ns()`` at :meth:`start`, indexed by the
    absolute sample count since start (growing across loops).
    """

    def __init__(
        self,
        config: ReplayDeviceConfig,
        *,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        self.config = config
        try:
            rec = read_recording(
                config.path,
                format=config.format,
                keys=config.keys,
                sample_rate_hz=config.sample_rate_hz,
            )
        except FormatError as exc:
            raise DeviceError(f"replay device {config.name!r}: {exc}") from exc
        self.recording: Recording = rec
        data, rate = rec.data, rec.sample_rate_hz
        if config.resample_hz is not None:
            data, rate = resample(data, rate, config.resample_hz)
            log.info(
                "replay %s: resampled %s from %g Hz to %g Hz (%d -> %d samples)",
                config.name,
                rec.source,
                rec.sample_rate_hz,
                rate,
                rec.samples,
                data.shape[0],
            )
        self._data = data
        self._rate = rate
        self._info = StreamInfo(
            device=config.name,
            driver="replay",
            sample_rate_hz=rate,
            channels=self._channels(rec),
            extra={
                "source": str(config.path),
                "format": rec.format,
                "file_sample_rate_hz": repr(rec.sample_rate_hz),
                "loop": str(config.loop).lower(),
            },
        )
        self._block_rows = max(1, round(config.block_duration_s * rate))
        self._stream = PacedStream(
            f"replay device {config.name!r}",
            rate,
            realtime=config.pace == "realtime",
            clock=clock,
            sleep=sleep,
        )

    def _channels(self, rec: Recording) -> tuple[ChannelInfo, ...]:
        if self.config.channels is None:
            return tuple(
                ChannelInfo(name=n, unit=u)
                for n, u in zip(rec.channel_names, rec.units, strict=True)
            )
        if len(self.config.channels) != rec.channels:
            raise DeviceError(
                f"replay device {self.config.name!r}: config lists {len(self.config.channels)} "
                f"channels but {rec.source} has {rec.channels} "
                f"({', '.join(rec.channel_names)})"
            )
        return channel_infos(self.config.channels)

    @property
    def samples(self) -> int:
        """Number of sample rows of one pass of the (resampled) recording."""
        return int(self._data.shape[0])

    @property
    def block_rows(self) -> int:
        """Rows of a full block."""
        return self._block_rows

    @property
    def position(self) -> int:
        """Absolute index of the next sample to deliver (counts across loops)."""
        return self._stream.position

    def describe(self) -> StreamInfo:
        """Device name, driver ``"replay"``, the (achieved) sample rate and the channels;
        ``extra`` holds ``source`` (path) and ``format``."""
        return self._info

    def start(self) -> None:
        """Start (or restart) playback from the recording's first sample."""
        self._stream.start()
        log.info(
            "replay %s started: %s, %d samples at %g Hz, pace=%s, loop=%s",
            self._info.device,
            self._info.extra["source"],
            self.samples,
            self._rate,
            self.config.pace,
            self.config.loop,
        )

    def stop(self) -> None:
        """Stop playback; wakes a :meth:`read_block` waiting for its block. Idempotent."""
        self._stream.stop()

    def read_block(self, timeout_s: float) -> Block | None:
        """The next block, or ``None`` if it is not due within ``timeout_s`` (real-time pace).

        Returns:
            a :class:`Block`: ``(rows, channels)`` float32 fresh C-contiguous copy and
            ``(rows,)`` int64 timestamps.

        Raises:
            EndOfStream: not looping and every sample was delivered.
            DeviceError: the device is not started.
        """
        stream = self._stream
        stream.check_running()  # before EndOfStream: a stopped device is not started
        rows = self._block_rows
        if not self.config.loop:
            left = self.samples - stream.position
            if left <= 0:
                raise EndOfStream(f"{stream.label}: end of {self._info.extra['source']}")
            rows = min(rows, left)
        start = stream.next_range(rows, timeout_s)
        if start is None:
            return None
        return stream.deliver(start, self._rows(start, rows))

    def _rows(self, start: int, rows: int) -> np.ndarray:
        """Rows ``start .. start + rows`` of the endlessly repeated recording, as a copy."""
        n = self.samples
        pos = start % n
        if pos + rows <= n:
            return self._data[pos : pos + rows].copy()
        return np.take(self._data, np.arange(pos, pos + rows) % n, axis=0)

"""Replay of a recording file as a live acquisition device.

The whole recording is loaded (and optionally resampled) when the device is built, so
:meth:`ReplayDevice.describe` works before :meth:`ReplayDevice.start` and a bad file is reported
at once. Blocks are cut from the in-memory samples, paced against the monotonic clock
(``pace="realtime"``) or delivered as fast as they are asked for (``pace="fast"``), optionally
looping without a seam.
"""

from __future__ import annotations

import logging
import math
from fractions import Fraction
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from rigwatch.config.base import ChannelConfig, DeviceConfig, ResolvedPath, check_unique_channels
from rigwatch.devices.pacing import Clock, PacedStream, Sleep
from rigwatch.devices.protocols import (
    Block,
    ChannelInfo,
    EndOfStream,
    StreamInfo,
    channel_infos,
    regular_timestamps_ns,
)
from rigwatch.devices.registry import Driver
from rigwatch.errors import DeviceError, FormatError
from rigwatch.recordings.readers import Recording, read_recording

log = logging.getLogger(__name__)


class ReplayDeviceConfig(DeviceConfig):
    """Plays a recording as a live device."""

    driver: Literal["replay"]
    path: ResolvedPath
    format: Literal["auto", "npz", "wav", "parquet", "hdf5"] = "auto"
    keys: list[str] | None = Field(
        default=None, description="Arrays (npz) or columns (parquet) to play, in order."
    )
    sample_rate_hz: float | None = Field(
        default=None, gt=0, description="Rate of the file's samples when the file does not say."
    )
    pace: Literal["realtime", "fast"] = "realtime"
    loop: bool = False
    resample_hz: float | None = Field(default=None, gt=0)
    timestamps: Literal["now", "file"] = Field(
        default="now",
        description="'now': rows are stamped from the time playback starts; 'file': with the "
        "file's own timestamps (Parquet), shifted by the recording's span on each loop.",
    )
    channels: list[ChannelConfig] | None = None

    @model_validator(mode="after")
    def _unique(self) -> ReplayDeviceConfig:
        check_unique_channels(self.channels)
        return self


MAX_RESAMPLE_DENOMINATOR = 1000
"""Largest ``up``/``down`` denominator tried when approximating ``resample_hz / rate``."""


def resample(
    data: np.ndarray, rate_hz: float, target_hz: float, *, periodic: bool = False
) -> tuple[np.ndarray, float]:
    """Polyphase-resample ``data`` from ``rate_hz`` to (about) ``target_hz``.

    The ratio ``target_hz / rate_hz`` is approximated by ``up / down`` with
    ``Fraction(...).limit_denominator(1000)``; :func:`scipy.signal.resample_poly` runs in
    float64 along axis 0.

    Args:
        data: ``(samples, channels)`` float array.
        rate_hz: its sample rate.
        target_hz: the wanted rate.
        periodic: treat ``data`` as one period of an endless loop: the filter sees the end
            before the beginning and the beginning after the end (instead of zeros), so a
            looped replay has no transient at its wrap.

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

    x = np.asarray(data, dtype=np.float64)
    n = x.shape[0]
    n_out = math.ceil(n * up / down)
    if periodic:
        # resample_poly's filter reaches 10 * max(up, down) samples of the upsampled signal
        # to each side, i.e. that many / up input samples; pad with a whole number of ``down``
        # input samples so the output of the padding is a whole number of samples to cut
        reach = math.ceil(10 * max(up, down) / up) + 1
        pad = down * math.ceil(reach / down)
        x = np.take(x, np.arange(-pad, n + pad) % n, axis=0)
        out = resample_poly(x, up, down, axis=0)
        first = pad * up // down
        out = out[first : first + n_out]
    else:
        out = resample_poly(x, up, down, axis=0)
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
    seamlessly (a block may span its end and its beginning; a resampled loop is resampled as
    a periodic signal, so the wrap has no filter transient).

    Timestamps (``config.timestamps``): ``"now"`` stamps row ``i`` (absolute count since
    :meth:`start`, growing across loops) with :func:`regular_timestamps_ns` from
    ``time.time_ns()`` at :meth:`start`; ``"file"`` keeps the file's own stamps (a resampled
    file: regular stamps from its first one), each loop shifted by the recording's span plus
    one sample period, so time never goes back.
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
        if config.timestamps == "file" and rec.timestamps_ns is None:
            raise DeviceError(
                f"replay device {config.name!r}: timestamps = 'file' but {rec.source} "
                f"({rec.format}) stores no timestamps; use timestamps = 'now'"
            )
        data, rate = rec.data, rec.sample_rate_hz
        if config.resample_hz is not None:
            data, rate = resample(data, rate, config.resample_hz, periodic=config.loop)
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
        self._file_ts: np.ndarray | None = None
        self._file_t0_ns = 0
        self._loop_span_ns = 0
        if config.timestamps == "file":
            assert rec.timestamps_ns is not None  # checked above
            period_ns = round(1e9 / rate)
            self._file_t0_ns = int(rec.timestamps_ns[0])
            if config.resample_hz is None:
                self._file_ts = rec.timestamps_ns
                self._loop_span_ns = int(rec.timestamps_ns[-1]) - self._file_t0_ns + period_ns
            else:
                self._loop_span_ns = round(data.shape[0] * 1e9 / rate)
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
                "timestamps": config.timestamps,
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
        return stream.deliver(start, self._rows(start, rows), self._timestamps(start, rows))

    def _timestamps(self, start: int, rows: int) -> np.ndarray | None:
        """The file's stamps of rows ``start .. start + rows`` (``timestamps = "file"``), or
        ``None`` for the stream's own regular stamps."""
        if self.config.timestamps != "file":
            return None
        if self._file_ts is None:  # resampled: regular from the file's first stamp
            return regular_timestamps_ns(self._file_t0_ns, start, rows, self._rate)
        idx = np.arange(start, start + rows, dtype=np.int64)
        n = self.samples
        return self._file_ts[idx % n] + (idx // n) * self._loop_span_ns

    def _rows(self, start: int, rows: int) -> np.ndarray:
        """Rows ``start .. start + rows`` of the endlessly repeated recording, as a copy."""
        n = self.samples
        pos = start % n
        if pos + rows <= n:
            return self._data[pos : pos + rows].copy()
        return np.take(self._data, np.arange(pos, pos + rows) % n, axis=0)


DRIVER = Driver(
    name="replay",
    config_model=ReplayDeviceConfig,
    create=lambda cfg, _ctx: ReplayDevice(cfg),
    description="a recording file (npz, WAV, Parquet, HDF5) played as a live device",
)

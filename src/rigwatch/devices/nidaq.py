"""NI-DAQmx continuous analog input (the ball mill's acquisition).

Facts from the system the ball mill runs today: 9 channels ``Dev1/ai1:9``, RSE, 48 000 Hz, read
in blocks; a pressure channel ``Dev2/ai1`` at 2 Hz calibrated ``46.18 * V - 25.7``. The driver
delivers volts; the acquisition engine applies each channel's gain and offset, which
:meth:`NidaqDevice.describe` takes from the configuration.

The hardware is reached through our own small interface, :class:`AnalogInputTask`:

- :class:`NidaqmxTask` implements it over NI's ``nidaqmx`` package, imported only when such a
  task is created, so this module imports (and the tests run) without NI's software;
- :class:`FakeAnalogInputTask` is a deterministic stand-in for tests and demos.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from rigwatch.config.station import NidaqDeviceConfig
from rigwatch.counters import Counters
from rigwatch.devices.protocols import (
    Block,
    EndOfStream,
    StreamInfo,
    channel_infos,
    regular_timestamps_ns,
)
from rigwatch.errors import DeviceError

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "NI-DAQmx support needs the nidaqmx package and NI's driver: pip install 'rigwatch[nidaq]'"
)

_DAQMX_TIMEOUT = -200284
"""NI-DAQmx error code: samples not yet available when the read timeout elapsed."""


@runtime_checkable
class AnalogInputTask(Protocol):
    """A continuously sampling multi-channel analog input, in volts.

    Lifecycle: ``configure`` once, then ``start``, ``read`` repeatedly, ``stop``; ``start``
    again restarts sampling from an empty buffer; ``close`` releases the hardware.
    """

    @property
    def channel_count(self) -> int:
        """Channels of the configured task (0 before :meth:`configure`)."""
        ...

    def configure(
        self,
        physical_channels: str,
        sample_rate_hz: float,
        samples_per_block: int,
        terminal_config: str,
        min_val_v: float,
        max_val_v: float,
    ) -> None:
        """Create the channels and the sample clock.

        Args:
            physical_channels: NI-DAQmx channel string (``"Dev1/ai1:9"``, ``"Dev2/ai1"``).
            sample_rate_hz: samples per second per channel.
            samples_per_block: samples per channel of a typical :meth:`read` (sizes buffers).
            terminal_config: ``"RSE"``, ``"NRSE"``, ``"DIFF"``, ``"PSEUDO_DIFF"`` or
                ``"DEFAULT"``.
            min_val_v: lowest expected voltage (selects the input range).
            max_val_v: highest expected voltage.

        Raises:
            DeviceError: the hardware or driver refused the configuration.
        """
        ...

    def start(self) -> None:
        """Start sampling. Raises DeviceError."""
        ...

    def read(self, samples: int, timeout_s: float) -> np.ndarray:
        """Read the next ``samples`` samples of every channel, waiting up to ``timeout_s``.

        Returns:
            ``(channels, n)`` float64 volts, channel-major (the layout of nidaqmx's
            ``AnalogMultiChannelReader.read_many_sample``). ``n == samples`` normally; when the
            timeout elapses first, ``n < samples`` holds the samples that did arrive (possibly
            none), which are consumed and must not be lost.

        Raises:
            DeviceError: the acquisition failed (buffer overflow, device removed...).
        """
        ...

    def stop(self) -> None:
        """Stop sampling (the task can be started again)."""
        ...

    def close(self) -> None:
        """Release the task and the hardware; safe to call twice."""
        ...


def count_physical_channels(physical_channels: str) -> int:
    """Number of channels in an NI-DAQmx channel string.

    ``"Dev1/ai1:9"`` -> 9, ``"Dev2/ai1"`` -> 1, ``"Dev1/ai0, Dev1/ai4:5"`` -> 3 (ranges may
    descend: ``ai9:1`` -> 9).

    Raises:
        DeviceError: the string is empty.
    """
    parts = [p.strip() for p in physical_channels.split(",") if p.strip()]
    if not parts:
        raise DeviceError(f"no physical channel in {physical_channels!r}")
    total = 0
    for part in parts:
        m = re.fullmatch(r".*?(\d+):(\d+)", part)
        total += abs(int(m.group(2)) - int(m.group(1))) + 1 if m else 1
    return total


class NidaqmxTask:
    """:class:`AnalogInputTask` over NI's ``nidaqmx`` package (continuous sampling).

    Uses ``Task.ai_channels.add_ai_voltage_chan``, ``Task.timing.cfg_samp_clk_timing`` with
    ``AcquisitionType.CONTINUOUS`` and ``stream_readers.AnalogMultiChannelReader``.

    Raises:
        DeviceError: ``nidaqmx`` is not installed (message gives the install command).
    """

    def __init__(self) -> None:
        try:
            import nidaqmx
            import nidaqmx.constants
            import nidaqmx.errors
            import nidaqmx.stream_readers
        except ImportError as exc:
            raise DeviceError(f"{INSTALL_HINT} ({exc})") from exc
        self._nidaqmx: Any = nidaqmx
        self._task: Any = None
        self._reader: Any = None
        self._channels = 0
        self._name = ""

    @property
    def channel_count(self) -> int:
        """Channels of the configured task (0 before :meth:`configure`)."""
        return self._channels

    def configure(
        self,
        physical_channels: str,
        sample_rate_hz: float,
        samples_per_block: int,
        terminal_config: str,
        min_val_v: float,
        max_val_v: float,
    ) -> None:
        """Create the task; the on-board buffer holds at least 10 blocks or 2 s of samples.

        Raises:
            DeviceError: unknown terminal configuration or NI-DAQmx refused the settings.
        """
        nidaqmx = self._nidaqmx
        constants = nidaqmx.constants
        term = _terminal_configuration(constants.TerminalConfiguration, terminal_config)
        buffer = max(10 * samples_per_block, math.ceil(2 * sample_rate_hz), 2)
        self._name = physical_channels
        task = None
        try:
            task = nidaqmx.Task()
            task.ai_channels.add_ai_voltage_chan(
                physical_channels, terminal_config=term, min_val=min_val_v, max_val=max_val_v
            )
            task.timing.cfg_samp_clk_timing(
                sample_rate_hz,
                sample_mode=constants.AcquisitionType.CONTINUOUS,
                samps_per_chan=buffer,
            )
            self._channels = int(task.number_of_channels)
            self._reader = nidaqmx.stream_readers.AnalogMultiChannelReader(task.in_stream)
        except nidaqmx.errors.DaqError as exc:
            if task is not None:
                task.close()
            raise DeviceError(
                f"NI-DAQmx refused {physical_channels!r} ({terminal_config}, "
                f"{sample_rate_hz:g} Hz, {min_val_v:g}..{max_val_v:g} V): {exc}"
            ) from exc
        self._task = task

    def start(self) -> None:
        """Start sampling. Raises DeviceError."""
        self._call("start", self._required().start)

    def read(self, samples: int, timeout_s: float) -> np.ndarray:
        """``(channels, n)`` float64 volts, ``n < samples`` only when ``timeout_s`` elapsed.

        Raises:
            DeviceError: any NI-DAQmx error other than the read timeout (-200284).
        """
        self._required()
        errors = self._nidaqmx.errors
        buf = np.empty((self._channels, samples), dtype=np.float64)
        try:
            n = self._reader.read_many_sample(
                buf, number_of_samples_per_channel=samples, timeout=timeout_s
            )
        except errors.DaqReadError as exc:
            if exc.error_code != _DAQMX_TIMEOUT:
                raise DeviceError(f"NI-DAQmx read of {self._name!r} failed: {exc}") from exc
            n = int(exc.samps_per_chan_read or 0)
        except errors.DaqError as exc:
            raise DeviceError(f"NI-DAQmx read of {self._name!r} failed: {exc}") from exc
        return buf if n == samples else buf[:, :n]

    def stop(self) -> None:
        """Stop sampling. Raises DeviceError."""
        if self._task is not None:
            self._call("stop", self._task.stop)

    def close(self) -> None:
        """Release the task; safe to call twice."""
        task, self._task = self._task, None
        self._reader = None
        if task is not None:
            try:
                task.close()
            except self._nidaqmx.errors.DaqError:
                log.warning("closing NI-DAQmx task %r failed", self._name, exc_info=True)

    def _required(self) -> Any:
        if self._task is None:
            raise DeviceError("NI-DAQmx task is not configured (or already closed)")
        return self._task

    def _call(self, what: str, fn: Callable[[], Any]) -> None:
        try:
            fn()
        except self._nidaqmx.errors.DaqError as exc:
            raise DeviceError(f"NI-DAQmx {what} of {self._name!r} failed: {exc}") from exc


def _terminal_configuration(enum: Any, name: str) -> Any:
    """Member ``name`` of nidaqmx's ``TerminalConfiguration`` (older releases spelt DIFF and
    PSEUDO_DIFF as DIFFERENTIAL and PSEUDODIFFERENTIAL)."""
    aliases = {
        "DIFF": ("DIFF", "DIFFERENTIAL"),
        "PSEUDO_DIFF": ("PSEUDO_DIFF", "PSEUDODIFFERENTIAL"),
    }
    for candidate in aliases.get(name, (name,)):
        member = getattr(enum, candidate, None)
        if member is not None:
            return member
    raise DeviceError(f"unknown NI-DAQmx terminal configuration {name!r}")


class FakeAnalogInputTask:
    """A deterministic :class:`AnalogInputTask` for tests and demos.

    Sample ``i`` (counted from the last :meth:`start`) of channel ``c`` is
    ``constant_v[c]`` when constants are given, else
    ``0.5 * (c + 1) + amplitude_v * sin(2 pi frequency_hz i / rate + c)`` volts
    (see :meth:`values`).

    Args:
        channel_count: channels of the task; by default counted from the channel string given
            to :meth:`configure` (``"Dev1/ai1:9"`` -> 9).
        constant_v: one voltage per channel (or one for all) instead of the sines.
        frequency_hz: frequency of the sines.
        amplitude_v: amplitude of the sines.
        fail_on_read: ``{k: exception}``: the ``k``-th call of :meth:`read` (1-based, counted
            over the task's life) raises ``exception`` instead of reading.
        short_reads: ``{k: n}``: the ``k``-th read returns only ``n`` samples, as a read
            whose timeout elapsed does.
        end_after_reads: reads after this many raise :class:`EndOfStream` (a finite demo).
        realtime: pace reads like hardware: a read returns when its last sample's time has
            come, or at ``timeout_s`` with the samples due by then.
        fail_on_configure: raised by :meth:`configure` (a refused configuration).

    Attributes:
        configured: the arguments of the last :meth:`configure` call, by name.
        reads: number of :meth:`read` calls so far.
        started, closed: lifecycle flags; ``starts`` counts :meth:`start` calls.
    """

    def __init__(
        self,
        channel_count: int | None = None,
        *,
        constant_v: float | Sequence[float] | None = None,
        frequency_hz: float = 5.0,
        amplitude_v: float = 1.0,
        fail_on_read: Mapping[int, BaseException] | None = None,
        short_reads: Mapping[int, int] | None = None,
        end_after_reads: int | None = None,
        realtime: bool = False,
        fail_on_configure: BaseException | None = None,
    ) -> None:
        self._fixed_count = channel_count
        self._constant = constant_v
        self.frequency_hz = frequency_hz
        self.amplitude_v = amplitude_v
        self.fail_on_read = dict(fail_on_read or {})
        self.short_reads = dict(short_reads or {})
        self.end_after_reads = end_after_reads
        self.realtime = realtime
        self.fail_on_configure = fail_on_configure
        self.configured: dict[str, Any] = {}
        self.reads = 0
        self.starts = 0
        self.started = False
        self.closed = False
        self._channels = 0
        self._rate = 0.0
        self._index = 0
        self._t_start = 0.0
        self._wake = threading.Event()

    @property
    def channel_count(self) -> int:
        """Channels of the configured task (0 before :meth:`configure`)."""
        return self._channels

    def configure(
        self,
        physical_channels: str,
        sample_rate_hz: float,
        samples_per_block: int,
        terminal_config: str,
        min_val_v: float,
        max_val_v: float,
    ) -> None:
        """Record the settings; the channel count comes from ``channel_count`` or the string."""
        if self.fail_on_configure is not None:
            raise self.fail_on_configure
        self.configured = {
            "physical_channels": physical_channels,
            "sample_rate_hz": sample_rate_hz,
            "samples_per_block": samples_per_block,
            "terminal_config": terminal_config,
            "min_val_v": min_val_v,
            "max_val_v": max_val_v,
        }
        self._channels = self._fixed_count or count_physical_channels(physical_channels)
        self._rate = float(sample_rate_hz)

    def start(self) -> None:
        """Start (or restart) sampling from sample 0."""
        if not self.configured:
            raise DeviceError("fake task is not configured")
        self.started = True
        self.starts += 1
        self._index = 0
        self._t_start = time.monotonic()
        self._wake.clear()

    def values(self, start_index: int, samples: int) -> np.ndarray:
        """The ``(channels, samples)`` float64 volts of samples ``start_index...``."""
        n_ch = self._channels
        if self._constant is not None:
            const = np.broadcast_to(np.asarray(self._constant, dtype=np.float64), (n_ch,))
            return np.repeat(const[:, None], samples, axis=1)
        t = np.arange(start_index, start_index + samples, dtype=np.float64) / self._rate
        c = np.arange(n_ch, dtype=np.float64)[:, None]
        return 0.5 * (c + 1) + self.amplitude_v * np.sin(
            2 * np.pi * self.frequency_hz * t[None, :] + c
        )

    def read(self, samples: int, timeout_s: float) -> np.ndarray:
        """The next ``samples`` samples (see the class docstring for injected failures)."""
        if not self.started:
            raise DeviceError("fake task is not started")
        self.reads += 1
        k = self.reads
        if self.end_after_reads is not None and k > self.end_after_reads:
            raise EndOfStream(f"fake task: end after {self.end_after_reads} reads")
        if k in self.fail_on_read:
            raise self.fail_on_read[k]
        n = min(samples, self.short_reads.get(k, samples))
        if self.realtime:
            due_at = self._t_start + (self._index + n) / self._rate
            wait = due_at - time.monotonic()
            if wait > timeout_s:
                self._wake.wait(max(timeout_s, 0.0))
                elapsed = time.monotonic() - self._t_start
                n = max(0, min(n, math.floor(elapsed * self._rate) - self._index))
            elif wait > 0:
                self._wake.wait(wait)
        out = self.values(self._index, n)
        self._index += n
        return out

    def stop(self) -> None:
        """Stop sampling."""
        self.started = False
        self._wake.set()

    def close(self) -> None:
        """Release the fake; safe to call twice."""
        self.started = False
        self.closed = True
        self._wake.set()


class NidaqDevice:
    """An NI-DAQmx continuous analog input as an acquisition device.

    Each :meth:`read_block` reads ``samples_per_block = max(1, round(block_duration_s *
    sample_rate_hz))`` samples per channel (2 400 at 48 kHz and 50 ms). Sample ``i`` since the
    task started is stamped ``t0 + round(i * 1e9 / rate)``, ``t0`` being ``time.time_ns()`` when
    the task was started, so stamps are regular and free of drift.

    After a failed read the task is restarted on the next call (NI-DAQmx tasks stop on a buffer
    overflow); the stream then restarts with a new ``t0`` (a gap, counted as
    ``nidaq.<device>.restart``), never earlier than the stamps already delivered.

    Args:
        config: the device's configuration.
        task_factory: makes the :class:`AnalogInputTask` (default :class:`NidaqmxTask`).
        counters: where restarts are counted; a private :class:`Counters` when None.
    """

    def __init__(
        self,
        config: NidaqDeviceConfig,
        task_factory: Callable[[], AnalogInputTask] | None = None,
        *,
        counters: Counters | None = None,
    ) -> None:
        self.config = config
        self.counters = counters if counters is not None else Counters()
        self._factory: Callable[[], AnalogInputTask] = task_factory or NidaqmxTask
        self.samples_per_block = max(1, round(config.block_duration_s * config.sample_rate_hz))
        self._info = StreamInfo(
            device=config.name,
            driver="nidaq",
            sample_rate_hz=config.sample_rate_hz,
            channels=channel_infos(config.channels),
            extra={
                "physical_channels": config.physical_channels,
                "terminal_config": config.terminal_config,
                "input_range_v": f"{config.min_val_v:g}..{config.max_val_v:g}",
                "samples_per_block": str(self.samples_per_block),
            },
        )
        self._task: AnalogInputTask | None = None
        self._t0_ns = 0
        self._last_ns = 0
        self._index = 0
        self._needs_restart = False

    def describe(self) -> StreamInfo:
        """Name, driver ``"nidaq"``, sample rate and channels with their calibration
        (``gain``/``offset`` from the configuration, applied to volts by the engine)."""
        return self._info

    def start(self) -> None:
        """Create, configure and start the task.

        Raises:
            DeviceError: ``nidaqmx`` is missing, NI-DAQmx refused the configuration, or the
                task's channel count differs from ``config.channels`` (message names both).
        """
        if self._task is not None:
            return
        cfg = self.config
        task = self._factory()
        try:
            task.configure(
                cfg.physical_channels,
                cfg.sample_rate_hz,
                self.samples_per_block,
                cfg.terminal_config,
                cfg.min_val_v,
                cfg.max_val_v,
            )
            if task.channel_count != len(cfg.channels):
                names = ", ".join(c.name for c in cfg.channels)
                raise DeviceError(
                    f"{cfg.name}: {len(cfg.channels)} channels configured ({names}) but "
                    f"{cfg.physical_channels!r} has {task.channel_count}"
                )
            task.start()
        except BaseException:
            _close_quietly(task)
            raise
        self._task = task
        self._t0_ns = time.time_ns()
        self._index = 0
        self._needs_restart = False
        log.info(
            "%s: %s started, %d channels at %g Hz, %d samples per block",
            cfg.name,
            cfg.physical_channels,
            task.channel_count,
            cfg.sample_rate_hz,
            self.samples_per_block,
        )

    def stop(self) -> None:
        """Stop and close the task; safe to call twice."""
        task, self._task = self._task, None
        if task is None:
            return
        try:
            task.stop()
        except Exception:
            log.warning("%s: stopping the task failed", self.config.name, exc_info=True)
        _close_quietly(task)

    def read_block(self, timeout_s: float) -> Block | None:
        """The next block of ``(samples, channels)`` float32 volts (C-contiguous) and their
        int64 ns timestamps; fewer rows when ``timeout_s`` elapsed first, None when no sample
        arrived.

        Raises:
            EndOfStream: a finite (fake) task has no more samples.
            DeviceError: not started, the read failed (the task is restarted on the next call)
                or the restart failed.
        """
        task = self._task
        if task is None:
            raise DeviceError(f"{self.config.name}: device is not started")
        if self._needs_restart:
            self._restart(task)
        try:
            raw = task.read(self.samples_per_block, timeout_s)
        except DeviceError as exc:
            if not isinstance(exc, EndOfStream):
                self._needs_restart = True
            raise
        except Exception as exc:
            self._needs_restart = True
            raise DeviceError(f"{self.config.name}: read failed: {exc!r}") from exc
        n_ch = len(self.config.channels)
        if raw.ndim != 2 or raw.shape[0] != n_ch or raw.shape[1] > self.samples_per_block:
            raise DeviceError(
                f"{self.config.name}: task returned shape {raw.shape}, expected "
                f"({n_ch}, <= {self.samples_per_block})"
            )
        n = raw.shape[1]
        if n == 0:
            return None
        data = np.ascontiguousarray(raw.T, dtype=np.float32)
        stamps = regular_timestamps_ns(self._t0_ns, self._index, n, self.config.sample_rate_hz)
        self._index += n
        self._last_ns = int(stamps[-1])
        return Block(data=data, timestamps_ns=stamps)

    def _restart(self, task: AnalogInputTask) -> None:
        try:
            task.stop()
        except Exception:
            log.debug("%s: stop before restart failed", self.config.name, exc_info=True)
        try:
            task.start()
        except DeviceError:
            raise
        except Exception as exc:
            raise DeviceError(f"{self.config.name}: restarting the task failed: {exc!r}") from exc
        # never earlier than the stamps already delivered: the stream's time only goes forward
        period_ns = round(1e9 / self.config.sample_rate_hz)
        self._t0_ns = max(time.time_ns(), self._last_ns + period_ns)
        self._index = 0
        self._needs_restart = False
        self.counters.inc(
            f"nidaq.{self.config.name}.restart",
            message="task restarted after a failed read; samples in between are lost",
        )
        log.warning("%s: task restarted after a failed read", self.config.name)


def _close_quietly(task: AnalogInputTask) -> None:
    try:
        task.close()
    except Exception:
        log.warning("closing the task failed", exc_info=True)

"""Stand-ins for an NI-DAQmx task: the simulated task behind ``--simulate`` (configured signals,
paced like hardware) and a deterministic fake with injectable failures for tests."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rigwatch.devices.nidaq.task import count_physical_channels
from rigwatch.devices.pacing import Clock, Pacer
from rigwatch.devices.protocols import EndOfStream
from rigwatch.devices.signals import SignalGenerator, SimSignalConfig
from rigwatch.errors import DeviceError


class SimulatedAnalogInputTask:
    """An :class:`~rigwatch.devices.nidaq.task.AnalogInputTask` producing configured signals in
    volts (see :mod:`rigwatch.devices.signals`), paced like a sampling clock.

    A :meth:`read` returns when its last sample's time has come; if that is further away than
    its timeout, it returns no sample (``(channels, 0)``), as a hardware read whose timeout
    elapsed early in a block would.

    Args:
        signals: channel ``j`` plays ``signals[j % len(signals)]``, in volts.
        seed: seed of the noise channels.
        recording: ``(rows, channels)`` volts played in a loop instead of ``signals`` (a
            recorded scene: the acoustic camera's demo); it needs at least as many channels
            as the task has.
        realtime: pace reads against ``clock``; ``False`` answers at once.
        clock: monotonic seconds (default :func:`time.monotonic`).
    """

    def __init__(
        self,
        signals: Sequence[SimSignalConfig],
        *,
        seed: int = 0,
        realtime: bool = True,
        clock: Clock | None = None,
        recording: np.ndarray | None = None,
    ) -> None:
        if not signals and recording is None:
            raise DeviceError("simulated NI-DAQ task: no signals configured")
        self._signals = list(signals)
        self._seed = seed
        self._realtime = realtime
        self._clock = clock
        self._wake = threading.Event()
        self._channels = 0
        self._recording = recording
        self._generator: SignalGenerator | LoopedRecording | None = None
        self._pacer: Pacer | None = None
        self._index = 0
        self.started = False
        self.closed = False

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
        """Size the generator: one channel per physical channel of the string.

        Raises:
            DeviceError: an empty channel string.
        """
        self._channels = count_physical_channels(physical_channels)
        if self._recording is not None:
            self._generator = LoopedRecording(self._recording, self._channels, samples_per_block)
        else:
            self._generator = SignalGenerator(
                self._signals, self._channels, sample_rate_hz, samples_per_block, seed=self._seed
            )
        self._pacer = Pacer(
            sample_rate_hz, realtime=self._realtime, clock=self._clock, sleep=self._wake.wait
        )

    def start(self) -> None:
        """Start sampling from sample 0.

        Raises:
            DeviceError: not configured.
        """
        if self._generator is None or self._pacer is None:
            raise DeviceError("simulated NI-DAQ task is not configured")
        self._generator.reset()
        self._index = 0
        self._wake.clear()
        self._pacer.start()
        self.started = True

    def read(self, samples: int, timeout_s: float) -> np.ndarray:
        """The next ``samples`` samples as ``(channels, samples)`` float64 volts, or
        ``(channels, 0)`` when they are not due within ``timeout_s`` or the task was stopped.

        Raises:
            DeviceError: not started, or ``samples`` differs from the configured block size.
        """
        gen, pacer = self._generator, self._pacer
        if not self.started or gen is None or pacer is None:
            raise DeviceError("simulated NI-DAQ task is not started")
        if samples != gen.block_rows:
            raise DeviceError(
                f"simulated NI-DAQ task reads blocks of {gen.block_rows} samples, not {samples}"
            )
        if not pacer.wait(self._index + samples, timeout_s) or not self.started:
            return np.empty((self._channels, 0), dtype=np.float64)
        out = gen.generate(self._index).T.astype(np.float64)
        self._index += samples
        return out

    def stop(self) -> None:
        """Stop sampling; a waiting :meth:`read` returns at once."""
        self.started = False
        self._wake.set()

    def close(self) -> None:
        """Release the task; safe to call twice."""
        self.stop()
        self.closed = True


class LoopedRecording:
    """Blocks of a recording played in a loop (the signal generator's interface).

    Args:
        data: ``(rows, >= channels)`` samples.
        channels: columns played (the first ones).
        block_rows: rows per block.

    Raises:
        DeviceError: the recording has fewer channels than the task, or no rows.
    """

    def __init__(self, data: np.ndarray, channels: int, block_rows: int) -> None:
        if data.ndim != 2 or data.shape[0] == 0 or data.shape[1] < channels:
            raise DeviceError(
                f"simulated NI-DAQ task: the recording has shape {data.shape}, the task needs "
                f"{channels} channel(s)"
            )
        self._data = np.ascontiguousarray(data[:, :channels], dtype=np.float32)
        self.block_rows = block_rows

    def reset(self) -> None:
        """Nothing to reset: sample ``i`` is always row ``i % rows``."""

    def generate(self, start: int) -> np.ndarray:
        """Samples ``start .. start + block_rows``, ``(block_rows, channels)`` float32."""
        rows = (start + np.arange(self.block_rows)) % self._data.shape[0]
        return self._data[rows]


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

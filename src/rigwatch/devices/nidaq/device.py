"""NI-DAQmx continuous analog input (the ball mill's acquisition) as an acquisition device.

Facts from the system the ball mill runs today: 9 channels ``Dev1/ai1:9``, RSE, 48 000 Hz, read
in blocks; a pressure channel ``Dev2/ai1`` at 2 Hz calibrated ``46.18 * V - 25.7``. The driver
delivers volts; the acquisition engine applies each channel's gain and offset, which
:meth:`NidaqDevice.describe` takes from the configuration.

The hardware is reached through our own small interface,
:class:`~rigwatch.devices.nidaq.task.AnalogInputTask`: :class:`~rigwatch.devices.nidaq.task.
NidaqmxTask` over NI's package, or, under ``--simulate``, a
:class:`~rigwatch.devices.nidaq.simulated.SimulatedAnalogInputTask` producing the signals of
the device's ``[devices.simulation]`` table.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from rigwatch.config.base import (
    ChannelConfig,
    DeviceConfig,
    ResolvedPath,
    Strict,
    check_unique_channels,
)
from rigwatch.counters import Counters
from rigwatch.devices.nidaq.simulated import SimulatedAnalogInputTask
from rigwatch.devices.nidaq.task import AnalogInputTask, NidaqmxTask
from rigwatch.devices.protocols import (
    Block,
    EndOfStream,
    StreamInfo,
    channel_infos,
    regular_timestamps_ns,
)
from rigwatch.devices.registry import Driver, DriverContext
from rigwatch.devices.signals import SimSignalConfig
from rigwatch.errors import DeviceError, RecordingError
from rigwatch.recordings.readers import read_recording

log = logging.getLogger(__name__)


class NidaqSimulationConfig(Strict):
    """What the simulated twin of an NI-DAQ device produces (``--simulate``), in volts before
    calibration; channel ``j`` plays ``signals[j % len(signals)]``, or column ``j`` of
    ``recording``: a recording of calibrated values (Pa, bar...) played in a loop, turned into
    volts by inverting each channel's calibration (its rate must be the device's)."""

    signals: list[SimSignalConfig] = Field(
        default_factory=lambda: [
            SimSignalConfig(kind="sine", amplitude=0.5, frequency_hz=1000.0),
            SimSignalConfig(kind="noise", amplitude=0.05),
        ],
        min_length=1,
    )
    seed: int = 0
    recording: ResolvedPath | None = None


class NidaqDeviceConfig(DeviceConfig):
    """NI-DAQmx continuous analog input."""

    driver: Literal["nidaq"]
    physical_channels: str = Field(description='NI-DAQmx channel string, e.g. "Dev1/ai1:9".')
    terminal_config: Literal["RSE", "NRSE", "DIFF", "PSEUDO_DIFF", "DEFAULT"] = "RSE"
    sample_rate_hz: float = Field(gt=0)
    min_val_v: float = -10.0
    max_val_v: float = 10.0
    channels: list[ChannelConfig] = Field(min_length=1)
    simulation: NidaqSimulationConfig = Field(
        default_factory=NidaqSimulationConfig,
        description="Signals of the simulated twin (station run --simulate).",
    )

    @model_validator(mode="after")
    def _check(self) -> NidaqDeviceConfig:
        check_unique_channels(self.channels)
        if self.min_val_v >= self.max_val_v:
            raise ValueError("min_val_v must be below max_val_v")
        return self


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
        simulated: the task is a simulation (said in ``describe().extra["simulated"]``, so
            recordings made with it can be told apart).
    """

    def __init__(
        self,
        config: NidaqDeviceConfig,
        task_factory: Callable[[], AnalogInputTask] | None = None,
        *,
        counters: Counters | None = None,
        simulated: bool = False,
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
                **({"simulated": "true"} if simulated else {}),
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


def _create(config: NidaqDeviceConfig, ctx: DriverContext) -> NidaqDevice:
    return NidaqDevice(config, counters=ctx.counters)


def _simulated_volts(config: NidaqDeviceConfig) -> np.ndarray | None:
    """The simulation's recording in volts (each channel's calibration inverted), or None.

    Raises:
        DeviceError: the recording cannot be read, its rate is not the device's, or it has
            fewer channels than the device.
    """
    path = config.simulation.recording
    if path is None:
        return None
    try:
        rec = read_recording(path)
    except RecordingError as exc:
        raise DeviceError(f"nidaq {config.name!r} simulation recording: {exc}") from exc
    if rec.sample_rate_hz != config.sample_rate_hz:
        raise DeviceError(
            f"nidaq {config.name!r}: simulation recording {path} is sampled at "
            f"{rec.sample_rate_hz:g} Hz, the device at {config.sample_rate_hz:g} Hz"
        )
    n = len(config.channels)
    if rec.channels < n:
        raise DeviceError(
            f"nidaq {config.name!r}: simulation recording {path} has {rec.channels} channel(s), "
            f"the device {n}"
        )
    gain = np.array([c.gain for c in config.channels], dtype=np.float64)
    offset = np.array([c.offset for c in config.channels], dtype=np.float64)
    return ((rec.data[:, :n] - offset) / gain).astype(np.float32)


def _simulate(config: NidaqDeviceConfig, ctx: DriverContext) -> NidaqDevice:
    sim = config.simulation
    volts = _simulated_volts(config)
    return NidaqDevice(
        config,
        lambda: SimulatedAnalogInputTask(sim.signals, seed=sim.seed, recording=volts),
        counters=ctx.counters,
        simulated=True,
    )


DRIVER = Driver(
    name="nidaq",
    config_model=NidaqDeviceConfig,
    create=_create,
    simulate=_simulate,
    description="NI-DAQmx continuous analog input (pip install 'rigwatch[nidaq]')",
)

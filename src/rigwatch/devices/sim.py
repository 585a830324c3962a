"""Simulated device: signal generators for any channel count and rate (driver ``"sim"``).

The signals are those of :mod:`rigwatch.devices.signals`; pacing, start/stop and timestamps
are those of :class:`~rigwatch.devices.pacing.PacedStream`.
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from rigwatch.config.base import ChannelConfig, DeviceConfig, check_unique_channels
from rigwatch.devices.pacing import Clock, PacedStream, Sleep
from rigwatch.devices.protocols import Block, ChannelInfo, StreamInfo, channel_infos
from rigwatch.devices.registry import Driver
from rigwatch.devices.signals import SignalGenerator, SimSignalConfig
from rigwatch.errors import DeviceError

log = logging.getLogger(__name__)


class SimDeviceConfig(DeviceConfig):
    """Signal generators for any channel count and rate."""

    driver: Literal["sim"]
    sample_rate_hz: float = Field(gt=0, le=10_000_000)
    channel_count: int | None = Field(default=None, ge=1, le=4096)
    channels: list[ChannelConfig] | None = None
    signals: list[SimSignalConfig] = Field(default_factory=lambda: [SimSignalConfig()])
    pace: Literal["realtime", "fast"] = "realtime"
    seed: int = 0

    @model_validator(mode="after")
    def _channels(self) -> SimDeviceConfig:
        check_unique_channels(self.channels)
        if self.channels is None and self.channel_count is None:
            raise ValueError("give either channels or channel_count")
        if (
            self.channels is not None
            and self.channel_count is not None
            and len(self.channels) != self.channel_count
        ):
            raise ValueError(
                f"channel_count {self.channel_count} != {len(self.channels)} channels listed"
            )
        return self


class SimDevice:
    """Signal-generator device.

    Args:
        config: the device's :class:`SimDeviceConfig`.
        clock: monotonic seconds for real-time pacing (default :func:`time.monotonic`).
        sleep: how :meth:`read_block` waits (default: an interruptible wait cut short by
            :meth:`stop`).

    Raises:
        DeviceError: ``config.signals`` is empty.

    Blocks hold ``round(block_duration_s * sample_rate_hz)`` rows (at least 1) of
    ``(rows, channels)`` float32; channels are named from ``config.channels`` or
    ``ch0..ch{n-1}`` with unit ``"V"``.
    """

    def __init__(
        self,
        config: SimDeviceConfig,
        *,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        if not config.signals:
            raise DeviceError(f"sim device {config.name!r}: no signals configured")
        self.config = config
        self._rate = float(config.sample_rate_hz)
        if config.channels is not None:
            channels = channel_infos(config.channels)
        else:
            assert config.channel_count is not None  # guaranteed by the config model
            channels = tuple(
                ChannelInfo(name=f"ch{i}", unit="V") for i in range(config.channel_count)
            )
        self._n = len(channels)
        self._block_rows = max(1, round(config.block_duration_s * self._rate))
        self._info = StreamInfo(
            device=config.name,
            driver="sim",
            sample_rate_hz=self._rate,
            channels=channels,
            extra={"signals": ",".join(s.kind for s in config.signals), "seed": str(config.seed)},
        )
        self._generator = SignalGenerator(
            config.signals, self._n, self._rate, self._block_rows, seed=config.seed
        )
        self._stream = PacedStream(
            f"sim device {config.name!r}",
            self._rate,
            realtime=config.pace == "realtime",
            clock=clock,
            sleep=sleep,
        )

    @property
    def block_rows(self) -> int:
        """Rows of a block."""
        return self._block_rows

    @property
    def position(self) -> int:
        """Absolute index of the next sample to generate."""
        return self._stream.position

    def describe(self) -> StreamInfo:
        """Device name, driver ``"sim"``, rate and channels."""
        return self._info

    def start(self) -> None:
        """Start (or restart) generation at sample 0; noise generators are re-seeded."""
        self._generator.reset()
        self._stream.start()
        log.info(
            "sim %s started: %d channels at %g Hz, pace=%s",
            self._info.device,
            self._n,
            self._rate,
            self.config.pace,
        )

    def stop(self) -> None:
        """Stop generating; wakes a waiting :meth:`read_block`. Idempotent."""
        self._stream.stop()

    def read_block(self, timeout_s: float) -> Block | None:
        """The next block, or ``None`` when it is not due within ``timeout_s`` (real-time).

        Returns:
            a :class:`Block` of ``(block_rows, channels)`` float32 and int64 timestamps.

        Raises:
            DeviceError: the device is not started.
        """
        start = self._stream.next_range(self._block_rows, timeout_s)
        if start is None:
            return None
        return self._stream.deliver(start, self.generate(start))

    def generate(self, start: int) -> np.ndarray:
        """Samples ``start .. start + block_rows`` of every channel (see
        :meth:`SignalGenerator.generate`); calling it outside :meth:`read_block` advances the
        noise generators.

        Returns:
            ``(block_rows, channels)`` float32, a new C-contiguous array.
        """
        return self._generator.generate(start)


DRIVER = Driver(
    name="sim",
    config_model=SimDeviceConfig,
    create=lambda cfg, _ctx: SimDevice(cfg),
    description="signal generators (sine, noise, chirp) for any channel count and rate",
)

"""Capabilities of an acquisition device, as small structural protocols.

A driver does not inherit from a base class: it is a device because it has the methods. Each
capability is one :class:`typing.Protocol`; the acquisition engine needs an object that is
:class:`Describable`, :class:`Startable` and a :class:`BlockSource` (together:
:class:`AcquisitionDevice`).

Conventions (see ``docs/architecture.md``):

- a block's samples are ``(samples, channels)``, C-order, ``float32``, in the device's raw unit
  (volts for an analog input, the value on the wire for a serial device); the engine applies the
  linear calibration ``value = gain * raw + offset`` of each :class:`ChannelInfo`;
- timestamps are ``int64`` nanoseconds since the Unix epoch (UTC), one per sample row.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from rigwatch.errors import DeviceError


class EndOfStream(DeviceError):
    """Raised by :meth:`BlockSource.read_block` when a finite source (a replay without loop)
    has delivered its last block."""


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """One channel of a device.

    Attributes:
        name: channel name, unique within its device (``"DE"``, ``"P1"``, ``"pressure"``).
        unit: engineering unit after calibration (``"g"``, ``"bar"``, ``"degC"``).
        gain: linear calibration slope: ``value = gain * raw + offset``.
        offset: linear calibration intercept, in ``unit``.
    """

    name: str
    unit: str = ""
    gain: float = 1.0
    offset: float = 0.0

    @property
    def is_identity(self) -> bool:
        """True when calibration leaves raw values unchanged (gain 1, offset 0)."""
        return self.gain == 1.0 and self.offset == 0.0


class ChannelSpec(Protocol):
    """What a configured channel gives: name, unit and linear calibration (a ``[[channels]]``
    entry of a device's config, :class:`rigwatch.config.station.ChannelConfig`)."""

    @property
    def name(self) -> str: ...
    @property
    def unit(self) -> str: ...
    @property
    def gain(self) -> float: ...
    @property
    def offset(self) -> float: ...


def channel_infos(specs: Iterable[ChannelSpec]) -> tuple[ChannelInfo, ...]:
    """The :class:`ChannelInfo` of each configured channel, in order."""
    return tuple(ChannelInfo(s.name, s.unit, s.gain, s.offset) for s in specs)


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """What a device delivers: its name, driver, nominal sample rate and channels.

    Attributes:
        device: device name, unique within a station.
        driver: driver name (``"replay"``, ``"sim"``, ``"stm32"``, ``"nidaq"``).
        sample_rate_hz: nominal rows per second (for an irregular source such as a text serial
            line, the expected rate; timestamps then carry the truth).
        channels: one :class:`ChannelInfo` per column of a block, in column order.
        extra: driver-specific facts worth keeping in recordings' metadata (source file...).
    """

    device: str
    driver: str
    sample_rate_hz: float
    channels: tuple[ChannelInfo, ...]
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def channel_names(self) -> list[str]:
        """Channel names in column order."""
        return [c.name for c in self.channels]


@dataclass(slots=True)
class Block:
    """A block of consecutive sample rows from one device.

    Attributes:
        data: ``(samples, channels)`` ``float32`` C-contiguous, raw (uncalibrated) values.
        timestamps_ns: ``(samples,)`` ``int64`` nanoseconds since the Unix epoch, UTC.
    """

    data: np.ndarray
    timestamps_ns: np.ndarray

    def __post_init__(self) -> None:
        if self.data.ndim != 2:
            raise DeviceError(f"block data must be 2-D (samples, channels), got {self.data.shape}")
        if self.data.dtype != np.float32:
            raise DeviceError(f"block data must be float32, got {self.data.dtype}")
        if self.timestamps_ns.shape != (self.data.shape[0],):
            raise DeviceError(
                f"block has {self.data.shape[0]} rows but {self.timestamps_ns.shape} timestamps"
            )
        if self.timestamps_ns.dtype != np.int64:
            raise DeviceError(f"block timestamps must be int64 ns, got {self.timestamps_ns.dtype}")

    @property
    def rows(self) -> int:
        """Number of sample rows."""
        return int(self.data.shape[0])


def regular_timestamps_ns(t0_ns: int, start_index: int, rows: int, rate_hz: float) -> np.ndarray:
    """Timestamps of ``rows`` samples of a regularly sampled stream.

    Sample ``i`` (absolute index ``start_index + i`` counted from ``t0_ns``) is stamped
    ``t0_ns + round((start_index + i) * 1e9 / rate_hz)``; computing from the absolute index keeps
    the stamps free of accumulated rounding drift over long runs.

    Returns:
        ``(rows,)`` ``int64`` nanoseconds since the Unix epoch.
    """
    idx = np.arange(start_index, start_index + rows, dtype=np.float64)
    return t0_ns + np.rint(idx * (1e9 / rate_hz)).astype(np.int64)


@runtime_checkable
class Describable(Protocol):
    """Can tell what it delivers."""

    def describe(self) -> StreamInfo:
        """Name, driver, nominal rate and channels of this device."""
        ...


@runtime_checkable
class Startable(Protocol):
    """Can be started and stopped. ``stop`` is idempotent and releases the hardware."""

    def start(self) -> None:
        """Open the hardware or file and begin acquiring. Raises DeviceError."""
        ...

    def stop(self) -> None:
        """Stop acquiring and release resources; safe to call twice."""
        ...


@runtime_checkable
class BlockSource(Protocol):
    """Delivers blocks of samples, blocking for at most a timeout."""

    def read_block(self, timeout_s: float) -> Block | None:
        """The next block, or ``None`` when none arrived within ``timeout_s`` seconds.

        Raises:
            EndOfStream: a finite source has delivered everything.
            DeviceError: the device failed (the engine counts it and retries or stops).
        """
        ...


@runtime_checkable
class AcquisitionDevice(Describable, Startable, BlockSource, Protocol):
    """Everything the acquisition engine needs of a device."""

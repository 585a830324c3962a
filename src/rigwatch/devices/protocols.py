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

:class:`~rigwatch.channels.ChannelInfo` and :class:`~rigwatch.channels.StreamInfo` (what a
device describes) live in :mod:`rigwatch.channels`, below the recordings layout that stores
them, and are re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from rigwatch.channels import ChannelInfo, ChannelSpec, StreamInfo, channel_infos
from rigwatch.errors import DeviceError

__all__ = [
    "AcquisitionDevice",
    "Block",
    "BlockSource",
    "ChannelInfo",
    "ChannelSpec",
    "Describable",
    "EndOfStream",
    "Startable",
    "StreamInfo",
    "channel_infos",
    "regular_timestamps_ns",
]


class EndOfStream(DeviceError):
    """Raised by :meth:`BlockSource.read_block` when a finite source (a replay without loop)
    has delivered its last block."""


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

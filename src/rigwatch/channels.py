"""What a stream of samples carries: its channels and its nominal rate.

These value types sit below every part that handles samples: drivers describe their output with
them, the acquisition engine calibrates with them, and the recordings layout stores them in each
Parquet file's metadata, so that a file can be read again without the station that wrote it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol


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
    entry of a device's config, :class:`rigwatch.config.base.ChannelConfig`)."""

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
        driver: driver name (``"replay"``, ``"sim"``, ``"stm32"``, ``"nidaq"``...).
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

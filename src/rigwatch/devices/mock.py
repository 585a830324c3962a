"""Mock devices for tests, benchmarks and code that embeds rigwatch: no hardware, no files.

:class:`ListDevice` delivers exactly the blocks it is given, when it is given them, so a test
decides what the engine sees and when; :func:`ramp_block` makes blocks whose every value says
which row and channel it is, so a reader can check it lost, duplicated or reordered nothing.
"""

from __future__ import annotations

import queue
from collections.abc import Sequence

import numpy as np

from rigwatch.devices.protocols import Block, ChannelInfo, EndOfStream, StreamInfo

RAMP_T0_NS = 1_700_000_000_000_000_000
"""Timestamp of row 0 of :func:`ramp_block` (2023-11-14T22:13:20Z); rows are 1 ms apart."""


def ramp_block(start: int, rows: int, channels: int) -> Block:
    """Rows ``start .. start + rows`` of a ramp whose value encodes (row, channel).

    Returns:
        a :class:`Block`: ``data[i, c] = (start + i) * 10 + c`` as float32 (exact below 2**24 /
        10 rows) and timestamps ``RAMP_T0_NS + (start + i) * 1_000_000`` ns.
    """
    idx = np.arange(start, start + rows)
    data = (idx[:, None] * 10 + np.arange(channels)[None, :]).astype(np.float32)
    return Block(data, (RAMP_T0_NS + idx * 1_000_000).astype(np.int64))


class ListDevice:
    """A device that delivers the blocks put in :attr:`blocks`, in order.

    Put a :class:`Block` to deliver it, an :class:`Exception` to make the next read raise it,
    or ``None`` to end the stream (:class:`EndOfStream`).

    Args:
        name: device name.
        channels: the channels it describes (default ``a`` and ``b``, in volts).
        rate_hz: the nominal rate it describes.

    Attributes:
        blocks: the queue read by :meth:`read_block`.
        started, stopped: whether :meth:`start` / :meth:`stop` were called.
    """

    def __init__(
        self,
        name: str = "dev",
        channels: Sequence[ChannelInfo] | None = None,
        rate_hz: float = 1000.0,
    ) -> None:
        self.channels = list(channels or [ChannelInfo("a", "V"), ChannelInfo("b", "V")])
        self.name = name
        self.rate_hz = rate_hz
        self.blocks: queue.Queue[Block | Exception | None] = queue.Queue()
        self.started = False
        self.stopped = False

    def describe(self) -> StreamInfo:
        """Name, driver ``"mock"``, rate and channels."""
        return StreamInfo(self.name, "mock", self.rate_hz, tuple(self.channels))

    def start(self) -> None:
        """Mark started."""
        self.started = True

    def stop(self) -> None:
        """Mark stopped."""
        self.stopped = True

    def read_block(self, timeout_s: float) -> Block | None:
        """The next queued block, or ``None`` when none is queued within ``timeout_s``.

        Raises:
            EndOfStream: ``None`` was queued.
            Exception: the exception that was queued.
        """
        try:
            item = self.blocks.get(timeout=timeout_s)
        except queue.Empty:
            return None
        if item is None:
            raise EndOfStream(self.name)
        if isinstance(item, Exception):
            raise item
        return item

"""Small in-memory devices for tests: deterministic blocks, no hardware, no files."""

from __future__ import annotations

import queue

import numpy as np

from rigwatch.devices.protocols import Block, ChannelInfo, EndOfStream, StreamInfo


def ramp_block(start: int, rows: int, channels: int) -> Block:
    """Rows whose value encodes (index, channel): ``index * 10 + channel``."""
    idx = np.arange(start, start + rows)
    data = (idx[:, None] * 10 + np.arange(channels)[None, :]).astype(np.float32)
    return Block(data, (1_700_000_000_000_000_000 + idx * 1_000_000).astype(np.int64))


class ListDevice:
    """Delivers the blocks put in its queue; ``None`` in the queue ends the stream."""

    def __init__(
        self,
        name: str = "dev",
        channels: list[ChannelInfo] | None = None,
        rate_hz: float = 1000.0,
    ) -> None:
        self.channels = channels or [ChannelInfo("a", "V"), ChannelInfo("b", "V")]
        self.name = name
        self.rate_hz = rate_hz
        self.blocks: queue.Queue[Block | Exception | None] = queue.Queue()
        self.started = False
        self.stopped = False

    def describe(self) -> StreamInfo:
        return StreamInfo(self.name, "list", self.rate_hz, tuple(self.channels))

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True

    def read_block(self, timeout_s: float) -> Block | None:
        try:
            item = self.blocks.get(timeout=timeout_s)
        except queue.Empty:
            return None
        if item is None:
            raise EndOfStream(self.name)
        if isinstance(item, Exception):
            raise item
        return item

"""Live hub: turns ring-buffer rows into MessagePack frames for WebSocket clients.

Each client subscription keeps its own read position in a device's ring buffer. When the
engine reports new rows, the hub wakes the subscriptions of that device; each one sends a frame
as soon as its frame interval (``1 / fps``) allows, so latency is one block, not one frame
period. Frames are min/max-decimated per display bucket (``bucket_size`` samples, aligned on the
absolute sample index) so that no peak is hidden however far the display zooms out.

A slow client never slows acquisition or other clients: its subscription simply falls behind in
the ring buffer; beyond ``max_backlog_s`` it skips ahead to the newest data and the skipped
samples are reported in the next frame's ``missed`` and counted (``live.samples_skipped``).
The hub serves at most ``max_clients`` connections (:meth:`LiveHub.admit`). The wire format is
described in ``docs/live-protocol.md``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import msgpack
import numpy as np

from rigwatch.acquisition.engine import DeviceStream
from rigwatch.config.station import LiveConfig
from rigwatch.counters import Counters
from rigwatch.errors import ProtocolError

log = logging.getLogger(__name__)

SendBytes = Callable[[bytes], Awaitable[None]]


def decimate_minmax(data: np.ndarray, bucket_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-bucket minimum and maximum of consecutive rows.

    Args:
        data: ``(buckets * bucket_size, channels)`` float32; rows beyond a whole number of
            buckets are ignored.
        bucket_size: rows per bucket, >= 1.

    Returns:
        ``(min, max)``, each ``(buckets, channels)`` float32. NaN samples are ignored unless a
        whole bucket is NaN.
    """
    nb = data.shape[0] // bucket_size
    view = data[: nb * bucket_size].reshape(nb, bucket_size, data.shape[1])
    return np.fmin.reduce(view, axis=1), np.fmax.reduce(view, axis=1)


def pack(message: dict) -> bytes:
    """Encode one frame as MessagePack (bytes stay ``bin``, strings ``str``)."""
    return msgpack.packb(message, use_bin_type=True)


class SubscriptionError(ProtocolError):
    """A subscribe request that cannot be served.

    Attributes:
        code: the ``error`` frame's code: ``unknown_device``, ``unknown_channel`` or
            ``invalid_field`` (see ``docs/live-protocol.md``).
        message: what was wrong with which field.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def error_frame(code: str, message: str, **extra: object) -> bytes:
    """An ``error`` frame: ``code`` is machine-readable, ``message`` says what was wrong."""
    return pack({"type": "error", "code": code, "message": message, **extra})


@dataclass
class HubStats:
    """Connected clients now, and totals over all clients since start."""

    clients: int = 0
    frames_sent: int = 0
    samples_skipped: int = 0


@dataclass
class Subscription:
    """One client's subscription to one device.

    Attributes:
        stream: the device stream read from.
        columns: indexes of the subscribed channels in the device's columns.
        bucket_size: samples per display bucket (1 = raw samples).
        frame_interval_s: minimum time between two frames.
        index: absolute ring-buffer index of the next row to send.
        seq: number of the next frame.
    """

    stream: DeviceStream
    columns: np.ndarray
    bucket_size: int
    frame_interval_s: float
    index: int
    max_buckets: int = 1 << 30
    seq: int = 0
    pending_missed: int = 0
    next_frame_at: float = 0.0
    task: asyncio.Task | None = field(default=None, repr=False)

    @property
    def channel_names(self) -> list[str]:
        """Names of the subscribed channels, in frame column order."""
        return [self.stream.info.channels[i].name for i in self.columns]

    def build_frame(
        self, max_backlog_rows: int, cache: FrameCache | None = None
    ) -> tuple[bytes | None, int]:
        """Read the rows available since ``index`` and encode them as one ``data`` frame.

        Args:
            max_backlog_rows: further behind than this, skip ahead to the newest rows.
            cache: shared encodings of frame bodies; subscriptions asking for the same rows,
                columns and bucket size then encode them once.

        Returns:
            ``(frame or None when no whole bucket is available, samples skipped now)``.
        """
        buf = self.stream.buffer
        skipped = 0
        backlog = buf.write_index - self.index
        if backlog > max_backlog_rows:
            keep = max(self.bucket_size, max_backlog_rows // 4)
            new_index = buf.write_index - keep
            new_index -= new_index % self.bucket_size
            skipped += new_index - self.index
            self.index = new_index
        # whole buckets only, at most max_buckets: the rest goes in the next frame
        end = min(buf.write_index, self.index + self.max_buckets * self.bucket_size)
        end -= end % self.bucket_size
        if end <= self.index:
            self.pending_missed += skipped
            return None, skipped
        key = (self.columns_key, self.bucket_size, self.index, end)
        body = cache.get(key) if cache is not None else None
        if body is None:
            res = buf.read_since(self.index, max_rows=end - self.index)
            start = res.start_index
            data, ts = res.data, res.timestamps_ns
            misalign = (-start) % self.bucket_size
            if misalign:  # after an overrun: realign buckets on the absolute index
                data, ts, start = data[misalign:], ts[misalign:], start + misalign
            skipped += start - self.index
            nb = data.shape[0] // self.bucket_size
            if nb == 0:
                self.index = start
                self.pending_missed += skipped
                return None, skipped
            body = self._encode_body(data, ts, start, nb)
            if cache is not None and start == key[2]:
                cache.put(key, body)
        self.pending_missed += skipped
        head = _PACKER.pack_map_header(body.fields + 3)
        frame = b"".join(
            (
                head,
                _TYPE_DATA,
                _K_SEQ,
                _PACKER.pack(self.seq),
                _K_MISSED,
                _PACKER.pack(self.pending_missed),
                body.payload,
            )
        )
        self.index = body.end_index
        self.seq += 1
        self.pending_missed = 0
        return frame, skipped

    @property
    def columns_key(self) -> tuple[int, ...]:
        """The subscribed column indexes as a hashable key."""
        return tuple(int(c) for c in self.columns)

    def _encode_body(self, data: np.ndarray, ts: np.ndarray, start: int, nb: int) -> FrameBody:
        n = nb * self.bucket_size
        sel = data[:n, self.columns] if len(self.columns) != data.shape[1] else data[:n]
        fields: dict = {
            "device": self.stream.name,
            "start_index": start,
            "end_index": start + n,
            "sample_rate_hz": self.stream.info.sample_rate_hz,
            "bucket_size": self.bucket_size,
            "channels": self.channel_names,
            "shape": [nb, len(self.columns)],
            "dtype": "<f4",
            "t_ns": np.ascontiguousarray(ts[: n : self.bucket_size], dtype="<i8").tobytes(),
            "ingest_ns": self.stream.stats.last_ingest_ns,
        }
        if self.bucket_size == 1:
            fields["data"] = np.ascontiguousarray(sel, dtype="<f4").tobytes()
        else:
            lo, hi = decimate_minmax(sel, self.bucket_size)
            fields["min"] = lo.astype("<f4", copy=False).tobytes()
            fields["max"] = hi.astype("<f4", copy=False).tobytes()
        payload = b"".join(_PACKER.pack(k) + _PACKER.pack(v) for k, v in fields.items())
        return FrameBody(payload, len(fields), start + n)


@dataclass(frozen=True, slots=True)
class FrameBody:
    """The encoded key/value pairs of a ``data`` frame shared by identical subscriptions.

    Attributes:
        payload: MessagePack-encoded keys and values, without the map header.
        fields: number of key/value pairs in ``payload``.
        end_index: absolute index one past the frame's last row.
    """

    payload: bytes
    fields: int
    end_index: int


class FrameCache:
    """The last few frame bodies of one device, keyed by (columns, bucket, start, end).

    Subscriptions woken by the same block usually ask for the same rows; the first one encodes
    them, the others reuse the bytes. Only touched from the event loop thread.
    """

    def __init__(self, size: int = 16) -> None:
        self._size = size
        self._items: dict[tuple, FrameBody] = {}

    def get(self, key: tuple) -> FrameBody | None:
        """The cached body for ``key``, or ``None``."""
        return self._items.get(key)

    def put(self, key: tuple, body: FrameBody) -> None:
        """Remember ``body``; the oldest entry goes when full."""
        if len(self._items) >= self._size:
            self._items.pop(next(iter(self._items)))
        self._items[key] = body


_PACKER = msgpack.Packer(use_bin_type=True)
_TYPE_DATA = _PACKER.pack("type") + _PACKER.pack("data")
_K_SEQ = _PACKER.pack("seq")
_K_MISSED = _PACKER.pack("missed")


class LiveHub:
    """Fans the ring buffers of a station out to WebSocket clients.

    Args:
        streams: the engine's device streams by name.
        config: frame rates, display rate and backlog limits.
        counters: where skipped samples and bad messages are counted.
    """

    def __init__(
        self, streams: dict[str, DeviceStream], config: LiveConfig, counters: Counters
    ) -> None:
        self.streams = streams
        self.config = config
        self.counters = counters
        self.stats = HubStats()
        self._events: dict[str, asyncio.Event] = {}
        self._wake_pending: dict[str, bool] = {}
        self._listeners: dict[str, Callable[[int], None]] = {}
        self._caches: dict[str, FrameCache] = {name: FrameCache() for name in streams}

    # -- wiring to the engine (listeners run on acquisition threads) ------------------------
    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start receiving new-data notices from every stream, delivered on ``loop``."""
        for name, stream in self.streams.items():
            self._events[name] = asyncio.Event()
            self._wake_pending[name] = False

            def listener(_end: int, name: str = name) -> None:
                if not self._wake_pending[name]:
                    self._wake_pending[name] = True
                    loop.call_soon_threadsafe(self._wake, name)

            self._listeners[name] = listener
            stream.add_listener(listener)

    def detach(self) -> None:
        """Stop receiving notices (at shutdown)."""
        for name, listener in self._listeners.items():
            self.streams[name].remove_listener(listener)
        self._listeners.clear()

    def _wake(self, name: str) -> None:
        self._wake_pending[name] = False
        event = self._events[name]
        self._events[name] = asyncio.Event()
        event.set()

    # -- clients ------------------------------------------------------------------------------
    def admit(self) -> bool:
        """Count one more connected client, unless ``max_clients`` are connected already.

        Returns:
            whether the client was admitted; an admitted client is released with
            :meth:`release` when it goes.
        """
        if self.stats.clients >= self.config.max_clients:
            return False
        self.stats.clients += 1
        return True

    def release(self) -> None:
        """Count one admitted client gone."""
        self.stats.clients -= 1

    # -- subscriptions ------------------------------------------------------------------------
    def make_subscription(
        self,
        device: str,
        channels: Sequence[str] | None = None,
        display_rate_hz: float | None = None,
        fps: float | None = None,
    ) -> Subscription:
        """Validate a subscribe request and create its subscription (not yet running).

        Args:
            device: device name.
            channels: channel names, in the order wanted; ``None`` or empty: all.
            display_rate_hz: display points per second per channel, finite and at least
                ``sample_rate_hz / capacity_rows`` of the device's ring buffer (one bucket of
                the whole buffer); above ``sample_rate_hz`` raw samples are sent. Default:
                ``default_display_rate_hz``, raised to that minimum if below it.
            fps: frames per second, finite, within ``[min_fps, max_fps]``; default
                ``default_fps``.

        Returns:
            the subscription, its ``bucket_size`` within ``[1, capacity_rows]``, starting at
            the newest whole bucket.

        Raises:
            SubscriptionError: unknown device or channel, or a rate out of range; its ``code``
                names which (``unknown_device``, ``unknown_channel``, ``invalid_field``).
        """
        stream = self.streams.get(device)
        if stream is None:
            raise SubscriptionError(
                "unknown_device",
                f"unknown device {device!r}; devices: {', '.join(sorted(self.streams))}",
            )
        names = stream.info.channel_names
        if channels is None or len(channels) == 0:
            columns = list(range(len(names)))
        else:
            unknown = [c for c in channels if c not in names]
            if unknown:
                raise SubscriptionError(
                    "unknown_channel",
                    f"device {device!r} has no channel {', '.join(map(repr, unknown))}; "
                    f"channels: {', '.join(names)}",
                )
            columns = [names.index(c) for c in channels]
        rate = stream.info.sample_rate_hz
        capacity = stream.buffer.capacity
        min_display = rate / capacity
        if display_rate_hz is None:
            display = max(self.config.default_display_rate_hz, min_display)
        else:
            display = display_rate_hz
            if not (math.isfinite(display) and display > 0 and display >= min_display):
                raise SubscriptionError(
                    "invalid_field",
                    f"display_rate_hz must be a finite number >= {min_display:g} for device "
                    f"{device!r} ({rate:g} Hz, ring buffer of {capacity} rows: one display "
                    f"bucket at most), got {display!r}",
                )
        fps_v = self.config.default_fps if fps is None else fps
        lo, hi = self.config.min_fps, self.config.max_fps
        if not (math.isfinite(fps_v) and lo <= fps_v <= hi):
            raise SubscriptionError(
                "invalid_field", f"fps must be in [{lo:g}, {hi:g}], got {fps_v!r}"
            )
        bucket = min(capacity, max(1, int(rate // display)))
        start = stream.buffer.write_index
        start -= start % bucket
        # bytes per bucket: t_ns plus one float32 per column (raw) or two (min and max)
        per_bucket = 8 + 4 * len(columns) * (1 if bucket == 1 else 2)
        return Subscription(
            stream=stream,
            columns=np.asarray(columns, dtype=np.intp),
            bucket_size=bucket,
            frame_interval_s=1.0 / fps_v,
            index=start,
            max_buckets=max(1, self.config.max_frame_bytes // per_bucket),
        )

    async def run_subscription(self, sub: Subscription, send: SendBytes) -> None:
        """Send ``sub``'s frames through ``send`` until cancelled."""
        name = sub.stream.name
        max_backlog = max(
            sub.bucket_size * 2, int(self.config.max_backlog_s * sub.stream.info.sample_rate_hz)
        )
        while True:
            event = self._events[name]
            if sub.stream.buffer.write_index - sub.index < sub.bucket_size:
                await event.wait()
            now = time.monotonic()
            if now < sub.next_frame_at:
                await asyncio.sleep(sub.next_frame_at - now)
            frame, skipped = sub.build_frame(max_backlog, self._caches[name])
            if skipped:
                self.stats.samples_skipped += skipped
                self.counters.inc("live.samples_skipped", skipped)
            if frame is None:
                continue
            sub.next_frame_at = time.monotonic() + sub.frame_interval_s * 0.9
            await send(frame)
            self.stats.frames_sent += 1

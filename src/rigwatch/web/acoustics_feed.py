"""Maps and focused sound of the acoustic camera, for WebSocket clients.

The camera calls its listeners from its own threads; the feed encodes each map and audio frame
once (MessagePack, arrays as raw little-endian bytes, see ``docs/live-protocol.md``) and hands
the bytes to every subscribed connection's queue on the event loop. Queues are bounded: a
client that falls behind loses its oldest frames (counted as ``ws.acoustic_frames_dropped``),
it never makes the server hold more.

Frames:

- ``acoustic_map``: ``seq``, ``timestamp_ns``, ``shape`` ``[rows, cols]``, ``dtype`` ``"<f4"``,
  ``data`` (the map's values, row-major), ``quantity`` (``spl_db`` / ``pseudo_spectrum``),
  ``unit``, ``method``, ``band``, ``f_low_hz``, ``f_high_hz``, ``compute_ms``, ``excluded``,
  ``peaks`` (``[{row, col, value, position_m}]``).
- ``audio``: see :mod:`rigwatch.acoustics.pcm`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from rigwatch.acoustics.live import AcousticCamera, AcousticMap, AudioFrame
from rigwatch.acoustics.pcm import audio_frame_fields, encode_pcm
from rigwatch.acquisition.live import pack
from rigwatch.counters import Counters

log = logging.getLogger(__name__)

AUDIO_QUEUE = 40
"""Audio frames a client may be behind (2 s of 50 ms frames) before the oldest is dropped."""
AUDIO_FULL_SCALE_PA = 2.0
"""Pressure that maps to full scale in the PCM frames (a 134 dB peak): loud machinery fits."""


def map_frame(m: AcousticMap) -> bytes:
    """The ``acoustic_map`` frame of a map."""
    values = np.ascontiguousarray(m.values, dtype="<f4")
    return pack(
        {
            "type": "acoustic_map",
            "seq": m.seq,
            "timestamp_ns": m.timestamp_ns,
            "shape": list(values.shape),
            "dtype": "<f4",
            "data": values.tobytes(),
            "quantity": m.quantity,
            "unit": m.unit,
            "method": m.method,
            "band": m.band_label,
            "f_low_hz": m.f_low_hz,
            "f_high_hz": m.f_high_hz,
            "compute_ms": m.compute_s * 1e3,
            "excluded": list(m.excluded),
            "peaks": [
                {"row": p.row, "col": p.col, "value": p.value, "position_m": list(p.position_m)}
                for p in m.peaks
            ],
        }
    )


def audio_frame(f: AudioFrame) -> bytes:
    """The ``audio`` frame (int16 PCM) of the focused sound."""
    chunk = encode_pcm(f.samples, dtype="<i2", full_scale=AUDIO_FULL_SCALE_PA)
    fields = audio_frame_fields(
        chunk,
        seq=f.seq,
        start_index=f.start_index,
        sample_rate_hz=f.sample_rate_hz,
        selections=list(f.selections),
    )
    fields["latency_ms"] = f.latency_s * 1e3
    return pack(fields)


@dataclass(eq=False)
class FeedSubscription:
    """One connection's frames waiting to be sent: the newest map (a newer one replaces it)
    and up to :data:`AUDIO_QUEUE` audio frames."""

    maps: bool
    audio: bool
    latest_map: bytes | None = None
    audio_frames: deque[bytes] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    async def next_frames(self) -> list[bytes]:
        """Wait until something is to be sent, and take it (map first, then audio in order)."""
        await self.wake.wait()
        self.wake.clear()
        out = [] if self.latest_map is None else [self.latest_map]
        self.latest_map = None
        out.extend(self.audio_frames)
        self.audio_frames.clear()
        return out


class AcousticsFeed:
    """Encodes the camera's frames once and distributes them to subscribed connections.

    Args:
        camera: the station's acoustic camera.
        counters: where dropped frames are counted.
    """

    def __init__(self, camera: AcousticCamera, counters: Counters) -> None:
        self.camera = camera
        self._counters = counters
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subs: set[FeedSubscription] = set()
        self._map_subs = 0  # read from the camera's threads: no encoding for nobody
        self._audio_subs = 0

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start receiving the camera's frames, delivering them on ``loop``."""
        self._loop = loop
        self.camera.add_map_listener(self._on_map)
        self.camera.add_audio_listener(self._on_audio)

    def detach(self) -> None:
        """Stop receiving frames."""
        self.camera.remove_map_listener(self._on_map)
        self.camera.remove_audio_listener(self._on_audio)
        self._loop = None

    def subscribe(self, *, maps: bool, audio: bool) -> FeedSubscription:
        """A new subscription (call from the event loop); the newest map is queued at once."""
        sub = FeedSubscription(maps=maps, audio=audio)
        self._subs.add(sub)
        self._map_subs += int(maps)
        self._audio_subs += int(audio)
        latest = self.camera.latest
        if maps and latest is not None:
            self._put(sub, map_frame(latest), is_map=True)
        return sub

    def unsubscribe(self, sub: FeedSubscription) -> None:
        """End a subscription (call from the event loop)."""
        if sub in self._subs:
            self._subs.discard(sub)
            self._map_subs -= int(sub.maps)
            self._audio_subs -= int(sub.audio)

    # -- from the camera's threads -------------------------------------------------------------
    def _on_map(self, m: AcousticMap) -> None:
        if self._loop is not None and self._map_subs:
            data = map_frame(m)
            with contextlib.suppress(RuntimeError):  # loop closed while shutting down
                self._loop.call_soon_threadsafe(self._distribute, data, True)

    def _on_audio(self, f: AudioFrame) -> None:
        if self._loop is not None and self._audio_subs:
            data = audio_frame(f)
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._distribute, data, False)

    # -- on the event loop ----------------------------------------------------------------------
    def _distribute(self, data: bytes, is_map: bool) -> None:
        for sub in list(self._subs):
            if sub.maps if is_map else sub.audio:
                self._put(sub, data, is_map=is_map)

    def _put(self, sub: FeedSubscription, data: bytes, *, is_map: bool) -> None:
        dropped = False
        if is_map:
            dropped = sub.latest_map is not None
            sub.latest_map = data
        else:
            if len(sub.audio_frames) >= AUDIO_QUEUE:
                sub.audio_frames.popleft()
                dropped = True
            sub.audio_frames.append(data)
        if dropped:
            self._counters.inc(
                "ws.acoustic_frames_dropped",
                message="a client fell behind the acoustic camera's frames",
            )
        sub.wake.set()

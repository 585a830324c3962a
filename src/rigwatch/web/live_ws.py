"""One client connection of the live WebSocket ``/ws``: messages in, frames out.

A :class:`LiveSession` reads the client's messages (MessagePack, or JSON text), validates them,
answers each type with one method, and runs one frame-sending task per subscribed device. Bad
messages are answered with an ``error`` frame and counted (``ws.<code>``); the connection stays
open. The protocol is described in ``docs/live-protocol.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any, Literal

import msgpack
from fastapi import WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rigwatch.acquisition.live import (
    LiveHub,
    Subscription,
    SubscriptionError,
    error_frame,
    pack,
)
from rigwatch.errors import ModeRefused
from rigwatch.station import Station

MESSAGE_TYPES = ("subscribe", "unsubscribe", "get_sensors", "system_mode", "ping")


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SubscribeMsg(_Msg):
    type: Literal["subscribe"]
    device: str
    channels: list[str] | None = None
    display_rate_hz: float | None = Field(default=None, gt=0)
    fps: float | None = Field(default=None, gt=0)


class UnsubscribeMsg(_Msg):
    type: Literal["unsubscribe"]
    device: str


class SystemModeMsg(_Msg):
    type: Literal["system_mode"]
    mode: str | None = None


class _Rejected(Exception):
    """A client message refused with an error frame of ``code``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class LiveSession:
    """Serves one accepted WebSocket until the client disconnects.

    Args:
        ws: the accepted connection.
        hub: the station's live hub (frames, subscriptions, statistics).
        station: for sensors and the operating mode.
    """

    def __init__(self, ws: WebSocket, hub: LiveHub, station: Station) -> None:
        self.ws = ws
        self.hub = hub
        self.station = station
        self.subs: dict[str, Subscription] = {}
        self._send_lock = asyncio.Lock()
        self._max_bytes = station.config.live.max_message_bytes

    async def run(self) -> None:
        """Receive and answer messages until the client goes; then end every subscription."""
        self.hub.stats.clients += 1
        try:
            while True:
                msg = await self.ws.receive()
                if msg["type"] == "websocket.disconnect":
                    return
                try:
                    await self._handle(self._decode(msg.get("bytes"), msg.get("text")))
                except _Rejected as exc:
                    self.station.counters.inc(f"ws.{exc.code}", message=exc.message)
                    await self.send(error_frame(exc.code, exc.message))
        except WebSocketDisconnect:
            pass
        finally:
            for sub in self.subs.values():
                self._cancel(sub)
            self.hub.stats.clients -= 1

    async def send(self, data: bytes) -> None:
        """Send one binary message; subscriptions' tasks and replies never interleave."""
        async with self._send_lock:
            await self.ws.send_bytes(data)

    # -- decoding and dispatch -----------------------------------------------------------------
    def _decode(self, raw: bytes | None, text: str | None) -> dict[str, Any]:
        size = len(raw) if raw is not None else len((text or "").encode())
        if size > self._max_bytes:
            raise _Rejected(
                "oversized", f"message of {size} bytes exceeds the limit of {self._max_bytes} bytes"
            )
        try:
            if raw is not None:
                obj = msgpack.unpackb(raw, raw=False, strict_map_key=False)
            else:
                obj = json.loads(text or "")
        except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError):
            raise _Rejected(
                "malformed", f"message is not valid {'MessagePack' if raw is not None else 'JSON'}"
            ) from None
        if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
            raise _Rejected("malformed", "message must be a map with a string field 'type'")
        return obj

    async def _handle(self, obj: dict[str, Any]) -> None:
        mtype = obj["type"]
        handler = {
            "subscribe": self._subscribe,
            "unsubscribe": self._unsubscribe,
            "get_sensors": self._get_sensors,
            "system_mode": self._system_mode,
            "ping": self._ping,
        }.get(mtype)
        if handler is None:
            raise _Rejected(
                "unknown_type",
                f"unknown message type {mtype!r}; expected one of {', '.join(MESSAGE_TYPES)}",
            )
        try:
            await handler(obj)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            field = ".".join(str(p) for p in first["loc"])
            raise _Rejected("invalid_field", f"{mtype}.{field}: {first['msg']}") from None
        except SubscriptionError as exc:
            raise _Rejected(exc.code, exc.message) from None

    # -- one method per message type -----------------------------------------------------------
    async def _subscribe(self, obj: dict[str, Any]) -> None:
        m = SubscribeMsg.model_validate(obj)
        sub = self.hub.make_subscription(m.device, m.channels, m.display_rate_hz, m.fps)
        old = self.subs.pop(m.device, None)
        if old is not None:
            self._cancel(old)
        info = sub.stream.info
        await self.send(
            pack(
                {
                    "type": "subscribed",
                    "device": m.device,
                    "channels": sub.channel_names,
                    "units": [info.channels[i].unit for i in sub.columns],
                    "sample_rate_hz": info.sample_rate_hz,
                    "bucket_size": sub.bucket_size,
                    "fps": 1.0 / sub.frame_interval_s,
                }
            )
        )
        sub.task = asyncio.create_task(self._stream(sub))
        self.subs[m.device] = sub

    async def _unsubscribe(self, obj: dict[str, Any]) -> None:
        m = UnsubscribeMsg.model_validate(obj)
        old = self.subs.pop(m.device, None)
        if old is not None:
            self._cancel(old)
        await self.send(pack({"type": "unsubscribed", "device": m.device}))

    async def _get_sensors(self, _obj: dict[str, Any]) -> None:
        await self.send(pack({"type": "sensors", **self.station.sensors()}))

    async def _system_mode(self, obj: dict[str, Any]) -> None:
        m = SystemModeMsg.model_validate(obj)
        if m.mode is not None:
            try:
                self.station.set_mode(m.mode)
            except ModeRefused as exc:
                raise _Rejected("mode_refused", str(exc)) from None
        await self.send(pack({"type": "system_mode", "mode": self.station.mode}))

    async def _ping(self, _obj: dict[str, Any]) -> None:
        await self.send(pack({"type": "pong"}))

    # -- subscriptions ---------------------------------------------------------------------------
    async def _stream(self, sub: Subscription) -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, ConnectionError):
            await self.hub.run_subscription(sub, self.send)

    @staticmethod
    def _cancel(sub: Subscription) -> None:
        if sub.task is not None:
            sub.task.cancel()

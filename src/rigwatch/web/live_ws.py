"""One client connection of the live WebSocket ``/ws``: messages in, frames out.

A :class:`LiveSession` reads the client's messages (MessagePack, or JSON text), validates them,
answers each type with one method, and runs one frame-sending task per subscribed device.

- A bad message is answered with an ``error`` frame and counted (``ws.<code>``); a fault while
  answering one is answered with an ``internal`` error and counted (``ws.internal_error``). The
  connection stays open in both cases.
- A frame the connection does not take within ``live.send_timeout_s`` (the client does not
  read) evicts the client: close code 1008, counted ``ws.evicted_slow_client``.
- Beyond ``live.max_clients`` connections, a new one is closed at once: code 1013, counted
  ``ws.refused_max_clients``.
- A message larger than the server's WebSocket limit closes the connection (code 1009, by the
  server's WebSocket layer), counted ``ws.closed_oversized``; so do a text message that is not
  UTF-8 (1007, ``ws.closed_invalid_data``) and a frame breaking RFC 6455 (1002,
  ``ws.closed_protocol_error``).

The protocol is described in ``docs/live-protocol.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, Protocol

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
from rigwatch.station import Station
from rigwatch.web import views
from rigwatch.web.acoustics_feed import AcousticsFeed, FeedSubscription

log = logging.getLogger(__name__)

MESSAGE_TYPES = (
    "subscribe",
    "unsubscribe",
    "get_sensors",
    "system_mode",
    "ping",
    "subscribe_acoustics",
    "unsubscribe_acoustics",
)

MAX_DEPTH = 32
"""Deepest nesting of maps and arrays in a client message; the message's own map is level 1."""

CLOSE_POLICY_VIOLATION = 1008
CLOSE_TRY_AGAIN_LATER = 1013

CLOSES_COUNTED = {
    1002: ("ws.closed_protocol_error", "protocol error"),
    1007: ("ws.closed_invalid_data", "invalid data"),
    1009: ("ws.closed_oversized", "message too big"),
}
"""Close codes of a connection the server's WebSocket layer ends on bad input: counter, meaning."""


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SubscribeMsg(_Msg):
    type: Literal["subscribe"]
    device: str
    channels: list[str] | None = None
    display_rate_hz: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    fps: float | None = Field(default=None, gt=0, allow_inf_nan=False)


class UnsubscribeMsg(_Msg):
    type: Literal["unsubscribe"]
    device: str


class SubscribeAcousticsMsg(_Msg):
    type: Literal["subscribe_acoustics"]
    maps: bool = True
    audio: bool = False


class SystemModeMsg(_Msg):
    type: Literal["system_mode"]
    mode: str | None = None


class SessionExtension(Protocol):
    """More message types for a session (the control channel): ``handlers`` by type (they
    take precedence over the session's own), ``close()`` when the session ends."""

    @property
    def handlers(self) -> Mapping[str, Callable[[dict[str, Any]], Awaitable[None]]]:
        """Message handlers by type."""
        ...

    def close(self) -> None:
        """The session ended."""
        ...


class MessageRejected(Exception):
    """A client message refused with an ``error`` frame.

    Attributes:
        code: the frame's code (``malformed``, ``too_deep``, ``oversized``, ``unknown_type``...,
            see ``docs/live-protocol.md``); counted as ``ws.<code>``.
        message: what was wrong with which field.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ClientGone(Exception):
    """The connection takes no more frames: it closed, or the client was evicted."""


_KINDS = {
    list: "an array",
    dict: "a map",
    bytes: "binary",
    int: "an integer",
    float: "a float",
    bool: "a boolean",
    type(None): "nil",
    msgpack.ExtType: "an extension type",
    msgpack.Timestamp: "a timestamp",
}


def _string_keys(pairs: list[tuple[Any, Any]]) -> dict[str, Any]:
    for key, _ in pairs:
        if not isinstance(key, str):
            kind = _KINDS.get(type(key), type(key).__name__)
            raise MessageRejected("malformed", f"map keys must be strings; one is {kind}")
    return dict(pairs)


def _nests_deeper_than(obj: dict[str, Any], limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        items = value.values() if isinstance(value, dict) else value
        stack.extend((v, depth + 1) for v in items if isinstance(v, dict | list))
    return False


def _too_deep() -> MessageRejected:
    return MessageRejected(
        "too_deep", f"message is nested deeper than {MAX_DEPTH} levels of maps and arrays"
    )


def decode_message(raw: bytes | None, text: str | None, max_bytes: int) -> dict[str, Any]:
    """Decode one client message: MessagePack when ``raw`` is given, else JSON ``text``.

    Args:
        raw: a binary message, or ``None``.
        text: a text message (used when ``raw`` is ``None``).
        max_bytes: largest message accepted, in bytes (UTF-8 for text).

    Returns:
        the message: a map with string keys, nested at most :data:`MAX_DEPTH` levels, with a
        string ``type``.

    Raises:
        MessageRejected: ``oversized``, ``too_deep`` or ``malformed``. Nothing else is raised,
            whatever the input.
    """
    data = raw if raw is not None else (text or "").encode("utf-8", "surrogatepass")
    if len(data) > max_bytes:
        raise MessageRejected(
            "oversized", f"message of {len(data)} bytes exceeds the limit of {max_bytes} bytes"
        )
    fmt = "MessagePack" if raw is not None else "JSON"
    try:
        if raw is not None:
            obj = msgpack.unpackb(
                raw, raw=False, strict_map_key=False, object_pairs_hook=_string_keys
            )
        else:
            obj = json.loads(text or "")
    except MessageRejected:
        raise
    except (RecursionError, msgpack.StackError):
        raise _too_deep() from None
    except Exception as exc:  # whatever the decoder raises, the input is at fault
        reason = str(exc)[:200] or type(exc).__name__
        raise MessageRejected("malformed", f"message is not valid {fmt}: {reason}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise MessageRejected("malformed", "message must be a map with a string field 'type'")
    if _nests_deeper_than(obj, MAX_DEPTH):
        raise _too_deep()
    return obj


class LiveSession:
    """Serves one accepted WebSocket until the client disconnects or is evicted.

    Args:
        ws: the accepted connection.
        hub: the station's live hub (frames, subscriptions, client count, ``live`` config).
        station: for sensors, the operating mode and the counters.
        may_command: the connection may send commands (a ``system_mode`` change): it came
            with the token, or none is required. Reading is always allowed.
        acoustics: the acoustic camera's frames (``subscribe_acoustics``), if it has one.
        extension: builds the session's extra message handlers (the control channel:
            ``system_mode`` changes, valve and motor commands, authority, heartbeat). Without
            it, ``system_mode`` only reads the mode.
    """

    def __init__(
        self,
        ws: WebSocket,
        hub: LiveHub,
        station: Station,
        *,
        may_command: bool = True,
        acoustics: AcousticsFeed | None = None,
        extension: Callable[[LiveSession], SessionExtension] | None = None,
    ) -> None:
        self.ws = ws
        self.hub = hub
        self.station = station
        self.may_command = may_command
        self.counters = station.counters
        self.subs: dict[str, Subscription] = {}
        self._send_lock = asyncio.Lock()
        self._max_bytes = hub.config.max_message_bytes
        self._send_timeout_s = hub.config.send_timeout_s
        self._evicted: str | None = None
        self._receiving: asyncio.Task | None = None
        self.acoustics = acoustics
        self._acoustic: tuple[FeedSubscription, asyncio.Task] | None = None
        self._make_extension = extension
        self._extension: SessionExtension | None = None

    async def run(self) -> None:
        """Receive and answer messages until the client goes or is evicted; then end every
        subscription. With ``live.max_clients`` sessions running, close at once (1013)."""
        if not self.hub.admit():
            limit = self.hub.config.max_clients
            reason = f"the station serves at most {limit} live clients; try again later"
            self.counters.inc("ws.refused_max_clients", message=f"connection refused: {reason}")
            await self._close(CLOSE_TRY_AGAIN_LATER, reason)
            return
        if self._make_extension is not None:
            self._extension = self._make_extension(self)
        receiving = asyncio.create_task(self._receive())
        self._receiving = receiving
        try:
            await asyncio.wait((receiving,))
            if self._evicted is not None:
                await self._close(CLOSE_POLICY_VIOLATION, self._evicted)
            elif not receiving.cancelled():
                receiving.result()
        finally:
            receiving.cancel()
            for sub in list(self.subs.values()):
                self._cancel(sub)
            self._end_acoustics()
            if self._extension is not None:
                self._extension.close()
            self.hub.release()

    async def send(self, data: bytes) -> None:
        """Send one binary message; subscriptions' tasks and replies never interleave.

        A message the connection does not take within ``live.send_timeout_s`` evicts the
        client: its subscriptions and the reading of its messages end, and the session closes
        the connection with code 1008.

        Raises:
            ClientGone: the connection closed, or the client is evicted.
        """
        async with self._send_lock:
            if self._evicted is not None:
                raise ClientGone(self._evicted)
            try:
                async with asyncio.timeout(self._send_timeout_s):
                    await self.ws.send_bytes(data)
            except TimeoutError:
                self._evict()
                raise ClientGone(self._evicted) from None
            except (WebSocketDisconnect, RuntimeError, OSError):
                raise ClientGone("connection closed") from None

    # -- connection --------------------------------------------------------------------------
    async def _receive(self) -> None:
        while True:
            msg = await self.ws.receive()
            if msg["type"] == "websocket.disconnect":
                self._count_close(msg)
                return
            try:
                await self._answer(msg.get("bytes"), msg.get("text"))
            except ClientGone:
                return

    def _count_close(self, msg: Mapping[str, Any]) -> None:
        code = msg.get("code")
        if code in CLOSES_COUNTED:
            counter, meaning = CLOSES_COUNTED[code]
            reason = msg.get("reason") or ""
            self.counters.inc(
                counter,
                message=f"connection closed with code {code} ({meaning})"
                + (f": {reason}" if reason else ""),
            )

    def _evict(self) -> None:
        self._evicted = f"client did not read: a frame waited {self._send_timeout_s:g} s to be sent"
        self.counters.inc("ws.evicted_slow_client", message=f"{self._evicted}; closing with 1008")
        current = asyncio.current_task()
        for sub in self.subs.values():
            if sub.task is not current:
                self._cancel(sub)
        if self._receiving is not None and self._receiving is not current:
            self._receiving.cancel()

    async def _close(self, code: int, reason: str) -> None:
        """Close with ``code`` and ``reason``, waiting at most ``send_timeout_s`` for the
        connection to take the close frame."""
        with contextlib.suppress(TimeoutError, WebSocketDisconnect, RuntimeError, OSError):
            async with asyncio.timeout(self._send_timeout_s), self._send_lock:
                await self.ws.close(code, reason)

    # -- decoding and dispatch -----------------------------------------------------------------
    async def _answer(self, raw: bytes | None, text: str | None) -> None:
        mtype = "?"
        try:
            obj = decode_message(raw, text, self._max_bytes)
            mtype = obj["type"]
            await self._handle(obj)
        except MessageRejected as exc:
            self.counters.inc(f"ws.{exc.code}", message=exc.message)
            await self.send(error_frame(exc.code, exc.message))
        except ClientGone:
            raise
        except Exception as exc:
            log.exception("live client: answering a %r message failed", mtype)
            self.counters.inc(
                "ws.internal_error", message=f"{mtype!r} message: {type(exc).__name__}: {exc}"
            )
            await self.send(
                error_frame(
                    "internal",
                    f"internal error while answering a {mtype!r} message; the station logged it",
                )
            )

    async def _handle(self, obj: dict[str, Any]) -> None:
        mtype = obj["type"]
        own: dict[str, Callable[[dict[str, Any]], Awaitable[None]]] = {
            "subscribe": self._subscribe,
            "unsubscribe": self._unsubscribe,
            "get_sensors": self._get_sensors,
            "system_mode": self._system_mode,
            "ping": self._ping,
            "subscribe_acoustics": self._subscribe_acoustics,
            "unsubscribe_acoustics": self._unsubscribe_acoustics,
        }
        extra = self._extension.handlers if self._extension is not None else {}
        handler = extra.get(mtype, own.get(mtype))
        if handler is None:
            shown = mtype if len(mtype) <= 64 else mtype[:64] + "..."
            known = [*MESSAGE_TYPES, *(t for t in extra if t not in MESSAGE_TYPES)]
            raise MessageRejected(
                "unknown_type",
                f"unknown message type {shown!r}; expected one of {', '.join(known)}",
            )
        try:
            await handler(obj)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            field = ".".join(str(p) for p in first["loc"])
            raise MessageRejected("invalid_field", f"{mtype}.{field}: {first['msg']}") from None
        except SubscriptionError as exc:
            raise MessageRejected(exc.code, exc.message) from None

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
        await self.send(pack({"type": "sensors", **views.sensors(self.station).model_dump()}))

    async def _system_mode(self, obj: dict[str, Any]) -> None:
        m = SystemModeMsg.model_validate(obj)
        if m.mode is not None:
            raise MessageRejected(
                "mode_refused", "this connection has no control channel: the mode is read-only"
            )
        await self.send(pack({"type": "system_mode", "mode": self.station.mode}))

    async def _ping(self, _obj: dict[str, Any]) -> None:
        await self.send(pack({"type": "pong"}))

    async def _subscribe_acoustics(self, obj: dict[str, Any]) -> None:
        m = SubscribeAcousticsMsg.model_validate(obj)
        if self.acoustics is None:
            raise MessageRejected("no_acoustics", "this station has no acoustic camera")
        self._end_acoustics()
        await self.send(pack({"type": "acoustics_subscribed", "maps": m.maps, "audio": m.audio}))
        sub = self.acoustics.subscribe(maps=m.maps, audio=m.audio)
        self._acoustic = (sub, asyncio.create_task(self._stream_acoustics(sub)))

    async def _unsubscribe_acoustics(self, _obj: dict[str, Any]) -> None:
        self._end_acoustics()
        await self.send(pack({"type": "acoustics_unsubscribed"}))

    async def _stream_acoustics(self, sub: FeedSubscription) -> None:
        with contextlib.suppress(ClientGone):
            while True:
                for frame in await sub.next_frames():
                    await self.send(frame)

    def _end_acoustics(self) -> None:
        if self._acoustic is not None and self.acoustics is not None:
            sub, task = self._acoustic
            self.acoustics.unsubscribe(sub)
            task.cancel()
        self._acoustic = None

    # -- subscriptions ---------------------------------------------------------------------------
    async def _stream(self, sub: Subscription) -> None:
        try:
            await self.hub.run_subscription(sub, self.send)
        except ClientGone:
            pass
        except Exception as exc:
            device = sub.stream.name
            log.exception("live client: frames of device %r failed", device)
            if self.subs.get(device) is sub:
                del self.subs[device]
            self.counters.inc(
                "ws.internal_error",
                message=f"frames of device {device!r}: {type(exc).__name__}: {exc}",
            )
            with contextlib.suppress(ClientGone):
                await self.send(
                    error_frame(
                        "internal",
                        f"internal error while sending frames of device {device!r}; its "
                        "subscription ended, subscribe again",
                        device=device,
                    )
                )

    @staticmethod
    def _cancel(sub: Subscription) -> None:
        if sub.task is not None:
            sub.task.cancel()

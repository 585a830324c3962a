"""Driver ``s7``: values of a Siemens S7 PLC polled as station channels, through python-snap7
(ISO-on-TCP, port 102), so a PLC that is controlled is monitored too.

Each channel is one PLC value: an area (``M`` markers, ``DB`` a data block, ``I`` inputs,
``Q`` outputs), a byte offset (and a bit for ``bool``), and a type as in STEP 7: ``bool`` (a
bit, 0.0/1.0), ``int16`` (INT), ``int32`` (DINT), ``real`` (REAL: IEEE 754 float32). S7 CPUs
store values big-endian. Every ``poll_interval_s`` the driver reads each area's span holding
the configured channels (one request per area and DB, split at :data:`MAX_READ_BYTES` to fit
an S7 PDU), decodes one row of raw values and stamps it with the time the request was sent;
the engine applies each channel's linear calibration ``gain * raw + offset``.

A PLC that stops answering (a read fails: connection refused, closed, timed out) makes the
link ``unknown`` (:meth:`S7Device.link_status`); :meth:`S7Device.read_block` raises that once
and the poll thread reconnects with capped exponential backoff
(:class:`~rigwatch.devices.reconnect.LinkHealth`), counting ``s7.<device>.link_lost``,
``reconnect`` and ``reconnect_failed``. Rows resume once a read succeeds again.

The simulated twin (:class:`SimulatedS7Device`) is python-snap7's own server
(:class:`S7SimServer`) in-process on a free loopback port, with the areas the channels
address, and a thread writing a plausible process into them.
"""

from __future__ import annotations

import contextlib
import logging
import math
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from rigwatch.config.base import ChannelConfig, DeviceConfig, check_unique_channels
from rigwatch.counters import Counters
from rigwatch.devices.protocols import Block, StreamInfo, channel_infos
from rigwatch.devices.reconnect import Backoff, LinkHealth, LinkStatus
from rigwatch.devices.registry import Driver, DriverContext
from rigwatch.errors import DeviceError

log = logging.getLogger(__name__)

S7Area = Literal["M", "DB", "I", "Q"]
S7Type = Literal["bool", "int16", "int32", "real"]

TYPE_FORMATS: dict[str, tuple[int, str]] = {
    "bool": (1, ">B"),
    "int16": (2, ">h"),
    "int32": (4, ">i"),
    "real": (4, ">f"),
}
"""Bytes and big-endian struct format of each type (STEP 7 BOOL, INT, DINT, REAL)."""

MAX_READ_BYTES = 200
"""Longest single read: an S7 PDU of 240 bytes (the smallest CPUs negotiate) holds at most
222 bytes of data in a read reply; 200 leaves room."""


class S7ChannelConfig(ChannelConfig):
    """One PLC value read as a channel.

    Attributes:
        area: ``M`` (markers), ``DB`` (data block ``db``), ``I`` (inputs), ``Q`` (outputs).
        db: data block number (``area = "DB"`` only).
        byte: byte offset in the area.
        bit: bit 0-7 (``type = "bool"`` only).
        type: ``bool``, ``int16`` (INT), ``int32`` (DINT) or ``real`` (REAL).
    """

    area: S7Area
    db: int = Field(default=0, ge=0, le=65535)
    byte: int = Field(ge=0, le=65535)
    bit: int | None = Field(default=None, ge=0, le=7)
    type: S7Type = "real"

    @model_validator(mode="after")
    def _check(self) -> S7ChannelConfig:
        if self.area == "DB" and self.db < 1:
            raise ValueError(f"channel {self.name!r}: area DB needs db >= 1")
        if self.area != "DB" and self.db != 0:
            raise ValueError(f"channel {self.name!r}: db is only for area DB")
        if (self.type == "bool") != (self.bit is not None):
            raise ValueError(
                f"channel {self.name!r}: "
                + ("a bool needs bit (0-7)" if self.type == "bool" else f"a {self.type} has no bit")
            )
        return self

    @property
    def size(self) -> int:
        """Bytes the value takes."""
        return TYPE_FORMATS[self.type][0]

    @property
    def address(self) -> str:
        """STEP 7 notation (``M0.0``, ``DB1.DBD4``, ``IW2``), for messages."""
        letter = {1: "B", 2: "W", 4: "D"}[self.size]
        if self.area == "DB":
            if self.type == "bool":
                return f"DB{self.db}.DBX{self.byte}.{self.bit}"
            return f"DB{self.db}.DB{letter}{self.byte}"
        if self.type == "bool":
            return f"{self.area}{self.byte}.{self.bit}"
        return f"{self.area}{letter}{self.byte}"


class S7DeviceConfig(DeviceConfig):
    """A Siemens S7 PLC polled through python-snap7.

    Attributes:
        host: the PLC's address.
        rack, slot: of the CPU (S7-300/400: rack 0, slot 2; S7-1200/1500: 0 and 1 (default),
            as the ball mill's).
        tcp_port: ISO-on-TCP port (102).
        poll_interval_s: time between two reads of every channel (the row rate is its inverse).
        channels: the values to read, each with its calibration.
        reconnect: backoff between reconnection attempts.
    """

    driver: Literal["s7"]
    host: str = Field(min_length=1)
    rack: int = Field(default=0, ge=0, le=7)
    slot: int = Field(default=1, ge=0, le=31)
    tcp_port: int = Field(default=102, ge=1, le=65535)
    poll_interval_s: float = Field(default=0.1, ge=0.001, le=3600)
    channels: list[S7ChannelConfig] = Field(min_length=1)
    reconnect: Backoff = Field(default_factory=Backoff)

    @model_validator(mode="after")
    def _unique(self) -> S7DeviceConfig:
        channels: list[ChannelConfig] = list(self.channels)
        check_unique_channels(channels)
        return self


@dataclass(frozen=True)
class ReadSpan:
    """One read request: ``size`` bytes from ``start`` in an area, and the channels in it."""

    area: S7Area
    db: int
    start: int
    size: int
    channels: tuple[tuple[int, S7ChannelConfig], ...]  # (column, channel)


def plan_reads(
    channels: Iterable[S7ChannelConfig], max_bytes: int = MAX_READ_BYTES
) -> list[ReadSpan]:
    """Group channels into as few reads as possible: per area and DB, consecutive channels
    (by byte offset) share a read while it stays within ``max_bytes``."""
    by_area: dict[tuple[S7Area, int], list[tuple[int, S7ChannelConfig]]] = {}
    for col, ch in enumerate(channels):
        by_area.setdefault((ch.area, ch.db), []).append((col, ch))
    spans: list[ReadSpan] = []
    for (area, db), items in by_area.items():
        items.sort(key=lambda t: t[1].byte)
        group: list[tuple[int, S7ChannelConfig]] = []
        start = end = 0
        for col, ch in items:
            ch_end = ch.byte + ch.size
            if group and max(end, ch_end) - start > max_bytes:
                spans.append(ReadSpan(area, db, start, end - start, tuple(group)))
                group = []
            if not group:
                start, end = ch.byte, ch_end
            group.append((col, ch))
            end = max(end, ch_end)
        spans.append(ReadSpan(area, db, start, end - start, tuple(group)))
    return spans


def decode(channel: S7ChannelConfig, data: bytes | bytearray, offset: int) -> float:
    """The raw value of ``channel`` from ``data`` read at byte ``offset`` of its area."""
    at = channel.byte - offset
    _, fmt = TYPE_FORMATS[channel.type]
    if channel.type == "bool":
        assert channel.bit is not None
        return float((data[at] >> channel.bit) & 1)
    return float(struct.unpack_from(fmt, data, at)[0])


def encode(channel: S7ChannelConfig, value: float, data: bytearray, offset: int = 0) -> None:
    """Write ``value`` into ``data`` (an area's bytes starting at ``offset``) as the PLC
    stores it (for the simulated PLC and tests)."""
    at = channel.byte - offset
    if channel.type == "bool":
        assert channel.bit is not None
        mask = 1 << channel.bit
        data[at] = (data[at] | mask) if value else (data[at] & ~mask & 0xFF)
        return
    _, fmt = TYPE_FORMATS[channel.type]
    v: float | int = float(value) if channel.type == "real" else int(value)
    struct.pack_into(fmt, data, at, v)


def _client_area(area: S7Area) -> Any:
    from snap7.type import Area

    return {"M": Area.MK, "Q": Area.PA, "I": Area.PE, "DB": Area.DB}[area]


ClientFactory = Callable[[], Any]
"""Builds a snap7 client (``snap7.client.Client`` by default)."""


class S7Device:
    """A PLC's values as an acquisition device (see the module docstring).

    Args:
        config: the ``s7`` device entry.
        counters: where problems are counted (``s7.<device>.<event>``).
        client_factory: builds the snap7 client (tests).
        max_pending_rows: rows kept while nobody calls :meth:`read_block`.
    """

    def __init__(
        self,
        config: S7DeviceConfig,
        counters: Counters | None = None,
        client_factory: ClientFactory | None = None,
        *,
        max_pending_rows: int = 100_000,
    ) -> None:
        self.config = config
        self.counters = counters if counters is not None else Counters()
        self._client_factory = client_factory
        self._spans = plan_reads(config.channels)
        self._n = len(config.channels)
        self._info = StreamInfo(
            device=config.name,
            driver="s7",
            sample_rate_hz=1.0 / config.poll_interval_s,
            channels=channel_infos(list(config.channels)),
            extra={
                "host": config.host,
                "tcp_port": str(config.tcp_port),
                "rack": str(config.rack),
                "slot": str(config.slot),
                "addresses": ",".join(c.address for c in config.channels),
            },
        )
        self.health = LinkHealth(config.reconnect)
        self._prefix = f"s7.{config.name}."
        self._cond = threading.Condition()
        self._rows: deque[tuple[int, np.ndarray]] = deque(maxlen=max_pending_rows)
        self._error: DeviceError | None = None
        self._client: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = False
        self._state_lock = threading.Lock()
        self.polls = 0

    @property
    def endpoint(self) -> str:
        """``host:port rack r slot s``, for messages."""
        c = self.config
        return f"{c.host}:{c.tcp_port} rack {c.rack} slot {c.slot}"

    # -- AcquisitionDevice -------------------------------------------------------------------

    def describe(self) -> StreamInfo:
        """Device name, driver ``"s7"``, rate ``1 / poll_interval_s`` and the channels;
        ``extra`` holds host, port, rack, slot and the channels' STEP 7 addresses."""
        return self._info

    def start(self) -> None:
        """Connect to the PLC, read once (so a wrong address fails here) and start polling.

        Raises:
            DeviceError: no connection, or a configured address cannot be read (the message
                names the endpoint or the address).
        """
        with self._state_lock:
            if self._started:
                return
            client = self._connect()
            try:
                row = self._poll(client)
            except Exception as exc:
                self._disconnect(client)
                raise DeviceError(f"{self.config.name}: first read failed: {exc}") from exc
            self._client = client
            self.health.opened(self.endpoint, first=True)
            self._push(time.time_ns(), row)
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(self._stop,), name=f"s7-{self.config.name}", daemon=True
            )
            self._started = True
            self._thread.start()
            log.info(
                "%s: polling PLC %s every %g s",
                self.config.name,
                self.endpoint,
                self.config.poll_interval_s,
            )

    def stop(self) -> None:
        """Stop polling and disconnect; safe to call twice."""
        with self._state_lock:
            self._started = False
            self._stop.set()
            thread, self._thread = self._thread, None
            if thread is not None:
                thread.join(5.0)
            client, self._client = self._client, None
            if client is not None:
                self._disconnect(client)
            self.health.closed()
        with self._cond:
            self._cond.notify_all()

    def read_block(self, timeout_s: float) -> Block | None:
        """The rows polled since the previous call (waiting ``block_duration_s`` for more once
        one is there, at most ``timeout_s``), or None when none came within ``timeout_s``.

        Returns:
            A :class:`Block` of ``(rows, channels)`` float32 raw values (bools 0/1) with the
            int64 ``time.time_ns()`` of each poll's request.

        Raises:
            DeviceError: not started, or the PLC stopped answering (once per loss, after the
                rows polled before it). The device reconnects by itself meanwhile.
        """
        if not self._started:
            raise DeviceError(f"{self.config.name}: device is not started")
        t0 = time.monotonic()
        block_end = t0 + min(self.config.block_duration_s, timeout_s)
        deadline = t0 + timeout_s
        error: DeviceError | None = None
        with self._cond:
            while True:
                now = time.monotonic()
                if self._rows and (now >= block_end or self._error is not None):
                    break
                if self._error is not None:
                    error, self._error = self._error, None
                    break
                if now >= deadline or not self._started:
                    break
                self._cond.wait((block_end if self._rows else deadline) - now)
            pending = list(self._rows)
            self._rows.clear()
        if error is not None:
            raise error
        if not pending:
            return None
        stamps = np.array([t for t, _ in pending], dtype=np.int64)
        data = np.ascontiguousarray(np.stack([r for _, r in pending]).astype(np.float32))
        return Block(data=data, timestamps_ns=stamps)

    def link_status(self) -> LinkStatus:
        """``connected``, ``unknown`` (reconnecting) or ``closed``, with counts."""
        return self.health.status()

    # -- internals ---------------------------------------------------------------------------

    def _connect(self) -> Any:
        if self._client_factory is not None:
            client = self._client_factory()
        else:
            import snap7

            client = snap7.client.Client()
        c = self.config
        try:
            client.connect(c.host, c.rack, c.slot, c.tcp_port)
        except Exception as exc:  # snap7 raises its own error family
            self._disconnect(client)
            raise DeviceError(f"{c.name}: cannot connect to PLC {self.endpoint}: {exc}") from exc
        return client

    @staticmethod
    def _disconnect(client: Any) -> None:
        try:
            client.disconnect()
        except Exception:
            log.debug("S7 disconnect failed", exc_info=True)

    def _poll(self, client: Any) -> np.ndarray:
        row = np.full(self._n, np.nan, dtype=np.float64)
        for span in self._spans:
            try:
                data = client.read_area(_client_area(span.area), span.db, span.start, span.size)
            except Exception as exc:
                where = f"DB{span.db}" if span.area == "DB" else span.area
                raise DeviceError(
                    f"reading {span.size} bytes at {where} byte {span.start} from PLC "
                    f"{self.endpoint} failed: {exc}"
                ) from exc
            if len(data) < span.size:
                raise DeviceError(f"PLC {self.endpoint} returned {len(data)} of {span.size} bytes")
            for col, ch in span.channels:
                row[col] = decode(ch, data, span.start)
        self.polls += 1
        return row

    def _push(self, stamp_ns: int, row: np.ndarray) -> None:
        with self._cond:
            if len(self._rows) == self._rows.maxlen:
                self._count("overflow", "rows dropped: read_block not called for too long")
            self._rows.append((stamp_ns, row))
            self._cond.notify_all()

    def _count(self, event: str, message: str) -> None:
        self.counters.inc(self._prefix + event, message=message)

    def _lose(self, reason: str) -> None:
        client, self._client = self._client, None
        if client is not None:
            self._disconnect(client)
        if self.health.lost(reason):
            log.warning("%s: PLC link lost: %s", self.config.name, reason)
            self._count("link_lost", reason)
            with self._cond:
                self._error = DeviceError(f"{self.config.name}: {reason}")
                self._cond.notify_all()

    def _reconnect(self) -> str:
        self._client = self._connect()
        return self.endpoint

    def _run(self, stop: threading.Event) -> None:
        period = self.config.poll_interval_s
        next_t = time.monotonic() + period
        while not stop.is_set():
            client = self._client
            if client is None:
                try:
                    reconnected = self.health.reconnect_when_due(stop, self._reconnect)
                except DeviceError as exc:
                    self._count("reconnect_failed", str(exc))
                    continue
                if reconnected:
                    self._count("reconnect", f"connected again to PLC {self.endpoint}")
                    log.info("%s: connected again to PLC %s", self.config.name, self.endpoint)
                    next_t = time.monotonic()
                continue
            delay = next_t - time.monotonic()
            if delay > 0 and stop.wait(delay):
                return
            stamp = time.time_ns()
            try:
                row = self._poll(client)
            except DeviceError as exc:
                if stop.is_set():
                    return
                self._lose(str(exc))
                continue
            if self.health.heard():
                log.info("%s: PLC %s answers again", self.config.name, self.endpoint)
            self._push(stamp, row)
            next_t += period
            if time.monotonic() - next_t > max(1.0, 10 * period):  # far behind: resync
                next_t = time.monotonic()


def free_tcp_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now (the OS's choice)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class S7SimServer:
    """python-snap7's server in-process on a loopback port, holding the areas given.

    Args:
        sizes: ``{(area, db): bytes}`` to register (``("M", 0)``, ``("DB", 1)``...), each at
            least 16 bytes.
        port: TCP port; a free one when None.

    Attributes:
        areas: ``{"M": bytearray, "DB1": bytearray, ...}``: the PLC's memory, shared with the
            server (write into it to change what clients read).
        port: the TCP port served on 127.0.0.1.
    """

    def __init__(self, sizes: dict[tuple[S7Area, int], int], port: int | None = None) -> None:
        import snap7
        from snap7.type import SrvArea

        kind = {"M": SrvArea.MK, "Q": SrvArea.PA, "I": SrvArea.PE, "DB": SrvArea.DB}
        self.areas: dict[str, bytearray] = {}
        self.server = snap7.server.Server(log=False)
        for (area, db), size in sizes.items():
            buf = bytearray(max(size, 16))
            self.areas[f"DB{db}" if area == "DB" else area] = buf
            self.server.register_area(kind[area], db, buf)
        self.port = port if port is not None else free_tcp_port()
        self.server.start_to("127.0.0.1", self.port)
        log.info("simulated PLC (snap7 server) on 127.0.0.1:%d", self.port)

    @classmethod
    def for_channels(
        cls, channels: Iterable[S7ChannelConfig], port: int | None = None
    ) -> S7SimServer:
        """A server with every area the channels address, large enough for them."""
        sizes: dict[tuple[S7Area, int], int] = {}
        for ch in channels:
            key = (ch.area, ch.db)
            sizes[key] = max(sizes.get(key, 0), ch.byte + ch.size)
        return cls(sizes, port)

    def area_of(self, channel: S7ChannelConfig) -> bytearray:
        """The memory holding ``channel``."""
        return self.areas[f"DB{channel.db}" if channel.area == "DB" else channel.area]

    def set(self, channel: S7ChannelConfig, value: float) -> None:
        """Store ``value`` at ``channel``'s address."""
        encode(channel, value, self.area_of(channel))

    def stop(self) -> None:
        """Stop serving; safe to call twice."""
        with contextlib.suppress(Exception):
            self.server.stop()


def simulated_value(channel: S7ChannelConfig, index: int, t: float) -> float:
    """A plausible value of the ``index``-th channel at ``t`` seconds: a slow sine for a
    ``real`` (a pressure-like 5 +- 2), a counter for integers, a bit toggling every 2 s."""
    if channel.type == "real":
        return 5.0 + 2.0 * math.sin(2.0 * math.pi * 0.1 * t + index)
    if channel.type == "bool":
        return float(int(t / 2.0 + index) % 2)
    top = 32767 if channel.type == "int16" else 2**31 - 1
    return float(int(10 * t) % top)


class SimulatedS7Device(S7Device):
    """The ``s7`` driver reading a simulated PLC (:class:`S7SimServer`) whose values follow
    :func:`simulated_value`: the same driver code over a real ISO-on-TCP connection.
    ``describe().extra`` says ``simulated``; the server starts and stops with the device."""

    def __init__(self, config: S7DeviceConfig, counters: Counters | None = None) -> None:
        super().__init__(config.model_copy(update={"host": "127.0.0.1"}), counters)
        self.plc: S7SimServer | None = None
        self._process_stop = threading.Event()
        self._process: threading.Thread | None = None
        self._info = replace(self._info, extra={**self._info.extra, "simulated": "true"})

    def start(self) -> None:
        """Start the simulated PLC and its process, then the device."""
        if self.plc is None:
            self.plc = S7SimServer.for_channels(self.config.channels)
            self.config = self.config.model_copy(update={"tcp_port": self.plc.port})
            self._write_process(0.0)
            self._process_stop = threading.Event()
            self._process = threading.Thread(
                target=self._run_process, name=f"s7-sim-{self.config.name}", daemon=True
            )
            self._process.start()
        super().start()

    def stop(self) -> None:
        """Stop the device, then the simulated PLC; safe to call twice."""
        super().stop()
        self._process_stop.set()
        if self._process is not None:
            self._process.join(2.0)
            self._process = None
        if self.plc is not None:
            self.plc.stop()
            self.plc = None

    def _write_process(self, t: float) -> None:
        assert self.plc is not None
        for i, ch in enumerate(self.config.channels):
            self.plc.set(ch, simulated_value(ch, i, t))

    def _run_process(self) -> None:
        t0 = time.monotonic()
        while not self._process_stop.wait(self.config.poll_interval_s):
            if self.plc is None:
                return
            self._write_process(time.monotonic() - t0)


def _create(config: S7DeviceConfig, ctx: DriverContext) -> S7Device:
    return S7Device(config, counters=ctx.counters)


def _simulate(config: S7DeviceConfig, ctx: DriverContext) -> S7Device:
    return SimulatedS7Device(config, counters=ctx.counters)


DRIVER = Driver(
    name="s7",
    config_model=S7DeviceConfig,
    create=_create,
    simulate=_simulate,
    description="a Siemens S7 PLC's markers, DB, inputs and outputs polled through python-snap7",
)

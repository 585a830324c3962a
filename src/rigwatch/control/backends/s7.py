"""Siemens S7 bits and words through python-snap7 (ISO-on-TCP).

Addresses are STEP 7 absolute addresses (``M0.0``, ``Q0.1``, ``DB1.DBX0.0``, ``MW2``,
``DB1.DBD4``...: :data:`~rigwatch.config.control.S7_ADDRESS_RE`). A bit is written as one bit
(``WordLen.Bit``: the CPU changes only that bit) or, with ``bit_write = "read_modify_write"``,
by reading its byte and writing it back; words are big-endian as in the CPU (a byte is
unsigned, a word an INT, a double word a DINT). Every write is read back: the read-back is the
acknowledgement. A failed write is retried once after reconnecting; then the point is
``unknown``. Inputs (``I``/``E``) are refused by the config.

A PLC that stops answering makes the link ``unknown`` (:meth:`S7Points.link_status`) and every
point ``unknown`` with it; a supervisor thread reconnects with capped exponential backoff
(:class:`~rigwatch.devices.reconnect.LinkHealth`) and, once connected, reads every point back
(acknowledged as found). Commands meanwhile still try the PLC at once (an abort sequence is
never held back by the backoff).
"""

from __future__ import annotations

import logging
import struct
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from rigwatch.config.control import S7_ADDRESS_RE, S7Config, S7PointConfig
from rigwatch.control.actuators import (
    ActuatorReading,
    ActuatorSpec,
    StateTable,
    Status,
    TransactionWorker,
    Value,
)
from rigwatch.control.backends.specs import s7_spec
from rigwatch.devices.reconnect import Backoff, LinkHealth, LinkStatus
from rigwatch.devices.s7 import S7Area, S7SimServer
from rigwatch.errors import ActuatorFault, ConfigError, DeviceError

log = logging.getLogger(__name__)

_SIZES = {
    "B": (1, ">B", 0, 255),
    "W": (2, ">h", -32768, 32767),
    "D": (4, ">i", -(2**31), 2**31 - 1),
}


@dataclass(frozen=True)
class S7Address:
    """A parsed absolute address.

    Attributes:
        area: ``"M"``, ``"Q"``, ``"I"`` or ``"DB"``.
        db: data block number (0 outside DBs).
        byte: byte offset.
        bit: bit 0-7 for a bit address, else None.
        size: bytes of a byte/word/double word (1, 2, 4); 0 for a bit.
    """

    area: str
    db: int
    byte: int
    bit: int | None
    size: int

    @property
    def text(self) -> str:
        """The address in STEP 7 notation."""
        head = f"DB{self.db}.DB" if self.area == "DB" else self.area
        if self.bit is not None:
            return f"{head}{'X' if self.area == 'DB' else ''}{self.byte}.{self.bit}"
        return f"{head}{'BWD'[(1, 2, 4).index(self.size)]}{self.byte}"


def parse_address(text: str) -> S7Address:
    """Parse ``M0.0``, ``Q1.7``, ``DB1.DBX0.0``, ``MW2``, ``DB3.DBD8`` ...; German ``E``/``A``
    are read as ``I``/``Q``.

    Raises:
        ConfigError: not an S7 absolute address.
    """
    m = S7_ADDRESS_RE.match(text.strip().upper())
    if m is None:
        raise ConfigError(f"{text!r} is not an S7 address (M0.0, MW2, Q0.1, DB1.DBX0.0...)")
    if m["db"] is not None:
        db = int(m["db"])
        if m["db_bit"] is not None:
            return S7Address("DB", db, int(m["db_bit_byte"]), int(m["db_bit"]), 0)
        return S7Address("DB", db, int(m["db_byte"]), None, _SIZES[m["db_size"]][0])
    area = {"E": "I", "A": "Q"}.get(m["area"], m["area"])
    if m["bit"] is not None:
        return S7Address(area, 0, int(m["bit_byte"]), int(m["bit"]), 0)
    return S7Address(area, 0, int(m["byte"]), None, _SIZES[m["size"]][0])


def _snap7_area(addr: S7Address) -> Any:
    from snap7.type import Area

    return {"M": Area.MK, "Q": Area.PA, "I": Area.PE, "DB": Area.DB}[addr.area]


class S7Points:
    """PLC bits and words as actuators (see the module docstring).

    Args:
        config: the ``s7`` entry.
        client_factory: builds a snap7 client (tests); ``snap7.client.Client`` by default.
        backoff: reconnection schedule after the PLC stopped answering.
    """

    def __init__(
        self, config: S7Config, client_factory: Any = None, *, backoff: Backoff | None = None
    ) -> None:
        self.config = config
        self.health = LinkHealth(backoff)
        self._supervisor: threading.Thread | None = None
        self._stop = threading.Event()
        self._client_factory = client_factory
        self._client: Any = None
        self._io_lock = threading.Lock()
        self._points: dict[str, tuple[S7PointConfig, S7Address]] = {}
        specs = []
        for p in config.points:
            addr = parse_address(p.address)
            self._points[p.name] = (p, addr)
            lo, hi = (
                (0, 1) if addr.bit is not None else _SIZES["BWD"[(1, 2, 4).index(addr.size)]][2:]
            )
            specs.append(s7_spec(p, lo, hi))
        self._specs = tuple(specs)
        self._by_name = {s.name: s for s in self._specs}
        self._state = StateTable([s.name for s in self._specs])
        self._worker = TransactionWorker(f"s7-{config.name}")

    @property
    def name(self) -> str:
        """The configured name."""
        return self.config.name

    @property
    def specs(self) -> Sequence[ActuatorSpec]:
        """The points, in configured order."""
        return self._specs

    @property
    def endpoint(self) -> str:
        """``host:port rack/slot`` for messages."""
        c = self.config
        return f"{c.host}:{c.tcp_port} rack {c.rack} slot {c.slot}"

    def connect(self) -> None:
        """Connect to the PLC and read every point's current value (acknowledged as found).

        Raises:
            DeviceError: no connection (the message names host, port, rack and slot).
        """
        with self._io_lock:
            self._connect_locked()
        self.health.opened(self.endpoint, first=True)
        self._read_all("read at connect")
        if self._supervisor is None:
            self._stop = threading.Event()
            self._supervisor = threading.Thread(
                target=self._supervise, name=f"s7-link-{self.name}", daemon=True
            )
            self._supervisor.start()

    def link_status(self) -> LinkStatus:
        """The PLC link's state (``connected``, ``unknown`` while reconnecting, ``closed``) and
        its loss and reconnection counts."""
        return self.health.status()

    def _read_all(self, why: str) -> bool:
        """Read every point (acknowledged as found); True when all could be read."""
        ok = True
        for name in self._points:
            try:
                value = self.read_value(name)
            except ActuatorFault as exc:
                self._state.unknown([name], str(exc))
                ok = False
            else:
                self._state.acknowledged({name: value}, why)
        return ok

    def _supervise(self) -> None:
        stop = self._stop
        while not stop.is_set():
            state = self.health.wait_for({"unknown", "closed"}, 1.0)
            if stop.is_set() or state == "closed":
                return
            if state != "unknown":
                continue
            try:
                if not self.health.reconnect_when_due(stop, self._reconnect):
                    continue
            except DeviceError as exc:
                log.info("%s: reconnection failed: %s", self.name, exc)
                continue
            log.info("%s: connected again to PLC %s", self.name, self.endpoint)
            if self._read_all("read after reconnecting"):
                self.health.heard()  # connected once every point is known again

    def _reconnect(self) -> str:
        with self._io_lock:
            self._drop_locked()
            self._connect_locked()
        return self.endpoint

    def _connect_locked(self) -> None:
        if self._client is not None:
            return
        if self._client_factory is None:
            import snap7

            client = snap7.client.Client()
        else:
            client = self._client_factory()
        c = self.config
        try:
            client.connect(c.host, c.rack, c.slot, c.tcp_port)
        except Exception as exc:
            raise DeviceError(f"{c.name}: cannot connect to PLC {self.endpoint}: {exc}") from exc
        self._client = client

    def _drop_locked(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.disconnect()
            except Exception:
                log.debug("S7 disconnect failed", exc_info=True)

    def close(self) -> None:
        """Disconnect; safe to call twice."""
        self._worker.close()
        self._stop.set()
        self.health.closed()
        if self._supervisor is not None:
            self._supervisor.join(5.0)
            self._supervisor = None
        with self._io_lock:
            self._drop_locked()

    def stop(self) -> None:
        """PLC points do not move on their own: nothing to stop."""

    def read(self) -> dict[str, ActuatorReading]:
        """``{point: reading}``."""
        return self._state.read()

    def apply(self, changes: Mapping[str, Value]) -> Status:
        """Write each point of ``changes`` and read it back."""
        desc = f"{self.name}: " + ", ".join(
            f"{k} ({self._points[k][1].text})={v}" for k, v in changes.items()
        )
        return self._worker.submit(desc, lambda: self._write_all(dict(changes)))

    # -- I/O ---------------------------------------------------------------------------------

    def read_value(self, name: str) -> Value:
        """Read point ``name`` from the PLC: a binary point's position or a word's integer.

        Raises:
            ActuatorFault: the read failed (after one reconnect).
        """
        _, addr = self._points[name]
        raw = self._io(lambda c: self._read_raw(c, addr), f"reading {addr.text}")
        spec = self._by_name[name]
        if addr.bit is not None:
            return spec.position(bool((raw[0] >> addr.bit) & 1))
        fmt = _SIZES["BWD"[(1, 2, 4).index(addr.size)]][1]
        return int(struct.unpack(fmt, bytes(raw))[0])

    def _read_raw(self, client: Any, addr: S7Address) -> bytearray:
        return client.read_area(_snap7_area(addr), addr.db, addr.byte, max(addr.size, 1))

    def _write_raw(self, client: Any, addr: S7Address, spec: ActuatorSpec, value: Value) -> None:
        from snap7.type import WordLen

        area = _snap7_area(addr)
        if addr.bit is not None:
            on = spec.energised(value)
            if self.config.bit_write == "bit":
                client.write_area(
                    area, addr.db, addr.byte * 8 + addr.bit, bytearray([int(on)]), WordLen.Bit
                )
            else:
                byte = client.read_area(area, addr.db, addr.byte, 1)[0]
                byte = (byte | (1 << addr.bit)) if on else (byte & ~(1 << addr.bit) & 0xFF)
                client.write_area(area, addr.db, addr.byte, bytearray([byte]))
            return
        fmt = _SIZES["BWD"[(1, 2, 4).index(addr.size)]][1]
        client.write_area(area, addr.db, addr.byte, bytearray(struct.pack(fmt, int(value))))

    def _io(self, op: Any, what: str) -> Any:
        last: Exception | None = None
        for attempt in range(self.config.retries + 1):
            with self._io_lock:
                try:
                    if attempt > 0:
                        self._drop_locked()
                    self._connect_locked()
                    result = op(self._client)
                except Exception as exc:  # snap7 raises its own error family
                    last = exc
                    log.warning("%s: %s failed (attempt %d): %s", self.name, what, attempt + 1, exc)
                    continue
            return result  # the link becomes connected when the supervisor has read every point
        message = f"{self.name}: {what} on PLC {self.endpoint} failed: {last}"
        with self._io_lock:
            self._drop_locked()
        if self.health.lost(message):
            self._state.unknown(list(self._points), message)
        raise ActuatorFault(message)

    def _write_all(self, changes: dict[str, Value]) -> str:
        self._state.pending(changes)
        for name, value in changes.items():
            _, addr = self._points[name]
            spec = self._by_name[name]
            try:
                self._io(
                    lambda c, a=addr, s=spec, v=value: self._write_raw(c, a, s, v),
                    f"writing {addr.text}",
                )
                back = self.read_value(name)
            except ActuatorFault as exc:
                self._state.unknown([name], str(exc))
                raise
            if back != value:
                msg = f"{self.name}: {addr.text} reads {back!r} after writing {value!r}"
                self._state.refused([name], msg)
                raise ActuatorFault(msg)
            self._state.acknowledged({name: value}, f"{addr.text} read back")
        return "ok"


def simulated_plc(config: S7Config) -> S7SimServer:
    """A Siemens S7 stand-in for ``--simulate``: python-snap7's own server
    (:class:`~rigwatch.devices.s7.S7SimServer`), in-process on a free loopback port, holding
    the marker, output, input and data-block areas the configured points address (zeroed).

    Args:
        config: the ``s7`` entry whose points the server must hold.

    Returns:
        The running server; point the entry at ``127.0.0.1`` and its ``port``.
    """
    sizes: dict[tuple[S7Area, int], int] = {}
    for p in config.points:
        a = parse_address(p.address)
        key = (cast(S7Area, a.area), a.db)
        sizes[key] = max(sizes.get(key, 0), a.byte + max(a.size, 1))
    sizes.setdefault(("M", 0), 1)
    server = S7SimServer(sizes)
    log.info("%s: simulated PLC on 127.0.0.1:%d", config.name, server.port)
    return server

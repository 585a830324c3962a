"""Serial ports given as ``auto``: found by scanning the USB serial adapters present.

Today's stand finds its boards by name (``ttyACM`` -> STM32 at 230 400 baud, ``ttyUSB`` or a
CH340 -> Arduino at 115 200 baud). rigwatch scans :func:`serial.tools.list_ports.comports`
and scores each port against a :class:`PortMatch`:

1. USB vendor (and product) id: the strongest evidence (STMicroelectronics ``0x0483``: the
   ST-Link virtual COM port of a Nucleo board or an STM32's own USB CDC; WCH ``0x1A86:0x7523``:
   the CH340 of Arduino clones; Arduino SA ``0x2341``; FTDI ``0x0403``);
2. a pattern in the description, manufacturer or product string (``STM32``, ``ST-Link``,
   ``CH340``, ``Arduino``), case-insensitive;
3. the device name (``/dev/ttyACM*``, ``/dev/ttyUSB*``, shell-style), as today: the weakest,
   and only for ports whose vendor id is not claimed by another known board, so that the
   STM32 fallback ``ttyACM*`` does not take a genuine Arduino Uno (``0x2341``, also
   ``ttyACM``) and vice versa.

The best-scoring port wins; ties go to the lowest device name (``ttyACM0`` before
``ttyACM1``). Vendor ids from the USB-IF assignments as reported by Linux's ``usb.ids``.
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rigwatch.errors import DeviceError

log = logging.getLogger(__name__)

AUTO = "auto"
"""The port value that asks for a scan."""

PortLister = Callable[[], Iterable[Any]]
"""Lists the ports: returns objects with pyserial's ``ListPortInfo`` attributes (``device``,
``vid``, ``pid``, ``description``, ``manufacturer``, ``product``, ``hwid``). Defaults to
:func:`serial.tools.list_ports.comports`."""


def system_ports() -> list[Any]:
    """The serial ports of this machine (:func:`serial.tools.list_ports.comports`)."""
    from serial.tools import list_ports

    return list(list_ports.comports())


@dataclass(frozen=True)
class PortMatch:
    """What identifies a board's serial port (see the module docstring).

    Attributes:
        name: the board's name, for messages (``"STM32"``).
        usb_ids: ``(vid, pid)`` pairs; ``pid`` None matches any product of the vendor.
        text_patterns: regular expressions searched (case-insensitive) in the description,
            manufacturer and product strings.
        device_globs: shell patterns of device names tried last (``/dev/ttyACM*``).
    """

    name: str
    usb_ids: tuple[tuple[int, int | None], ...] = ()
    text_patterns: tuple[str, ...] = ()
    device_globs: tuple[str, ...] = ()
    _compiled: tuple[re.Pattern[str], ...] = field(default=(), init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "_compiled", tuple(re.compile(p, re.IGNORECASE) for p in self.text_patterns)
        )

    @property
    def vendor_ids(self) -> frozenset[int]:
        """The USB vendor ids this match claims."""
        return frozenset(v for v, _ in self.usb_ids)

    def score(self, port: Any, foreign_vids: frozenset[int] = frozenset()) -> int:
        """How well ``port`` fits: 4 vendor and product id, 3 vendor id only, 2 a text
        pattern, 1 the device name, 0 no match.

        Args:
            foreign_vids: vendor ids claimed by other boards; a port with one of them is never
                matched by device name alone.
        """
        vid, pid = getattr(port, "vid", None), getattr(port, "pid", None)
        best = 0
        for v, p in self.usb_ids:
            if vid == v and (p is None or pid == p):
                best = max(best, 4 if p is not None else 3)
        if best:
            return best
        texts = [getattr(port, a, None) for a in ("description", "manufacturer", "product")]
        if any(t and rx.search(str(t)) for rx in self._compiled for t in texts):
            return 2
        device = str(getattr(port, "device", ""))
        if vid in foreign_vids:
            return 0
        if any(fnmatch.fnmatchcase(device, g) for g in self.device_globs):
            return 1
        return 0


STM32_PORTS = PortMatch(
    name="STM32",
    usb_ids=((0x0483, None),),  # STMicroelectronics: ST-Link VCP (0x374B...), CDC (0x5740)
    text_patterns=(r"STM32", r"ST-?LINK", r"STMicroelectronics"),
    device_globs=("/dev/ttyACM*",),
)
"""Today's STM32F767ZI (Nucleo-144: the ST-Link's virtual COM port, ``/dev/ttyACM*``)."""

ARDUINO_PORTS = PortMatch(
    name="Arduino",
    usb_ids=(
        (0x1A86, 0x7523),  # WCH CH340 (Arduino Uno clones)
        (0x2341, None),  # Arduino SA (genuine Uno: ATmega16U2 USB bridge)
        (0x2A03, None),  # Arduino.org
        (0x0403, 0x6001),  # FTDI FT232R (older boards)
    ),
    text_patterns=(r"CH340", r"Arduino", r"USB[- ]?SERIAL"),
    device_globs=("/dev/ttyUSB*",),
)
"""Today's Arduino Uno driving the step motors (a CH340 clone on ``/dev/ttyUSB*``)."""

KNOWN_BOARDS: tuple[PortMatch, ...] = (STM32_PORTS, ARDUINO_PORTS)
"""Boards whose vendor ids keep the others' device-name fallbacks away."""


def describe_port(port: Any) -> str:
    """``"/dev/ttyACM0 (0483:374B STM32 STLink)"`` for messages."""
    vid, pid = getattr(port, "vid", None), getattr(port, "pid", None)
    ids = f"{vid:04X}:{pid or 0:04X} " if vid is not None else ""
    desc = getattr(port, "description", None) or ""
    return f"{getattr(port, 'device', '?')} ({ids}{desc})".replace(" ()", "")


def find_port(
    match: PortMatch,
    *,
    lister: PortLister | None = None,
    exclude: Sequence[str] = (),
    others: Sequence[PortMatch] = KNOWN_BOARDS,
) -> str:
    """The device path of the port that best fits ``match``.

    Args:
        match: what the wanted board looks like.
        lister: lists the ports (tests pass a fake); :func:`system_ports` by default.
        exclude: device paths not to take (ports held by other devices).
        others: other boards whose vendor ids block the device-name fallback.

    Raises:
        DeviceError: no port fits (the message lists the ports seen).
    """
    ports = list((lister or system_ports)())
    foreign = frozenset().union(*(o.vendor_ids for o in others if o != match)) - match.vendor_ids
    scored = sorted(
        (
            (-match.score(p, foreign), str(getattr(p, "device", "")), p)
            for p in ports
            if str(getattr(p, "device", "")) not in exclude
        ),
        key=lambda t: (t[0], t[1]),
    )
    if not scored or scored[0][0] == 0:
        seen = ", ".join(describe_port(p) for p in ports) or "none"
        raise DeviceError(f"no serial port looks like the {match.name} (ports seen: {seen})")
    best = scored[0][2]
    log.info("auto port for the %s: %s", match.name, describe_port(best))
    return str(best.device)


@dataclass
class PortResolver:
    """Turns a configured port into the path to open, scanning when it is ``auto``.

    Args:
        configured: a device path, a pyserial URL, or ``"auto"``.
        match: what to scan for when ``auto``.
        lister: lists the ports (tests); the system's by default.
    """

    configured: str
    match: PortMatch
    lister: PortLister | None = None

    @property
    def is_auto(self) -> bool:
        """True when the port is found by scanning."""
        return self.configured.strip().lower() == AUTO

    def resolve(self) -> str:
        """The path to open now: the configured one, or the result of a fresh scan.

        Raises:
            DeviceError: ``auto`` and no port fits.
        """
        if not self.is_auto:
            return self.configured
        return find_port(self.match, lister=self.lister)

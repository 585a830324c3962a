"""Control events to every live client: ``valve_state`` after each acknowledged (or failed)
valve command, whoever gave it (REST, WebSocket, a scenario, an abort).

The control part calls :meth:`ControlFeed.on_event` from its own threads; the feed hands the
event to the event loop (``call_soon_threadsafe``), which sends one message to each registered
session through the session's own ``send`` (so a slow client is evicted by its session, not
waited for here).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from rigwatch.acquisition.live import pack
from rigwatch.station import Station

log = logging.getLogger(__name__)

Sender = Callable[[bytes], Awaitable[None]]


def valve_bits(station: Station) -> tuple[list[int], list[int]]:
    """``(bits, unknown)`` of the station's first 9-output valve bank: one int per output, 1
    energised (as acknowledged; the last commanded when unknown), and the indices of outputs
    whose position is unknown. ``([], [])`` when the station has none."""
    for b in station.control.commander.backends:
        specs = list(b.specs)
        if len(specs) != 9 or not all(s.binary for s in specs):
            continue
        readings = b.read()
        bits, unknown = [], []
        for i, s in enumerate(specs):
            r = readings[s.name]
            pos = r.acknowledged if r.acknowledged is not None else r.commanded
            bits.append(int(pos is not None and s.energised(pos)))
            if r.acknowledged is None:
                unknown.append(i)
        return bits, unknown
    return [], []


class ControlFeed:
    """Broadcasts control events to the live sessions of one app.

    Args:
        station: whose control part is listened to.
    """

    def __init__(self, station: Station) -> None:
        self.station = station
        self._loop: asyncio.AbstractEventLoop | None = None
        self._senders: set[Sender] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._last_bits: tuple[list[int], list[int]] | None = None

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start listening; events are sent from ``loop``."""
        self._loop = loop
        self.station.control.add_listener(self.on_event)

    def detach(self) -> None:
        """Stop listening."""
        self.station.control.remove_listener(self.on_event)
        self._loop = None

    def register(self, send: Sender) -> None:
        """Send events to a session from now on."""
        self._senders.add(send)

    def unregister(self, send: Sender) -> None:
        """Stop sending to a session."""
        self._senders.discard(send)

    def on_event(self, event: str) -> None:
        """Called by the control part (any thread)."""
        loop = self._loop
        if loop is None or event != "actuators":
            return
        with contextlib.suppress(RuntimeError):  # the loop closed
            loop.call_soon_threadsafe(self._broadcast_valves)

    def _broadcast_valves(self) -> None:
        bits, unknown = valve_bits(self.station)
        if not bits:
            return
        self.broadcast({"type": "valve_state", "valves": bits, "unknown": unknown})

    def broadcast(self, message: dict[str, Any]) -> None:
        """Send ``message`` to every registered session (call from the loop)."""
        data = pack(message)
        for send in list(self._senders):
            task = asyncio.ensure_future(self._send(send, data))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _send(send: Sender, data: bytes) -> None:
        try:
            await send(data)
        except Exception:  # the session handles its own departure (ClientGone...)
            log.debug("valve_state not sent to a departing client", exc_info=True)

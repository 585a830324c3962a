"""Control events to the live clients:

- ``valve_state {"valves", "unknown"}`` to every client after each acknowledged (or failed)
  valve command, whoever gave it (REST, WebSocket, a scenario, an abort);
- ``control_state {"seq", "state"}`` to the clients that sent ``subscribe_control``: ``state``
  is the body of ``GET /api/control`` (:func:`~rigwatch.web.control_views.control_out`),
  sent after every change of the runner (state, scenario, step, hold, abort), of the control
  authority's holder, or of an actuator's commanded or acknowledged state. ``seq`` increases
  with every state the feed makes (the answer to ``subscribe_control`` included): a frame
  whose ``seq`` is not above the last one a client applied is older and may be skipped.

The control part calls :meth:`ControlFeed.on_event` from its own threads; the feed hands the
event to the event loop (``call_soon_threadsafe``), which sends one message to each registered
session through the session's own ``send`` (so a slow client is evicted by its session, not
waited for here). Events arriving before the loop builds the next ``control_state`` share it,
and a state equal to the last one sent (but for the lease's countdown, which every heartbeat
renews) is not sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from rigwatch.acquisition.live import pack
from rigwatch.station import Station
from rigwatch.web.control_views import control_out, valve_bits

log = logging.getLogger(__name__)

Sender = Callable[[bytes], Awaitable[None]]

__all__ = ["ControlFeed", "Sender", "valve_bits"]


def _comparable(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` without the lease's countdown (it changes with every heartbeat)."""
    return {**state, "authority": {**state["authority"], "expires_in_s": None}}


class ControlFeed:
    """Broadcasts control events to the live sessions of one app.

    Args:
        station: whose control part is listened to.
    """

    def __init__(self, station: Station) -> None:
        self.station = station
        self._loop: asyncio.AbstractEventLoop | None = None
        self._senders: set[Sender] = set()
        self._state_senders: set[Sender] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._state_due = False
        self._seq = 0
        self._last_state: dict[str, Any] | None = None

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start listening; events are sent from ``loop``."""
        self._loop = loop
        self.station.control.add_listener(self.on_event)

    def detach(self) -> None:
        """Stop listening."""
        self.station.control.remove_listener(self.on_event)
        self._loop = None

    def register(self, send: Sender) -> None:
        """Send ``valve_state`` to a session from now on."""
        self._senders.add(send)

    def unregister(self, send: Sender) -> None:
        """Stop sending anything to a session."""
        self._senders.discard(send)
        self._state_senders.discard(send)

    def subscribe_state(self, send: Sender) -> bytes:
        """Send ``control_state`` to a session from now on (call from the loop).

        Returns:
            The ``control_state`` frame of now, for the session to send as its answer.
        """
        self._state_senders.add(send)
        return pack(self.state_message())

    def unsubscribe_state(self, send: Sender) -> None:
        """Stop sending ``control_state`` to a session."""
        self._state_senders.discard(send)

    def state_message(self) -> dict[str, Any]:
        """A ``control_state`` frame of now, with the next ``seq`` (call from the loop)."""
        self._seq += 1
        state = control_out(self.station).model_dump(mode="json")
        return {"type": "control_state", "seq": self._seq, "state": state}

    def on_event(self, event: str) -> None:
        """Called by the control part (any thread) with ``"actuators"``, ``"readings"``,
        ``"runner"`` or ``"authority"``."""
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed
            if event == "actuators":
                loop.call_soon_threadsafe(self._broadcast_valves)
            if not self._state_due:
                self._state_due = True
                loop.call_soon_threadsafe(self._broadcast_state)

    def _broadcast_valves(self) -> None:
        bits, unknown = valve_bits(self.station)
        if not bits:
            return
        self.broadcast({"type": "valve_state", "valves": bits, "unknown": unknown})

    def _broadcast_state(self) -> None:
        self._state_due = False  # first: an event from now on schedules another state
        if not self._state_senders:
            self._last_state = None
            return
        try:
            state = control_out(self.station).model_dump(mode="json")
        except Exception:
            log.exception("control_state not built")
            return
        comparable = _comparable(state)
        if comparable == self._last_state:
            return  # nothing new: no frame, and no seq used up (clients see no gap)
        self._last_state = comparable
        self._seq += 1
        message = {"type": "control_state", "seq": self._seq, "state": state}
        self._send_all(self._state_senders, pack(message))

    def broadcast(self, message: dict[str, Any]) -> None:
        """Send ``message`` to every registered session (call from the loop)."""
        self._send_all(self._senders, pack(message))

    def _send_all(self, senders: Iterable[Sender], data: bytes) -> None:
        for send in list(senders):
            task = asyncio.ensure_future(self._send(send, data))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _send(send: Sender, data: bytes) -> None:
        try:
            await send(data)
        except Exception:  # the session handles its own departure (ClientGone...)
            log.debug("control frame not sent to a departing client", exc_info=True)

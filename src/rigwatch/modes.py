"""The station's operating mode: an enum and the table of transitions a client may request.

Today's test stand lets any client set a free-text mode, ``"safe"`` included, which makes
nothing safe. Here a mode is one of :class:`StationMode` and a change is allowed only along
:data:`TRANSITIONS`; anything else is refused with the reason. There is deliberately no
``safe`` mode a client can set: a safe state is entered by interlocks and redlines, which act
on actuators, not by a label.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from enum import StrEnum

from rigwatch.errors import ModeRefused


class StationMode(StrEnum):
    """What the station is being used for.

    - ``idle``: acquiring and recording, nobody running anything (the start mode, as on
      today's test stand);
    - ``monitoring``: an operator is watching the machine;
    - ``test``: a test run is in progress;
    - ``maintenance``: people are working on the machine.
    """

    IDLE = "idle"
    MONITORING = "monitoring"
    TEST = "test"
    MAINTENANCE = "maintenance"


TRANSITIONS: dict[StationMode, frozenset[StationMode]] = {
    StationMode.IDLE: frozenset(
        {StationMode.MONITORING, StationMode.TEST, StationMode.MAINTENANCE}
    ),
    StationMode.MONITORING: frozenset(
        {StationMode.IDLE, StationMode.TEST, StationMode.MAINTENANCE}
    ),
    StationMode.TEST: frozenset({StationMode.IDLE, StationMode.MONITORING}),
    StationMode.MAINTENANCE: frozenset({StationMode.IDLE}),
}
"""Allowed changes: from a mode to the modes listed. A test run ends (to idle or monitoring)
before maintenance starts, and maintenance ends in idle before anything else."""

SAFE_WORDS = frozenset({"safe", "safe_state", "safing", "emergency"})


@dataclass(frozen=True)
class ModeState:
    """The current mode and when it was entered (ns since the Unix epoch, UTC)."""

    mode: StationMode
    since_ns: int


class ModeMachine:
    """Holds the station's mode and applies :data:`TRANSITIONS`. Thread-safe.

    Args:
        initial: the start mode.
    """

    def __init__(self, initial: StationMode = StationMode.IDLE) -> None:
        self._lock = threading.Lock()
        self._state = ModeState(initial, time.time_ns())

    @property
    def state(self) -> ModeState:
        """The current mode and since when."""
        return self._state

    @property
    def mode(self) -> StationMode:
        """The current mode."""
        return self._state.mode

    @staticmethod
    def parse(text: str) -> StationMode:
        """The mode named ``text`` (case-insensitive).

        Raises:
            ModeRefused: not a mode; a safe-state word gets its own explanation.
        """
        word = text.strip().lower()
        try:
            return StationMode(word)
        except ValueError:
            pass
        names = ", ".join(m.value for m in StationMode)
        if word in SAFE_WORDS:
            raise ModeRefused(
                f"{text!r} is not a mode a client can set: a safe state is entered by "
                f"interlocks acting on the actuators, not by a label (modes: {names})"
            )
        raise ModeRefused(f"unknown mode {text!r}; modes: {names}")

    def request(self, text: str) -> ModeState:
        """Change to the mode named ``text`` if :data:`TRANSITIONS` allows it; asking for the
        current mode changes nothing.

        Returns:
            The state after the request.

        Raises:
            ModeRefused: unknown mode, or a change the table does not allow (the message says
                which changes are allowed from the current mode).
        """
        target = self.parse(text)
        with self._lock:
            current = self._state.mode
            if target == current:
                return self._state
            allowed = TRANSITIONS[current]
            if target not in allowed:
                options = ", ".join(sorted(m.value for m in allowed))
                raise ModeRefused(
                    f"cannot change mode from {current.value} to {target.value}; "
                    f"from {current.value} a station may go to: {options}"
                )
            self._state = ModeState(target, time.time_ns())
            return self._state

"""The station's system mode is its scenario runner's state.

Today's test stand lets any client set a free-text ``system_mode``, ``"safe"`` included,
which makes nothing safe. Here the mode *is* the state of the scenario runner
(:class:`~rigwatch.control.states.RunnerState`: ``idle``, ``armed``, ``running``, ``holding``,
``aborting``, ``safe``, ``done``), and a ``system_mode`` request (WebSocket
``{"type": "system_mode", "mode"}``, ``POST /api/system_mode/{mode}``; the start mode is
``idle``, as today) is mapped onto one runner action by :data:`REQUESTS`:

==================  ====================================================================
requested mode      runner action
==================  ====================================================================
``idle``            ``disarm`` from ``armed``; ``reset`` from ``safe`` or ``done``
``armed``/``arm``   ``arm`` (from ``idle``)
``holding``/``hold``  ``hold`` (a running scenario holds after its current step)
``running``/``resume``  ``resume`` (from ``holding``); a scenario is *started* with
                    ``POST /api/scenario/{name}``, not by a mode
``safe``/``abort``/``emergency``/``safing``  ``abort``: the abort sequence runs and the
                    runner ends in ``safe``: a safe state reached by the actuators, not a label
==================  ====================================================================

Asking for the mode the runner is in changes nothing. ``aborting`` and ``done`` are entered
by the runner only. Anything else is refused with the reason (:class:`ModeRefused`, carrying
the runner's own explanation of a transition its table does not allow).

Who may send these requests: :mod:`rigwatch.control.authority`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from rigwatch.control.runner import ScenarioRunner
from rigwatch.control.states import RunnerState
from rigwatch.errors import ModeRefused, TransitionRefused

S = RunnerState

REQUESTS: dict[str, RunnerState] = {
    "idle": S.IDLE,
    "disarm": S.IDLE,
    "reset": S.IDLE,
    "armed": S.ARMED,
    "arm": S.ARMED,
    "holding": S.HOLDING,
    "hold": S.HOLDING,
    "running": S.RUNNING,
    "resume": S.RUNNING,
    "safe": S.SAFE,
    "abort": S.SAFE,
    "emergency": S.SAFE,
    "safing": S.SAFE,
    "aborting": S.SAFE,
    "done": S.DONE,
}
"""Words a client may send as ``system_mode``, and the runner state each asks for."""

ABORT_WORDS = frozenset(w for w, s in REQUESTS.items() if s is S.SAFE)
"""Requests that abort: they need no control authority."""


@dataclass(frozen=True)
class ModeState:
    """The current mode (the runner's state) and when it was entered (ns since the Unix
    epoch, UTC)."""

    mode: RunnerState
    since_ns: int


class SystemMode:
    """``system_mode`` requests mapped onto a scenario runner (see the module docstring).

    Args:
        runner: the station's scenario runner.
    """

    def __init__(self, runner: ScenarioRunner) -> None:
        self.runner = runner
        self._lock = threading.Lock()

    @property
    def state(self) -> ModeState:
        """The current mode and since when."""
        st = self.runner.status()
        return ModeState(st.state, st.since_ns)

    @property
    def mode(self) -> RunnerState:
        """The current mode."""
        return self.runner.state

    @staticmethod
    def parse(text: str) -> RunnerState:
        """The runner state requested by the word ``text`` (case-insensitive).

        Raises:
            ModeRefused: not a mode word (the message lists them).
        """
        word = text.strip().lower()
        target = REQUESTS.get(word)
        if target is None:
            modes = ", ".join(s.value for s in RunnerState)
            raise ModeRefused(
                f"unknown mode {text!r}; modes: {modes} (requests: {', '.join(sorted(REQUESTS))})"
            )
        return target

    @staticmethod
    def is_abort(text: str) -> bool:
        """True when ``text`` requests an abort (which needs no control authority)."""
        return text.strip().lower() in ABORT_WORDS

    def request(self, text: str, who: str, *, source: str = "api") -> ModeState:
        """Apply the runner action that mode ``text`` maps to.

        Args:
            who: the client (audited by the runner).
            source: ``api`` or ``ws`` (audited with an abort).

        Returns:
            The state after the request.

        Raises:
            ModeRefused: unknown word, a mode only the runner enters, or a transition its
                table does not allow (the message says why and what is allowed).
        """
        target = self.parse(text)
        r = self.runner
        with self._lock:
            current = r.state
            if target is current or (target is S.SAFE and current is S.ABORTING):
                return self.state
            try:
                if target is S.IDLE:
                    if current is S.ARMED:
                        r.disarm(who)
                    else:
                        r.reset(who)
                elif target is S.ARMED:
                    r.arm(who)
                elif target is S.HOLDING:
                    r.hold(who)
                elif target is S.RUNNING:
                    if current is not S.HOLDING:
                        raise ModeRefused(
                            f"cannot change mode from {current.value} to running: a scenario "
                            "starts with POST /api/scenario/{name}; running is entered from "
                            "holding by resume"
                        )
                    r.resume(who)
                elif target is S.SAFE:
                    r.abort(f"system_mode {text.strip()!r} requested by {who}", who, source=source)
                else:
                    raise ModeRefused(
                        f"cannot change mode from {current.value} to {target.value}: "
                        f"{target.value} is entered by the runner itself"
                    )
            except TransitionRefused as exc:
                raise ModeRefused(str(exc)) from None
        return self.state

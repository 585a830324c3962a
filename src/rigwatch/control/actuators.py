"""Actuators as capabilities, in bluesky's vocabulary.

An actuator is :class:`Movable` (``set(value)`` returns a :class:`Status` that completes when
the device acknowledges), :class:`Readable` (``read()``: what was commanded, what was
acknowledged) and :class:`Stoppable`. Transports are *backends* (:class:`ActuatorBackend`):
one per device (an STM32 valve bank, an Arduino, a GPIO header, a PLC), each driving several
actuators in one transaction (one ``Valves:`` line sets nine outputs at once).

Every actuator has a known *safe position*. Its state is three things, kept apart:

- ``commanded``: the last value sent;
- ``acknowledged``: the last value the device confirmed (``None``: unknown);
- ``status``: ``acknowledged`` (they agree), ``pending`` (a command in flight), ``refused``
  (the device answered ``NACK``: it did not move), ``unknown`` (the device stopped answering or
  never answered: nobody knows where the actuator is).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol, runtime_checkable

from rigwatch.errors import ActuatorFault, CommandRefused, InvalidCommand

log = logging.getLogger(__name__)

Value = str | float
"""An actuator value: ``"open"``/``"closed"``, ``"on"``/``"off"``, or a number (degrees, a PLC
word)."""

Kind = Literal["valve", "switch", "position", "word"]
StatusWord = Literal["acknowledged", "pending", "refused", "unknown"]


_TRUE_WORDS = {"1", "true", "yes"}
_FALSE_WORDS = {"0", "false", "no"}


class Status:
    """Completion of a command, like bluesky's ``Status``: done once the device acknowledged
    (success) or refused, timed out or failed (an :class:`ActuatorFault` or
    :class:`~rigwatch.errors.CommandRefused`). Thread-safe.

    Args:
        description: what was commanded (for messages).
    """

    def __init__(self, description: str) -> None:
        self.description = description
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._exc: BaseException | None = None
        self._callbacks: list[Callable[[Status], None]] = []
        self._completed = False
        self.reply: str = ""

    @classmethod
    def finished(cls, description: str, reply: str = "") -> Status:
        """A status that is already done and successful."""
        st = cls(description)
        st.set_finished(reply)
        return st

    @classmethod
    def failed(cls, description: str, exc: BaseException) -> Status:
        """A status that is already done and failed with ``exc``."""
        st = cls(description)
        st.set_exception(exc)
        return st

    @property
    def done(self) -> bool:
        """True once the command's outcome is known, either way (its callbacks may still be
        running; :meth:`wait` returns after them)."""
        return self._completed

    @property
    def success(self) -> bool:
        """True when done and acknowledged."""
        return self._completed and self._exc is None

    def exception(self) -> BaseException | None:
        """Why it failed, or None (also while not done)."""
        return self._exc

    def set_finished(self, reply: str = "") -> None:
        """Mark it acknowledged (``reply``: the device's answer, if any). Once only."""
        self._complete(None, reply)

    def set_exception(self, exc: BaseException) -> None:
        """Mark it failed. Once only."""
        self._complete(exc, "")

    def _complete(self, exc: BaseException | None, reply: str) -> None:
        # callbacks (the audit record...) run before waiters wake: once wait() returns, the
        # command's bookkeeping is done
        with self._lock:
            if self._completed:
                raise RuntimeError(f"status of {self.description} completed twice")
            self._completed = True
            self._exc = exc
            self.reply = reply
            callbacks, self._callbacks = self._callbacks, []
        for cb in callbacks:
            try:
                cb(self)
            except Exception:
                log.exception("status callback of %s failed", self.description)
        self._event.set()

    def add_callback(self, callback: Callable[[Status], None]) -> None:
        """Call ``callback(status)`` once it is done (at once when it already is)."""
        with self._lock:
            if not self._completed:
                self._callbacks.append(callback)
                return
        callback(self)

    def wait(self, timeout_s: float | None = None) -> None:
        """Block until done.

        Raises:
            TimeoutError: not done within ``timeout_s``.
            ActuatorFault, CommandRefused: the command failed (the status's exception).
        """
        if not self._event.wait(timeout_s):
            raise TimeoutError(f"{self.description}: not done within {timeout_s} s")
        if self._exc is not None:
            raise self._exc


def all_of(statuses: Sequence[Status], description: str) -> Status:
    """A status done when all of ``statuses`` are; failed with the first failure."""
    combined = Status(description)
    if not statuses:
        combined.set_finished()
        return combined
    remaining = [len(statuses)]
    lock = threading.Lock()

    def one_done(_st: Status) -> None:
        with lock:
            remaining[0] -= 1
            last = remaining[0] == 0
        if last:
            failures = [s.exception() for s in statuses if s.exception() is not None]
            if failures:
                assert failures[0] is not None
                combined.set_exception(failures[0])
            else:
                combined.set_finished("; ".join(s.reply for s in statuses if s.reply))

    for st in statuses:
        st.add_callback(one_done)
    return combined


@dataclass(frozen=True)
class ActuatorSpec:
    """What an actuator is: its kind, its safe position, its limits.

    Attributes:
        name: unique within a station.
        kind: ``valve`` (open/closed), ``switch`` (on/off), ``position`` (degrees, a motor) or
            ``word`` (an integer, a PLC word).
        safe: the safe position (``None``: a motor that simply stays where it is).
        normally: a valve's de-energised position (``closed``: normally-closed).
        hot: moving it away from ``safe`` needs an armed runner.
        minimum, maximum: limits of a ``position`` or ``word``.
        unit: ``deg`` for a motor.
    """

    name: str
    kind: Kind
    safe: Value | None
    normally: Literal["open", "closed"] = "closed"
    hot: bool = False
    minimum: float | None = None
    maximum: float | None = None
    unit: str = ""

    @property
    def binary(self) -> bool:
        """True for valves and switches."""
        return self.kind in ("valve", "switch")

    @property
    def words(self) -> tuple[str, str]:
        """``(energised-by-default word, other)``: the two positions of a binary actuator,
        ``("open", "closed")`` or ``("on", "off")``."""
        return ("open", "closed") if self.kind == "valve" else ("on", "off")

    def normalise(self, value: object) -> Value:
        """``value`` as this actuator's canonical value.

        Binary actuators take their two words (case-insensitive), ``True``/``False`` or
        ``1``/``0`` (1 = open / on); numeric ones a finite number within the limits (a
        ``word`` an integer).

        Raises:
            InvalidCommand: a value this actuator cannot take (the message says which it can).
        """
        if self.binary:
            on, off = self.words
            if isinstance(value, bool):
                return on if value else off
            if isinstance(value, int | float) and value in (0, 1):
                return on if value == 1 else off
            if isinstance(value, str):
                word = value.strip().lower()
                if word in (on, off):
                    return word
                if word in _TRUE_WORDS:
                    return on
                if word in _FALSE_WORDS:
                    return off
            raise InvalidCommand(
                f"{self.kind} {self.name}: {value!r} is not a position; use {on!r} or {off!r}"
            )
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise InvalidCommand(f"{self.name}: {value!r} is not a number")
        try:
            number = float(value)
        except ValueError:
            raise InvalidCommand(f"{self.name}: {value!r} is not a number") from None
        if not math.isfinite(number):
            raise InvalidCommand(f"{self.name}: {value!r} is not a finite number")
        if self.kind == "word" and number != int(number):
            raise InvalidCommand(f"{self.name}: {value!r} is not an integer")
        lo = -math.inf if self.minimum is None else self.minimum
        hi = math.inf if self.maximum is None else self.maximum
        if not lo <= number <= hi:
            raise InvalidCommand(
                f"{self.name}: {number:g}{self.unit and ' ' + self.unit} is out of range "
                f"[{lo:g}, {hi:g}]"
            )
        return int(number) if self.kind == "word" else number

    def energised(self, value: Value) -> bool:
        """Whether a binary actuator's output is energised in position ``value``: a
        normally-closed valve is energised open, a normally-open one energised closed, a switch
        energised on."""
        if self.kind == "switch":
            return value == "on"
        return (value == "open") if self.normally == "closed" else (value == "closed")

    def position(self, energised: bool) -> Value:
        """The position of a binary actuator whose output is ``energised``."""
        if self.kind == "switch":
            return "on" if energised else "off"
        opened = energised if self.normally == "closed" else not energised
        return "open" if opened else "closed"


@dataclass(frozen=True)
class ActuatorReading:
    """One actuator's state (see the module docstring).

    Attributes:
        commanded: last value sent, ``None`` before any command.
        acknowledged: last value confirmed by the device; ``None`` when unknown.
        since_ns: when ``status`` last changed, ns since the Unix epoch.
        message: the device's last reply or the reason of ``refused``/``unknown``.
    """

    name: str
    commanded: Value | None
    acknowledged: Value | None
    status: StatusWord
    since_ns: int
    message: str = ""


@dataclass
class StateTable:
    """Commanded and acknowledged state of a backend's actuators. Thread-safe."""

    names: Sequence[str]
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _rows: dict[str, ActuatorReading] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        now = time.time_ns()
        for n in self.names:
            self._rows[n] = ActuatorReading(n, None, None, "unknown", now, "never acknowledged")

    def pending(self, values: Mapping[str, Value]) -> None:
        """A command with ``values`` was sent."""
        now = time.time_ns()
        with self._lock:
            for n, v in values.items():
                self._rows[n] = replace(
                    self._rows[n], commanded=v, status="pending", since_ns=now, message=""
                )

    def acknowledged(self, values: Mapping[str, Value], message: str = "") -> None:
        """The device confirmed ``values``."""
        now = time.time_ns()
        with self._lock:
            for n, v in values.items():
                self._rows[n] = replace(
                    self._rows[n],
                    acknowledged=v,
                    status="acknowledged",
                    since_ns=now,
                    message=message,
                )

    def refused(self, names: Sequence[str], message: str) -> None:
        """The device refused a command for ``names``: they did not move."""
        now = time.time_ns()
        with self._lock:
            for n in names:
                self._rows[n] = replace(
                    self._rows[n], status="refused", since_ns=now, message=message
                )

    def unknown(self, names: Sequence[str], message: str) -> None:
        """Nobody knows where ``names`` are (the device stopped answering)."""
        now = time.time_ns()
        with self._lock:
            for n in names:
                self._rows[n] = replace(
                    self._rows[n],
                    acknowledged=None,
                    status="unknown",
                    since_ns=now,
                    message=message,
                )

    def read(self) -> dict[str, ActuatorReading]:
        """A copy of every row, in configured order."""
        with self._lock:
            return {n: self._rows[n] for n in self.names}

    def commanded(self, name: str) -> Value | None:
        """The last value commanded to ``name``."""
        with self._lock:
            return self._rows[name].commanded


@runtime_checkable
class Movable(Protocol):
    """Can be set to a value; the returned status completes on acknowledgement."""

    def set(self, value: object) -> Status:
        """Command ``value``. Raises CommandRefused for a value the actuator cannot take."""
        ...


@runtime_checkable
class Readable(Protocol):
    """Can tell its state."""

    def read(self) -> dict[str, ActuatorReading]:
        """``{name: reading}`` of each actuator it holds."""
        ...


@runtime_checkable
class Stoppable(Protocol):
    """Can stop moving (a motor halts; a valve holds its position)."""

    def stop(self) -> None:
        """Stop any motion in progress; safe to call at any time."""
        ...


@runtime_checkable
class ActuatorBackend(Readable, Stoppable, Protocol):
    """A device driving one or more actuators in one transaction.

    ``apply`` takes values already normalised by each actuator's :class:`ActuatorSpec`,
    returns at once and completes its status on the device's acknowledgement. Transactions of
    one backend run in order, one at a time.
    """

    @property
    def name(self) -> str:
        """The backend's configured name."""
        ...

    @property
    def specs(self) -> Sequence[ActuatorSpec]:
        """Its actuators, in configured order."""
        ...

    def connect(self) -> None:
        """Open the transport (DeviceError when it cannot)."""
        ...

    def close(self) -> None:
        """Release the transport; safe to call twice."""
        ...

    def apply(self, changes: Mapping[str, Value]) -> Status:
        """Command ``{actuator: value}`` in one transaction."""
        ...


class Actuator:
    """One actuator of a backend, as a bluesky-style :class:`Movable`, :class:`Readable`,
    :class:`Stoppable`. Commands given here bypass interlocks and the audit log: stations and
    scenarios go through :class:`~rigwatch.control.commander.Commander` instead."""

    def __init__(self, backend: ActuatorBackend, spec: ActuatorSpec) -> None:
        self.backend = backend
        self.spec = spec
        self.name = spec.name

    def set(self, value: object) -> Status:
        """Command ``value`` (normalised by the spec; CommandRefused when invalid)."""
        return self.backend.apply({self.name: self.spec.normalise(value)})

    def read(self) -> dict[str, ActuatorReading]:
        """``{name: reading}`` of this actuator."""
        return {self.name: self.backend.read()[self.name]}

    def stop(self) -> None:
        """Stop its backend's motion."""
        self.backend.stop()


class TransactionWorker:
    """Runs a backend's transactions one at a time, in order, on its own thread, and turns each
    into a :class:`Status`.

    Args:
        name: thread name.
    """

    def __init__(self, name: str) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=name)
        self._name = name

    def submit(self, description: str, work: Callable[[], str]) -> Status:
        """Run ``work()`` (returns the device's reply; raises ActuatorFault or CommandRefused)
        and complete the returned status with its outcome."""
        status = Status(description)

        def run() -> None:
            try:
                reply = work()
            except (ActuatorFault, CommandRefused) as exc:
                status.set_exception(exc)
            except Exception as exc:  # a transport bug must not leave the status open
                log.exception("%s: %s failed", self._name, description)
                status.set_exception(ActuatorFault(f"{description}: {exc}"))
            else:
                status.set_finished(reply)

        try:
            self._pool.submit(run)
        except RuntimeError:  # shut down
            status.set_exception(ActuatorFault(f"{description}: {self._name} is closed"))
        return status

    def close(self) -> None:
        """Finish queued transactions and stop the thread."""
        self._pool.shutdown(wait=True, cancel_futures=False)

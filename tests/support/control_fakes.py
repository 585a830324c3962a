"""Fake actuator backends for the control part's unit tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rigwatch.control.actuators import ActuatorReading, ActuatorSpec, StateTable, Status, Value


class AckBank:
    """An actuator backend holding ``specs`` that acknowledges every command at once and
    remembers what it was sent (``sent``, oldest first). Subclasses change :meth:`apply`."""

    def __init__(self, specs: Sequence[ActuatorSpec], name: str = "bank") -> None:
        self.name = name
        self._specs = tuple(specs)
        self.state = StateTable([s.name for s in self._specs])
        self.sent: list[dict[str, Value]] = []

    @property
    def specs(self) -> Sequence[ActuatorSpec]:
        return self._specs

    def connect(self) -> None: ...

    def close(self) -> None: ...

    def stop(self) -> None: ...

    def read(self) -> dict[str, ActuatorReading]:
        return self.state.read()

    def apply(self, changes: Mapping[str, Value]) -> Status:
        self.sent.append(dict(changes))
        self.state.acknowledged(changes)
        st = Status(str(changes))
        st.set_finished("ack")
        return st

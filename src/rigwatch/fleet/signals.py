"""What the status engine tells the alert manager: a condition seen, or its recovery."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Severity(StrEnum):
    """Severity of an alert."""

    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """1 for warning, 2 for critical: a higher rank is worse."""
        return 2 if self is Severity.CRITICAL else 1


@dataclass(frozen=True, slots=True)
class Signal:
    """One observation of an alert condition of a (machine, rule), or of its recovery.

    Attributes:
        machine_id: the machine.
        rule_id: the rule (a metric rule's id, ``no_data``, ``not_accessible`` or
            ``alarm.<code>``).
        severity: the condition's severity now; ``None`` means recovered (clear the alert).
        at: when it was observed (server clock, aware UTC).
        message: a human sentence naming the value and the threshold.
        metric: the metric read, when the rule reads one.
        value: the value read, when there is one.
    """

    machine_id: str
    rule_id: str
    severity: Severity | None
    at: datetime
    message: str
    metric: str | None = None
    value: float | None = None

    @property
    def recovered(self) -> bool:
        """True when this signal says the condition is over."""
        return self.severity is None

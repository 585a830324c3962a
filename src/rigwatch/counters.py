"""Named event counters, shared by every part of a station.

Bad input is never silently dropped: each place that rejects something increments a counter
whose name says what was rejected (``stm32.malformed_field``, ``ws.oversized_message``...).
The counters are shown in ``GET /api/status``.
"""

from __future__ import annotations

import threading
from collections import Counter


class Counters:
    """A thread-safe set of monotonically increasing named counters.

    Names are dotted: ``<part>.<event>``. Values are non-negative ``int``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: Counter[str] = Counter()
        self._last_message: dict[str, str] = {}

    def inc(self, name: str, n: int = 1, message: str | None = None) -> None:
        """Add ``n`` to counter ``name``; keep ``message`` as the last reason seen for it."""
        with self._lock:
            self._values[name] += n
            if message is not None:
                self._last_message[name] = message

    def get(self, name: str) -> int:
        """Current value of ``name`` (0 when never incremented)."""
        with self._lock:
            return self._values.get(name, 0)

    def snapshot(self) -> dict[str, int]:
        """A copy of every counter, sorted by name."""
        with self._lock:
            return dict(sorted(self._values.items()))

    def last_messages(self) -> dict[str, str]:
        """The last reason recorded for each counter that has one."""
        with self._lock:
            return dict(sorted(self._last_message.items()))

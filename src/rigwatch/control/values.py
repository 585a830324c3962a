"""The latest value of every channel, for scenario conditions (``wait_until``)."""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

import numpy as np


class LatestValues:
    """Latest finite value and its timestamp per channel, fed with acquired blocks.
    Thread-safe; :meth:`wait_change` lets a waiting step wake on new data."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._values: dict[str, tuple[float, int]] = {}
        self._version = 0

    def feed(self, channels: Sequence[str], data: np.ndarray, stamps_ns: np.ndarray) -> None:
        """Take the last finite value of each column of a ``(rows, channels)`` block."""
        if data.shape[0] == 0:
            return
        finite = np.isfinite(data)
        with self._cond:
            for j, name in enumerate(channels):
                rows = np.flatnonzero(finite[:, j])
                if rows.size:
                    i = rows[-1]
                    self._values[name] = (float(data[i, j]), int(stamps_ns[i]))
            self._version += 1
            self._cond.notify_all()

    def get(self, channel: str) -> tuple[float, int] | None:
        """``(value, time_ns)`` of ``channel``'s latest finite value, or None."""
        with self._cond:
            return self._values.get(channel)

    def value(self, channel: str) -> float:
        """The latest value, NaN when none."""
        got = self.get(channel)
        return math.nan if got is None else got[0]

    @property
    def version(self) -> int:
        """Increases with every block fed."""
        return self._version

    def wait_change(self, version: int, timeout_s: float) -> int:
        """Wait until a block newer than ``version`` was fed (or ``timeout_s``); returns the
        current version."""
        with self._cond:
            self._cond.wait_for(lambda: self._version != version, max(timeout_s, 0.0))
            return self._version

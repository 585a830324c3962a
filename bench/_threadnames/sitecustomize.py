"""Give each Python thread of a process its name at the OS level as well.

``bench/acquisition.py --ceiling`` puts this folder on the ``PYTHONPATH`` of the station
process it starts, so that ``/proc/<pid>/task/<tid>/comm`` reads ``acq-<device>``,
``recorder-<device>``... and the CPU time of each thread can be attributed by name (Python
3.11 leaves every thread named after the process). The name is set once, when a thread starts:
nothing runs on the data path.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys
import threading

if sys.platform.startswith("linux"):
    _PR_SET_NAME = 15  # prctl(PR_SET_NAME, name): the calling thread's name, 15 bytes at most
    _libc = ctypes.CDLL(None, use_errno=True)
    _bootstrap_inner = threading.Thread._bootstrap_inner  # type: ignore[attr-defined]

    def _named_bootstrap_inner(self: threading.Thread) -> None:
        with contextlib.suppress(Exception):
            _libc.prctl(_PR_SET_NAME, self.name.encode()[:15], 0, 0, 0)
        _bootstrap_inner(self)

    threading.Thread._bootstrap_inner = _named_bootstrap_inner  # type: ignore[attr-defined]

"""Background threads that yield the CPU: work with slack (recording, encoding, heavy queries)
runs at a lower scheduling priority than work without (acquisition, the live stream), so that
on a machine with few cores the latter is never queued behind the former."""

from __future__ import annotations

import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

BACKGROUND_NICE = 10
"""Niceness added to background threads (Linux: per thread). 10 gives them about a tenth of the
CPU share of a normal thread when both want the same core."""


def lower_thread_priority(increment: int = BACKGROUND_NICE) -> bool:
    """Raise the calling thread's niceness by ``increment`` (Linux: per-thread priority).

    Returns:
        ``True`` when applied; ``False`` where the platform has no per-thread niceness.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + increment)
    except OSError:
        return False
    return True


def background_pool(workers: int, name: str) -> ThreadPoolExecutor:
    """A thread pool whose threads run at :data:`BACKGROUND_NICE`.

    Args:
        workers: threads, >= 1.
        name: prefix of the threads' names.
    """
    return ThreadPoolExecutor(workers, thread_name_prefix=name, initializer=lower_thread_priority)

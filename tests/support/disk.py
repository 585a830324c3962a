"""A file system whose free space and write failures a test decides, and waiting helpers."""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from rigwatch.acquisition.recorder import Disk, DiskUsage

GIB = 1 << 30


class FakeDisk(Disk):
    """Reports ``free_bytes`` of ``total_bytes``; a write fails with ``ENOSPC`` while
    :attr:`full` is set, or when ``fail_when(path, nbytes)`` says so.

    Attributes:
        failed_writes: writes refused so far.
        writes: writes let through so far.
    """

    def __init__(self, free_bytes: int = 50 * GIB, total_bytes: int = 100 * GIB) -> None:
        self.free_bytes = free_bytes
        self.total_bytes = total_bytes
        self.full = False
        self.fail_when: Callable[[Path, int], bool] | None = None
        self.failed_writes = 0
        self.writes = 0
        self._lock = threading.Lock()

    def usage(self, directory: Path) -> DiskUsage:
        with self._lock:
            return DiskUsage(total_bytes=self.total_bytes, free_bytes=self.free_bytes)

    def before_write(self, path: Path, nbytes: int) -> None:
        with self._lock:
            refuse = self.full or (self.fail_when is not None and self.fail_when(path, nbytes))
            if refuse:
                self.failed_writes += 1
                # a write refused for lack of space leaves none: a retry finds the disk full
                # until free_up(), as on a real disk (not 50 GiB free the next moment)
                self.free_bytes = 0
            else:
                self.writes += 1
        if refuse:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    def fill(self) -> None:
        """No byte free, every write fails with ENOSPC."""
        with self._lock:
            self.full = True
            self.free_bytes = 0

    def free_up(self, free_bytes: int = 50 * GIB) -> None:
        """Space is back: ``free_bytes`` free, writes succeed."""
        with self._lock:
            self.full = False
            self.fail_when = None
            self.free_bytes = free_bytes


def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0, what: str = "") -> None:
    """Poll ``condition`` until it is true; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what or condition}")
        time.sleep(0.005)

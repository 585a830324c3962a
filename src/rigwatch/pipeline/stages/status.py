"""A stage's status file: what it is doing and why, for ``rigwatch pipeline status`` and the
TUI.

One JSON object per stage process, rewritten atomically (:func:`write_json_atomically`:
temporary file + rename, no fsync: it is a view, not a record)::

    {"stage": "syncer", "pid": 4242, "owner": "syncer@host:4242:ab12cd34",
     "state": "waiting", "reason": "share /mnt/nas is not mounted",
     "done": 120, "failed": 1, "released": 3, "last_error": "...", "updated": "...Z"}

States: ``starting``, ``running`` (working on items), ``idle`` (nothing to do), ``waiting``
(something outside the stage is missing: the share), ``paused`` (the collector below its
free-space floor), ``stopping``, ``stopped``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from rigwatch.timefmt import iso_utc

log = logging.getLogger(__name__)

State = Literal["starting", "running", "idle", "waiting", "paused", "stopping", "stopped"]

MIN_REWRITE_S = 0.5
"""Counters alone are rewritten at most this often; a change of state is written at once."""


def status_path(state_dir: Path, name: str) -> Path:
    """The status file of stage process ``name`` (``processor-1`` for a second worker)."""
    return state_dir / f"{name}.status.json"


class StatusFile:
    """The status file of one stage process.

    Args:
        path: the file (its folder is created); ``None`` keeps the status in memory only.
        stage: the stage's name; owner: its lease owner id.
    """

    def __init__(self, path: Path | None, stage: str, owner: str = "") -> None:
        self.path = path
        self.data: dict[str, Any] = {
            "stage": stage,
            "pid": os.getpid(),
            "owner": owner,
            "state": "starting",
            "reason": None,
            "done": 0,
            "failed": 0,
            "released": 0,
            "last_error": None,
            "updated": iso_utc(time.time_ns()),
        }
        self._written = 0.0
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._write()

    @property
    def state(self) -> str:
        """The current state."""
        return str(self.data["state"])

    @property
    def reason(self) -> str | None:
        """Why the stage waits or is paused (``None`` otherwise)."""
        reason = self.data["reason"]
        return None if reason is None else str(reason)

    def set(self, state: State, reason: str | None = None) -> None:
        """Change the state (written at once when it or the reason changed)."""
        changed = state != self.data["state"] or reason != self.data["reason"]
        self.data["state"] = state
        self.data["reason"] = reason
        if changed:
            if reason:
                log.info("%s: %s (%s)", self.data["stage"], state, reason)
            self._write()

    def count(self, key: str, n: int = 1, error: str | None = None) -> None:
        """Add ``n`` to a counter (``done``, ``failed``, ``released``...)."""
        if n == 0 and error is None:
            return
        self.data[key] = int(self.data.get(key, 0)) + n
        if error is not None:
            self.data["last_error"] = error[:2000]
        if time.monotonic() - self._written >= MIN_REWRITE_S:
            self._write()

    def flush(self) -> None:
        """Write the file now."""
        self._write()

    def _write(self) -> None:
        self._written = time.monotonic()
        if self.path is None:
            return
        self.data["updated"] = iso_utc(time.time_ns())
        try:
            write_json_atomically(self.path, self.data)
        except OSError as exc:  # a full disk must not stop the stage
            log.warning("cannot write status file %s: %s", self.path, exc)


def write_json_atomically(path: Path, data: Mapping[str, Any], indent: int | None = None) -> None:
    """Replace ``path`` by ``data`` as JSON, atomically: written to a hidden temporary file
    beside it (``.<name>.<pid>.tmp``, so writers in two processes never share one) and renamed
    into place; a reader sees the old content or the new one, never a part. No fsync: status
    and state files are a view, not a record.

    Raises:
        OSError: the file cannot be written (the temporary file is removed, ``path`` is left
            as it was); TypeError, ValueError: ``data`` is not JSON.
    """
    body = json.dumps(data, indent=indent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(body)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def read_status(path: Path) -> dict[str, Any] | None:
    """A status file's content, or ``None`` when missing or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None

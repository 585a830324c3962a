"""The reporter's delivery ledger: which handler delivered which artifact, and how far each
append-only report file is committed.

A small SQLite file (WAL) beside the reports, shared by the reporter processes of one host.
A handler whose effect is not idempotent checks the ledger before delivering and records the
delivery after, so an item redone after a crash (its lease expired) or retried because another
handler failed is not delivered twice by it. For an appended file the record and the file's
committed size are written in one transaction after the append was flushed; an append that
was never recorded (the process died in between) is cut off before the next one.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rigwatch.errors import StageError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    handler TEXT NOT NULL,
    artifact_id INTEGER NOT NULL,
    delivered_ns INTEGER NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (handler, artifact_id)
);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    committed_size INTEGER NOT NULL
);
"""


_SET_COMMITTED_SIZE = (
    "INSERT INTO files VALUES (?, ?) "
    "ON CONFLICT(path) DO UPDATE SET committed_size = excluded.committed_size"
)


class Ledger:
    """The delivery ledger at ``path``.

    Raises:
        StageError: the file cannot be opened.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StageError(f"delivery ledger {self.path}: {exc}") from exc

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def delivered(self, handler: str, artifact_id: int) -> dict[str, Any] | None:
        """What ``handler`` delivered for the artifact, or ``None`` when it did not."""
        with self._lock:
            row = self._db.execute(
                "SELECT detail FROM deliveries WHERE handler = ? AND artifact_id = ?",
                (handler, artifact_id),
            ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def record(
        self,
        handler: str,
        artifact_id: int,
        detail: Mapping[str, Any],
        file: tuple[Path, int] | None = None,
    ) -> None:
        """Record a delivery (and, for an appended file, its new committed size) in one
        transaction; recording the same delivery again changes nothing."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT OR IGNORE INTO deliveries VALUES (?, ?, ?, ?)",
                    (handler, artifact_id, time.time_ns(), json.dumps(dict(detail))),
                )
                if file is not None:
                    self._db.execute(_SET_COMMITTED_SIZE, (str(file[0]), file[1]))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def committed_size(self, path: Path) -> int | None:
        """The committed size of an appended file (``None``: never recorded)."""
        with self._lock:
            row = self._db.execute(
                "SELECT committed_size FROM files WHERE path = ?", (str(path),)
            ).fetchone()
        return None if row is None else int(row[0])

    def set_committed_size(self, path: Path, size: int) -> None:
        """Set an appended file's committed size (a new or rotated file)."""
        with self._lock:
            self._db.execute(_SET_COMMITTED_SIZE, (str(path), size))

    def count(self, handler: str) -> int:
        """How many artifacts ``handler`` delivered."""
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*) FROM deliveries WHERE handler = ?", (handler,)
            ).fetchone()
        return int(row[0])

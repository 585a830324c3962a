"""The agent's outbox: messages waiting for the server, kept in SQLite on local disk.

Guarantees:

- **Durable**: a message is committed (WAL journal, ``synchronous=FULL``) before
  :meth:`Outbox.put` returns, so a killed process or a power cut loses nothing already put.
- **In order**: messages are handed out oldest first (by an ``AUTOINCREMENT`` sequence that
  never reuses a value, even across restarts), each with its own original timestamp in its
  body.
- **At-least-once**: a message leaves the outbox only when :meth:`Outbox.ack` is called after
  the server confirmed it; a crash between sending and acknowledging sends it again, with the
  same ``message_id``, so the server can drop the duplicate.
- **Bounded by bytes**: the bodies of pending messages never exceed ``max_bytes``. Only when a
  new message would exceed the bound are the oldest pending messages dropped, and every drop is
  counted (messages and bytes), persistently, so the agent can report it.
- **Refusals kept aside**: a message the server refuses for good (a 4xx other than 429) is moved
  to a ``refused`` table (bounded to ``max_refused`` rows, newest kept) and counted, instead of
  being retried forever.

One connection, guarded by a lock: the outbox may be used from the agent's event loop and from
worker threads. Files: ``path`` plus SQLite's ``-wal`` and ``-shm`` companions.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rigwatch.errors import OutboxError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL UNIQUE,
    created_ns INTEGER NOT NULL,
    body BLOB NOT NULL,
    size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS refused (
    seq INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL,
    created_ns INTEGER NOT NULL,
    body BLOB NOT NULL,
    refused_ns INTEGER NOT NULL,
    status INTEGER,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""

COUNTER_NAMES = (
    "dropped_messages",
    "dropped_bytes",
    "refused_messages",
    "delivered_messages",
    "reported_dropped_messages",
    "reported_dropped_bytes",
    "last_seq",
)
"""Persistent counters of the outbox (they survive restarts)."""


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One pending message.

    Attributes:
        seq: position in the outbox (increasing, never reused).
        message_id: the message's unique id (also inside ``body``).
        created_ns: when the message was made, ns since the Unix epoch (UTC).
        body: the message as UTF-8 JSON bytes, exactly as it will be sent.
    """

    seq: int
    message_id: str
    created_ns: int
    body: bytes


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """Fill state and counters of an outbox.

    Attributes:
        pending_messages, pending_bytes: messages waiting, and the bytes of their bodies.
        max_bytes: the bound on ``pending_bytes``.
        oldest_created_ns: creation time of the oldest waiting message (None when empty).
        dropped_messages, dropped_bytes: dropped to stay within ``max_bytes`` (ever).
        refused_messages: refused for good by the server (ever).
        delivered_messages: acknowledged by the server (ever).
    """

    pending_messages: int
    pending_bytes: int
    max_bytes: int
    oldest_created_ns: int | None
    dropped_messages: int
    dropped_bytes: int
    refused_messages: int
    delivered_messages: int


@dataclass(frozen=True, slots=True)
class RefusedItem:
    """A message the server refused for good, with the status code and the reason."""

    message_id: str
    created_ns: int
    body: bytes
    refused_ns: int
    status: int | None
    reason: str


class Outbox:
    """A durable, bounded FIFO of messages for the server.

    Args:
        path: the SQLite file (created with its folder when missing).
        max_bytes: bound on the summed body sizes of pending messages (> 0).
        max_refused: refused messages kept for inspection (older ones are deleted; the count
            of refusals is kept regardless).

    Raises:
        OutboxError: the file cannot be opened or is not an outbox.
    """

    def __init__(self, path: str | Path, max_bytes: int, *, max_refused: int = 1000) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be > 0, got {max_bytes}")
        if max_refused < 0:
            raise ValueError(f"max_refused must be >= 0, got {max_refused}")
        self.path = Path(path)
        self.max_bytes = int(max_bytes)
        self.max_refused = int(max_refused)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=10.0
            )
        except (OSError, sqlite3.Error) as exc:
            raise OutboxError(f"outbox {self.path}: cannot open: {exc}") from exc
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise OutboxError(
                    f"outbox {self.path}: schema version {version}, this agent knows "
                    f"{SCHEMA_VERSION}"
                )
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self._db.executemany(
                "INSERT OR IGNORE INTO counters(name, value) VALUES (?, 0)",
                [(n,) for n in COUNTER_NAMES],
            )
            row = self._db.execute("SELECT COALESCE(SUM(size), 0) FROM outbox").fetchone()
            self._pending_bytes = int(row[0])
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise OutboxError(f"outbox {self.path}: not a usable SQLite outbox: {exc}") from exc
        except OutboxError:
            self._db.close()
            raise
        if self._pending_bytes > self.max_bytes:
            with self._lock, self._transaction():
                self._drop_oldest_locked(self._pending_bytes - self.max_bytes)

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the database (pending messages stay on disk)."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ------------------------------------------------------------------------------

    def put(self, message_id: str, body: bytes, created_ns: int) -> int:
        """Append one message, durably; drop the oldest pending messages first when the new one
        would not fit within ``max_bytes``.

        Args:
            message_id: unique id of the message (the server deduplicates on it).
            body: the message as sent (UTF-8 JSON bytes).
            created_ns: when the message was made, ns since the Unix epoch (UTC).

        Returns:
            Number of messages dropped to make room (0 normally).

        Raises:
            OutboxError: the message alone is larger than ``max_bytes``, its id is already
                pending, or the database cannot be written (disk full...).
        """
        size = len(body)
        if size > self.max_bytes:
            raise OutboxError(
                f"outbox {self.path}: message {message_id} of {size} bytes exceeds the "
                f"outbox bound of {self.max_bytes} bytes"
            )
        with self._lock:
            try:
                with self._transaction():
                    if self._db.execute(
                        "SELECT 1 FROM outbox WHERE message_id = ?", (message_id,)
                    ).fetchone():
                        raise sqlite3.IntegrityError(f"duplicate message id {message_id}")
                    dropped = 0
                    excess = self._pending_bytes + size - self.max_bytes
                    if excess > 0:
                        dropped = self._drop_oldest_locked(excess)
                    self._db.execute(
                        "INSERT INTO outbox(message_id, created_ns, body, size) "
                        "VALUES (?, ?, ?, ?)",
                        (message_id, int(created_ns), sqlite3.Binary(body), size),
                    )
            except sqlite3.IntegrityError as exc:
                self._reload_pending_bytes()
                raise OutboxError(
                    f"outbox {self.path}: message id {message_id} is already pending"
                ) from exc
            except sqlite3.Error as exc:
                self._reload_pending_bytes()
                raise OutboxError(f"outbox {self.path}: cannot store a message: {exc}") from exc
            self._pending_bytes += size
        return dropped

    def enqueue(self, message: Mapping[str, Any], created_ns: int) -> int:
        """Give a status message (wire schema, JSON-ready) its ``seq`` and put it.

        For producers other than the agent's own loop (the pipeline's fleet reporter): the
        message gets the next :meth:`allocate_seq` number as ``seq`` and its id, and is stored
        as compact UTF-8 JSON. The message is not validated here; validate it with
        ``rigwatch.wire`` first, since the server refuses an invalid one for good.

        Returns:
            The ``seq`` given to the message.

        Raises:
            OutboxError: as :meth:`put`.
        """
        seq = self.allocate_seq(created_ns)
        body = json.dumps(
            {**message, "seq": seq}, separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8")
        self.put(str(seq), body, created_ns)
        return seq

    def _drop_oldest_locked(self, excess: int) -> int:
        """Delete the oldest pending messages until at least ``excess`` bytes are freed; count
        them. Runs inside a transaction with the lock held."""
        freed = 0
        victims: list[tuple[int, int]] = []
        for seq, size in self._db.execute("SELECT seq, size FROM outbox ORDER BY seq"):
            if freed >= excess:
                break
            victims.append((int(seq), int(size)))
            freed += int(size)
        if not victims:
            return 0
        last_seq = victims[-1][0]
        self._db.execute("DELETE FROM outbox WHERE seq <= ?", (last_seq,))
        self._bump("dropped_messages", len(victims))
        self._bump("dropped_bytes", freed)
        self._pending_bytes -= freed
        log.warning(
            "outbox %s full (bound %d bytes): dropped the %d oldest message(s), %d bytes",
            self.path,
            self.max_bytes,
            len(victims),
            freed,
        )
        return len(victims)

    def allocate_seq(self, now_ns: int) -> int:
        """The next message sequence number, persisted before it is returned.

        Numbers increase by one per message. A new outbox starts at ``now_ns`` in milliseconds,
        so an agent whose outbox was deleted (a reinstall) continues above every number it used
        before (as long as it made fewer than one message per millisecond) and the server, which
        drops duplicates by ``(machine, seq)``, never mistakes a new message for an old one.
        """
        with self._lock:
            try:
                with self._transaction():
                    row = self._db.execute(
                        "SELECT value FROM counters WHERE name = 'last_seq'"
                    ).fetchone()
                    last = int(row[0]) if row else 0
                    seq = last + 1 if last > 0 else max(1, int(now_ns) // 1_000_000)
                    self._db.execute(
                        "UPDATE counters SET value = ? WHERE name = 'last_seq'", (seq,)
                    )
            except sqlite3.Error as exc:
                raise OutboxError(f"outbox {self.path}: cannot allocate a sequence: {exc}") from exc
        return seq

    def unreported_drops(self) -> tuple[int, int]:
        """Messages and bytes dropped since the last :meth:`mark_drops_reported`."""
        with self._lock:
            c = dict(self._db.execute("SELECT name, value FROM counters").fetchall())
        return (
            int(c["dropped_messages"]) - int(c["reported_dropped_messages"]),
            int(c["dropped_bytes"]) - int(c["reported_dropped_bytes"]),
        )

    def mark_drops_reported(self, messages: int, nbytes: int) -> None:
        """Record that a message now carries a report of ``messages`` drops (``nbytes``)."""
        with self._lock, self._transaction():
            self._bump("reported_dropped_messages", messages)
            self._bump("reported_dropped_bytes", nbytes)

    def newest_seq(self) -> int | None:
        """Outbox position of the newest pending message (None when empty)."""
        with self._lock:
            row = self._db.execute("SELECT MAX(seq) FROM outbox").fetchone()
        return None if row[0] is None else int(row[0])

    # -- reading and acknowledging ------------------------------------------------------------

    def peek(self, max_messages: int, max_bytes: int | None = None) -> list[OutboxItem]:
        """The oldest pending messages, in order, without removing them.

        Args:
            max_messages: at most this many (>= 1).
            max_bytes: and at most this many body bytes in total (the first message is always
                included, however large), or no byte limit when None.
        """
        if max_messages < 1:
            raise ValueError(f"max_messages must be >= 1, got {max_messages}")
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, message_id, created_ns, body FROM outbox ORDER BY seq LIMIT ?",
                (max_messages,),
            ).fetchall()
        items: list[OutboxItem] = []
        total = 0
        for seq, mid, created, body in rows:
            b = bytes(body)
            if items and max_bytes is not None and total + len(b) > max_bytes:
                break
            items.append(OutboxItem(int(seq), str(mid), int(created), b))
            total += len(b)
        return items

    def ack(self, message_ids: Iterable[str]) -> int:
        """Remove messages the server confirmed; unknown ids (already dropped) are ignored.

        Returns:
            Number of messages removed.
        """
        ids = list(message_ids)
        if not ids:
            return 0
        with self._lock:
            try:
                with self._transaction():
                    removed, freed = self._remove_locked(ids)
                    self._bump("delivered_messages", removed)
            except sqlite3.Error as exc:
                self._reload_pending_bytes()
                raise OutboxError(f"outbox {self.path}: cannot acknowledge: {exc}") from exc
            self._pending_bytes -= freed
        return removed

    def refuse(self, item: OutboxItem, status: int | None, reason: str) -> None:
        """Move a message the server refused for good to the ``refused`` table and count it."""
        now = time.time_ns()
        with self._lock:
            try:
                with self._transaction():
                    removed, freed = self._remove_locked([item.message_id])
                    if removed:
                        self._db.execute(
                            "INSERT OR REPLACE INTO refused(seq, message_id, created_ns, body, "
                            "refused_ns, status, reason) VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (
                                item.seq,
                                item.message_id,
                                item.created_ns,
                                sqlite3.Binary(item.body),
                                now,
                                status,
                                reason[:2000],
                            ),
                        )
                        self._bump("refused_messages", 1)
                        self._db.execute(
                            "DELETE FROM refused WHERE seq NOT IN "
                            "(SELECT seq FROM refused ORDER BY seq DESC LIMIT ?)",
                            (self.max_refused,),
                        )
            except sqlite3.Error as exc:
                self._reload_pending_bytes()
                raise OutboxError(f"outbox {self.path}: cannot set a message aside: {exc}") from exc
            self._pending_bytes -= freed

    def _remove_locked(self, ids: Sequence[str]) -> tuple[int, int]:
        removed = 0
        freed = 0
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            row = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM outbox "
                f"WHERE message_id IN ({marks})",
                chunk,
            ).fetchone()
            self._db.execute(f"DELETE FROM outbox WHERE message_id IN ({marks})", chunk)
            removed += int(row[0])
            freed += int(row[1])
        return removed, freed

    # -- inspection ---------------------------------------------------------------------------

    def stats(self) -> OutboxStats:
        """Fill state and the persistent counters."""
        with self._lock:
            count, oldest = self._db.execute(
                "SELECT COUNT(*), MIN(created_ns) FROM outbox"
            ).fetchone()
            counters = dict(self._db.execute("SELECT name, value FROM counters").fetchall())
            pending_bytes = self._pending_bytes
        return OutboxStats(
            pending_messages=int(count),
            pending_bytes=pending_bytes,
            max_bytes=self.max_bytes,
            oldest_created_ns=None if oldest is None else int(oldest),
            dropped_messages=int(counters.get("dropped_messages", 0)),
            dropped_bytes=int(counters.get("dropped_bytes", 0)),
            refused_messages=int(counters.get("refused_messages", 0)),
            delivered_messages=int(counters.get("delivered_messages", 0)),
        )

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def refused(self) -> list[RefusedItem]:
        """The refused messages kept, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT message_id, created_ns, body, refused_ns, status, reason FROM refused "
                "ORDER BY seq"
            ).fetchall()
        return [
            RefusedItem(str(m), int(c), bytes(b), int(r), None if s is None else int(s), str(t))
            for m, c, b, r, s, t in rows
        ]

    # -- helpers ------------------------------------------------------------------------------

    def _bump(self, name: str, n: int) -> None:
        self._db.execute("UPDATE counters SET value = value + ? WHERE name = ?", (n, name))

    def _reload_pending_bytes(self) -> None:
        try:
            row = self._db.execute("SELECT COALESCE(SUM(size), 0) FROM outbox").fetchone()
            self._pending_bytes = int(row[0])
        except sqlite3.Error:
            log.exception("outbox %s: cannot re-read its size", self.path)

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on an exception)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is None:
            self._db.execute("COMMIT")
        else:
            self._db.execute("ROLLBACK")

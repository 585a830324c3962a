"""The SQLite writer lock: writers of one database take turns across processes and threads,
and the fleet's group commit holds it while it writes."""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
from pathlib import Path

from rigwatch.fleet.db import create_fleet_engine, migrate
from rigwatch.fleet.schemas import MachineIn
from rigwatch.fleet.store import FleetStore, LatestWrite, MessageWrite
from rigwatch.storage import SqliteWriterLock


def _try_from_another_process(database: str, answer: mp.Queue) -> None:  # type: ignore[type-arg]
    lock = SqliteWriterLock(database)
    taken = lock.acquire(blocking=False)
    answer.put(taken)
    if taken:
        lock.release()
    lock.close()


def _taken_elsewhere(database: Path) -> bool:
    answer: mp.Queue = mp.get_context("spawn").Queue()  # type: ignore[type-arg]
    process = mp.get_context("spawn").Process(
        target=_try_from_another_process, args=(str(database), answer)
    )
    process.start()
    got = answer.get(timeout=60)
    process.join(60)
    return not got


def test_writer_lock_excludes_another_process_until_released(tmp_path: Path) -> None:
    database = tmp_path / "fleet.sqlite3"
    lock = SqliteWriterLock(database)
    with lock:
        assert (tmp_path / "fleet.sqlite3.writer-lock").exists()
        assert _taken_elsewhere(database)
    assert not _taken_elsewhere(database)
    lock.close()


def test_writer_lock_excludes_another_lock_and_thread_of_the_same_process(
    tmp_path: Path,
) -> None:
    database = tmp_path / "fleet.sqlite3"
    first, second = SqliteWriterLock(database), SqliteWriterLock(database)
    assert first.acquire()
    assert not second.acquire(blocking=False)  # another open file: excluded as a process is
    results: list[bool] = []
    thread = threading.Thread(target=lambda: results.append(first.acquire(blocking=False)))
    thread.start()
    thread.join(10)
    assert results == [False]  # another thread of the same lock waits its turn
    first.release()
    assert second.acquire(blocking=False)
    second.release()
    first.close()
    second.close()


def test_in_memory_database_orders_threads_only() -> None:
    lock = SqliteWriterLock(":memory:")
    assert lock.acquire(blocking=False)
    assert not lock.acquire(blocking=False)
    lock.release()
    lock.close()


def test_fleet_group_commit_waits_for_the_writer_lock(tmp_path: Path) -> None:
    database = tmp_path / "fleet.sqlite3"
    engine = create_fleet_engine(database)
    migrate(engine)
    store = FleetStore(engine, time.time_ns)
    store.add_machine(MachineIn(id="m1", name="m1"), "test")
    other = SqliteWriterLock(database)  # as another server process holding it
    other.acquire()
    message = MessageWrite("m1", 1, 1, 2, False, None, None, None, {"temperature": 40.0})
    latest = LatestWrite("m1", "green", "", {}, 1, True, 1, 2, 2, {"temperature": 40.0}, None)
    writer = threading.Thread(target=store.write_batch, args=([message], [latest]))
    writer.start()
    writer.join(0.5)
    # the commit waits while the lock is held elsewhere (a broken lock finishes in ms)
    assert writer.is_alive()
    assert store.existing_seqs("m1", [1]) == set()
    other.release()
    writer.join(30)
    assert not writer.is_alive()
    assert store.existing_seqs("m1", [1]) == {1}
    other.close()
    engine.dispose()

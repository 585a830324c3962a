"""Crash recovery: turning the journals a crash left behind into the segments they journaled.

Called before recording starts. Each ``.<name>.arrows`` journal is read batch by batch up to
its last complete batch (a cut tail is expected after a kill) and written as ``<name>``, the
segment's final name; at most the last flush interval of an open segment is lost.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from rigwatch.acquisition.recorder.disk import Disk, is_disk_full
from rigwatch.acquisition.recorder.open_segment import row_group_rows
from rigwatch.counters import Counters
from rigwatch.recordings.files import (
    JOURNAL_SUFFIX,
    NEW_SUFFIX,
    PARQUET_SUFFIX,
    TMP_SUFFIX,
    final_name_of,
    free_name,
    journal_path,
    tmp_path,
    write_batches_atomically,
)
from rigwatch.recordings.layout import META_FORMAT_VERSION, TIMESTAMP_COLUMN

log = logging.getLogger(__name__)


class _CorruptJournal(Exception):
    pass


def _read_journal(path: Path, counters: Counters) -> tuple[pa.Schema, list[pa.RecordBatch]]:
    """Schema and complete batches of a journal; raises _CorruptJournal if it has no schema."""
    batches: list[pa.RecordBatch] = []
    with pa.OSFile(os.fspath(path), "rb") as src:
        try:
            reader = pa.ipc.open_stream(src)
        except (pa.ArrowException, OSError) as exc:
            raise _CorruptJournal(f"no readable schema: {exc}") from exc
        schema = reader.schema
        meta = schema.metadata or {}
        if (
            META_FORMAT_VERSION not in meta
            or not schema.names
            or schema.names[0] != TIMESTAMP_COLUMN
            or not pa.types.is_timestamp(schema.field(0).type)
        ):
            raise _CorruptJournal("not a rigwatch journal (schema)")
        while True:
            try:
                batch = reader.read_next_batch()
                if not batch.schema.equals(schema):
                    raise ValueError("batch schema differs from the journal schema")
                batch.validate(full=True)
            except StopIteration:
                break
            except (pa.ArrowException, OSError, ValueError) as exc:
                counters.inc("recorder.recovered_truncated_tail", message=f"{path.name}: {exc}")
                log.info("journal %s: tail after %d batches unusable (%s)", path, len(batches), exc)
                break
            batches.append(batch)
    return schema, batches


def _existing_rows(path: Path) -> int | None:
    try:
        return int(pq.read_metadata(path).num_rows)
    except Exception:
        return None


def recover_journal(
    journal: Path,
    counters: Counters,
    codec: str,
    compression_level: int | None,
    *,
    disk: Disk | None = None,
) -> Path | None:
    """Write the complete batches of one journal as the segment it journaled.

    ``disk`` is told before each write (default: lets every write through).

    Returns:
        The segment written, or ``None`` when the journal held no complete row (it is removed,
        counted ``recorder.empty_journal``) or its segment was already closed (a crash between
        the rename and the journal's removal: ``recorder.recovered_already_closed``).

    Raises:
        _CorruptJournal: the journal has no readable rigwatch schema.
        OSError: the segment cannot be written (the journal is kept, no partial file is left).
    """
    directory = journal.parent
    final_name = final_name_of(journal)
    tmp = tmp_path(directory / final_name)
    if journal.stat().st_size == 0:  # cannot happen with our writer, but harmless
        batches: list[pa.RecordBatch] = []
        schema = None
    else:
        schema, batches = _read_journal(journal, counters)
    rows = sum(b.num_rows for b in batches)
    if rows == 0:
        counters.inc("recorder.empty_journal", message=journal.name)
        log.info("journal %s holds no complete rows: removed", journal)
        tmp.unlink(missing_ok=True)
        journal.unlink()
        return None
    assert schema is not None
    final = directory / final_name
    if final.exists():
        existing = _existing_rows(final)
        if existing is not None and existing >= rows:
            # crashed after the segment was closed but before its journal was deleted
            counters.inc("recorder.recovered_already_closed", message=final_name)
            tmp.unlink(missing_ok=True)
            journal.unlink()
            return None
        stem = final_name[: -len(PARQUET_SUFFIX)]
        final = directory / free_name(directory, f"{stem}-recovered")
    tmp.unlink(missing_ok=True)  # the crashed writer's partial file has no footer
    rg_rows = row_group_rows(len(schema.names) - 1)

    def row_groups() -> Iterator[pa.Table]:
        group: list[pa.RecordBatch] = []
        group_rows = 0
        for batch in batches:
            group.append(batch)
            group_rows += batch.num_rows
            if group_rows >= rg_rows:
                yield pa.Table.from_batches(group, schema=schema)
                group, group_rows = [], 0
        if group:
            yield pa.Table.from_batches(group, schema=schema)

    seam = disk if disk is not None else Disk()
    write_batches_atomically(
        row_groups(), schema, final, codec, compression_level, before_write=seam.before_write
    )
    journal.unlink()
    counters.inc("recorder.recovered_segments", message=final.name)
    log.warning("recovered %d rows of an interrupted segment into %s", rows, final)
    return final


def recover(
    directory: str | os.PathLike[str],
    counters: Counters,
    codec: str = "zstd",
    compression_level: int | None = None,
    *,
    disk: Disk | None = None,
) -> list[Path]:
    """Turn the journals left by a crash into Parquet segments; call before recording starts.

    Each ``.<name>.arrows`` journal is read batch by batch up to its last complete batch (a
    cut tail is expected after a kill: counted ``recorder.recovered_truncated_tail``) and
    written as ``<name>`` (the segment's final name); the partial ``.<name>.tmp`` and the
    journal are removed. A journal without complete rows is removed (``recorder.empty_journal``).
    A journal that cannot be read at all is renamed ``.<name>.arrows.corrupt`` and counted
    ``recorder.unrecoverable_journal`` (message: its file name). A journal that cannot be
    written for want of space (``ENOSPC``, ``EDQUOT``) is kept for the next call and counted
    ``recorder.recover_disk_full``. Stale temporary files without a journal are removed
    (``recorder.removed_stale_tmp``). Never raises for a bad file. ``disk`` is told before
    each write (default: lets every write through).

    Returns:
        The Parquet files written, sorted by name. A missing directory returns ``[]``.
    """
    root = Path(directory)
    if not root.is_dir():
        return []
    written: list[Path] = []
    for journal in sorted(root.glob(f".*{PARQUET_SUFFIX}{JOURNAL_SUFFIX}")):
        try:
            path = recover_journal(journal, counters, codec, compression_level, disk=disk)
        except _CorruptJournal as exc:
            _move_aside(journal, counters, str(exc))
            continue
        except Exception as exc:
            if is_disk_full(exc):
                counters.inc("recorder.recover_disk_full", message=f"{journal.name}: {exc}")
                log.error("no space to recover journal %s (kept for later): %s", journal, exc)
                continue
            log.exception("cannot recover journal %s", journal)
            _move_aside(journal, counters, f"{type(exc).__name__}: {exc}")
            continue
        if path is not None:
            written.append(path)
    stale = [
        *root.glob(f".*{PARQUET_SUFFIX}{TMP_SUFFIX}"),
        *root.glob(f".*{PARQUET_SUFFIX}{JOURNAL_SUFFIX}{NEW_SUFFIX}"),
    ]
    for p in sorted(stale):
        journal = journal_path(root / final_name_of(p))
        if journal.exists():  # belongs to a journal that could not be removed: keep
            continue
        with contextlib.suppress(OSError):
            p.unlink()
            counters.inc("recorder.removed_stale_tmp", message=p.name)
            log.info("removed stale temporary file %s", p)
    return sorted(written)


def _move_aside(journal: Path, counters: Counters, reason: str) -> None:
    counters.inc("recorder.unrecoverable_journal", message=f"{journal.name}: {reason}")
    log.error("journal %s cannot be recovered (%s): moved aside", journal, reason)
    try:
        os.replace(journal, journal.with_name(journal.name + ".corrupt"))
    except OSError:
        log.exception("cannot move %s aside", journal)

"""Conventions of a recordings directory: file names, work files and atomic, durable writes.

One flat directory holds every device's files:

- ``<device>_<UTC start>.parquet``: a segment (``20240501T120000_123456Z``, see
  :func:`rigwatch.timefmt.file_stamp`); ``-<n>`` is appended when the name is taken and
  ``-recovered`` marks a segment rebuilt from its journal after a crash;
- ``buffer_<device>_<UTC now>.parquet``: a snapshot of a ring buffer;
- hidden names (leading ``.``) are work files, never listed: ``.<name>.tmp`` (a Parquet file
  being written), ``.<name>.arrows`` (the crash journal of an open segment) and
  ``.<name>.arrows.new`` (a journal being created).

A visible ``.parquet`` file is complete: it appears by :func:`os.replace` of its temporary file
after the data and then the directory were flushed to stable storage.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # PyArrow is imported by the writers only: names and fsyncs need none
    import pyarrow as pa

PARQUET_SUFFIX = ".parquet"
TMP_SUFFIX = ".tmp"
JOURNAL_SUFFIX = ".arrows"
NEW_SUFFIX = ".new"
SNAPSHOT_PREFIX = "buffer_"
_NAME_RE = re.compile(r"^(?:buffer_)?(?P<device>.+)_\d{8}T\d{6}_\d{6}Z(?:-[a-z0-9-]+)?\.parquet$")


def tmp_path(final: Path) -> Path:
    """The hidden temporary file ``final`` is written to before it is renamed into place."""
    return final.with_name(f".{final.name}{TMP_SUFFIX}")


def journal_path(final: Path) -> Path:
    """The crash journal of the open segment that will become ``final``."""
    return final.with_name(f".{final.name}{JOURNAL_SUFFIX}")


def final_name_of(work_file: Path) -> str:
    """The visible file name a work file belongs to (``.x.parquet.tmp`` -> ``x.parquet``)."""
    name = work_file.name[1:] if work_file.name.startswith(".") else work_file.name
    for suffix in (f"{JOURNAL_SUFFIX}{NEW_SUFFIX}", TMP_SUFFIX, JOURNAL_SUFFIX):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def free_name(directory: Path, stem: str) -> str:
    """``<stem>.parquet``, or ``<stem>-<n>.parquet`` when that name or one of its work files
    exists in ``directory``."""
    n = 0
    while True:
        name = f"{stem}{PARQUET_SUFFIX}" if n == 0 else f"{stem}-{n}{PARQUET_SUFFIX}"
        final = directory / name
        if not (final.exists() or tmp_path(final).exists() or journal_path(final).exists()):
            return name
        n += 1


def guess_device(filename: str) -> str:
    """The device a file name says it belongs to (``""`` for a name of another pattern)."""
    m = _NAME_RE.match(filename)
    return m.group("device") if m else ""


def is_recording_name(filename: str) -> bool:
    """True for the visible name of a recording written in this directory's layout: a segment,
    a recovered segment or a buffer snapshot (``<device>_<UTC stamp>[-<suffix>].parquet``, with
    ``buffer_`` before it for a snapshot). Hidden work files and names of any other pattern
    are not recordings."""
    return not filename.startswith(".") and _NAME_RE.match(filename) is not None


def is_snapshot(filename: str) -> bool:
    """True for a buffer snapshot's file name."""
    return filename.startswith(SNAPSHOT_PREFIX)


def fsync_path(path: Path) -> None:
    """Flush a file's content to stable storage.

    Raises:
        OSError: the file cannot be opened or flushed.
    """
    fd = os.open(path, os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(directory: Path) -> None:
    """Make creations, renames and deletions in ``directory`` durable: best effort, a folder
    that cannot be opened or flushed is left as it is (no-op where unsupported: Windows).

    The one such helper of rigwatch: the recorder, the pipeline's stages and its manifest
    backups use it (this module imports no PyArrow at import time, so they can).
    """
    if os.name == "nt":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_batches_atomically(
    batches: Iterable[pa.RecordBatch | pa.Table],
    schema: pa.Schema,
    path: Path,
    codec: str = "zstd",
    compression_level: int | None = None,
    fsync: bool = True,
    before_write: Callable[[Path, int], object] | None = None,
) -> int:
    """Write record batches (or tables), one row group each, to ``path`` via its hidden
    temporary file and ``os.replace``; ``batches`` is consumed lazily, so memory holds one batch
    at a time. ``before_write(temporary file, bytes)`` is called before each row group (a
    seam through which tests make a write fail).

    Returns:
        Rows written.

    Raises:
        RecorderError: bad codec; OSError: I/O failure (the temporary file is removed, ``path``
            is untouched); whatever the iterator raises (likewise).
    """
    import pyarrow as pa

    from rigwatch.recordings.layout import open_parquet_writer

    tmp = tmp_path(path)
    rows = 0
    try:
        writer = open_parquet_writer(tmp, schema, codec, compression_level)
        try:
            for batch in batches:
                if before_write is not None:
                    before_write(tmp, batch.nbytes)
                if isinstance(batch, pa.Table):
                    writer.write_table(batch, row_group_size=max(1, batch.num_rows))
                else:
                    writer.write_batch(batch, row_group_size=max(1, batch.num_rows))
                rows += batch.num_rows
        finally:
            writer.close()
        if fsync:
            fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if fsync:
        fsync_dir(path.parent)
    return rows


def write_table_atomically(
    table_or_batches: pa.Table | Sequence[pa.RecordBatch],
    schema: pa.Schema,
    path: Path,
    codec: str = "zstd",
    compression_level: int | None = None,
    row_group_rows: int = 1 << 20,
    fsync: bool = True,
) -> Path:
    """Write rows as a recording to ``path`` via its hidden temporary file and ``os.replace``.

    Returns:
        ``path``.

    Raises:
        RecorderError: bad codec; OSError: I/O failure (the temporary file is removed, ``path``
            is untouched).
    """
    import pyarrow as pa

    table = (
        table_or_batches
        if isinstance(table_or_batches, pa.Table)
        else pa.Table.from_batches(list(table_or_batches), schema=schema)
    )
    parts = (table.slice(off, row_group_rows) for off in range(0, table.num_rows, row_group_rows))
    write_batches_atomically(parts, schema, path, codec, compression_level, fsync=fsync)
    return path

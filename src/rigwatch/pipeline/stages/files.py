"""File helpers of the stages: checksums, durable writes and copies, free disk space.

Every file a stage creates is written under a hidden temporary name in the destination folder
(``.<name>.tmp``: :func:`rigwatch.recordings.files.tmp_path`, as a recording), flushed to
stable storage (``fsync``), renamed into place (:func:`os.replace`, atomic on POSIX file
systems) and the folder flushed (:func:`rigwatch.recordings.files.fsync_dir`), so a visible
file is always complete.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from rigwatch.recordings.files import fsync_dir, tmp_path

CHUNK = 1 << 20
"""Read/copy block size, bytes."""

FreeBytes = Callable[[Path], int]
"""Free space of the file system holding a path, bytes (a seam: tests pass their own)."""


def disk_free_bytes(path: Path) -> int:
    """Bytes available to this user on the file system of ``path`` (``shutil.disk_usage``)."""
    return int(shutil.disk_usage(path).free)


def sha256_file(path: Path) -> tuple[str, int]:
    """SHA-256 (lowercase hex) and size in bytes of a file.

    Raises:
        OSError: the file cannot be read.
    """
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def work_name(final: Path, tag: str) -> Path:
    """A hidden work file beside ``final`` other than the temporary file it is written to
    (that one is :func:`rigwatch.recordings.files.tmp_path`, ``.<name>.tmp``): ``.<name>.<tag>``
    (``part``: a copy being checked, ``link``: a hard link being made)."""
    return final.with_name(f".{final.name}.{tag}")


def write_bytes_durably(final: Path, data: bytes) -> None:
    """Write ``data`` to ``final`` via a hidden temporary file, fsync and rename.

    Raises:
        OSError: the write failed (the temporary file is removed, ``final`` untouched).
    """
    tmp = tmp_path(final)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(final.parent)


def copy_durably(source: Path, final: Path, sync_dir: bool = True) -> tuple[str, int]:
    """Copy ``source`` to ``final`` via a hidden temporary file in ``final``'s folder; the
    copy is fsynced, read back and checked, then renamed into place (and the folder flushed,
    unless ``sync_dir`` is false: a caller copying a batch flushes the folder once with
    :func:`~rigwatch.recordings.files.fsync_dir` before it records the batch).

    Returns:
        SHA-256 and size of the bytes copied.

    Raises:
        OSError: reading or writing failed; ValueError: the copy read back differs from the
            source (the temporary file is removed in both cases, ``final`` untouched).
    """
    tmp = work_name(final, "part")
    digest = hashlib.sha256()
    size = 0
    try:
        with open(source, "rb") as src, open(tmp, "wb") as dst:
            while block := src.read(CHUNK):
                digest.update(block)
                dst.write(block)
                size += len(block)
            dst.flush()
            os.fsync(dst.fileno())
        written, written_size = sha256_file(tmp)
        if written != digest.hexdigest() or written_size != size:
            raise ValueError(
                f"copy of {source} to {tmp} reads back as {written} ({written_size} bytes), "
                f"not {digest.hexdigest()} ({size} bytes)"
            )
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if sync_dir:
        fsync_dir(final.parent)
    return digest.hexdigest(), size


def link_or_copy(source: Path, final: Path) -> None:
    """Make ``final`` hold ``source``'s bytes: a hard link on the same file system (free and
    independent of the source's later deletion), else a durable copy.

    Raises:
        OSError: neither worked.
    """
    tmp = work_name(final, "link")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        copy_durably(source, final)
        return
    os.replace(tmp, final)
    fsync_dir(final.parent)

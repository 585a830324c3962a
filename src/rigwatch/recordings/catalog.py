"""A recordings directory as a catalogue: listing its files and resolving client-given names.

Listing reads only Parquet footers (and the timestamp column of row groups without statistics),
once per version of a file. Resolving a name refuses anything that could reach outside the
directory. Neither ever fails on one bad file: a file that cannot be read is listed with its
error, and a name that cannot be resolved is refused with the reason.
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path, PurePosixPath, PureWindowsPath

import pyarrow.parquet as pq
from pydantic import BaseModel, Field

from rigwatch.errors import RecordingError
from rigwatch.recordings.files import PARQUET_SUFFIX, guess_device, is_snapshot
from rigwatch.recordings.layout import file_ts_range, read_meta

log = logging.getLogger(__name__)

MAX_NAME_BYTES = 255
"""Longest file name accepted, in UTF-8 bytes (``NAME_MAX`` of Linux file systems)."""


class UnsafePath(RecordingError):
    """A recording file name that could reach outside the recordings directory or is not a
    visible ``.parquet`` file. The message says why it was refused."""


class RecordingInfo(BaseModel):
    """One recording file as listed by :func:`list_recordings`."""

    filename: str = Field(description="File name inside the recordings directory.")
    device: str = Field(description="Device name (metadata; guessed from the file name).")
    size_bytes: int = Field(description="File size in bytes.")
    rows: int = Field(default=0, description="Sample rows.")
    start_ns: int | None = Field(default=None, description="First timestamp, ns since epoch.")
    end_ns: int | None = Field(default=None, description="Last timestamp, ns since the epoch.")
    channels: list[str] = Field(default_factory=list, description="Channels in column order.")
    units: list[str] = Field(default_factory=list, description="Unit of each channel.")
    sample_rate_hz: float | None = Field(default=None, description="Nominal rate in Hz.")
    driver: str | None = None
    station: str | None = None
    snapshot: bool = Field(default=False, description="A buffer snapshot, not a segment.")
    error: str | None = Field(
        default=None, description="Why the file could not be read (other fields best effort)."
    )


def describe_file(path: Path) -> RecordingInfo:
    """The :class:`RecordingInfo` of one file; a file that cannot be read gets ``error``.

    Raises:
        OSError: the file cannot be stat-ed.
    """
    size = path.stat().st_size
    name = path.name
    info = RecordingInfo(
        filename=name,
        device=guess_device(name),
        size_bytes=size,
        snapshot=is_snapshot(name),
    )
    try:
        with pq.ParquetFile(path) as pf:
            meta = read_meta(pf.schema_arrow, name)
            info.device = meta.device or info.device
            info.rows = int(pf.metadata.num_rows)
            info.channels = meta.channel_names
            info.units = meta.units
            info.sample_rate_hz = meta.sample_rate_hz
            info.driver = meta.driver
            info.station = meta.station
            span = file_ts_range(pf, name)
            if span is not None:
                info.start_ns, info.end_ns = span
    except Exception as exc:  # a corrupt file is listed, not fatal
        info.error = f"{type(exc).__name__}: {exc}"
        log.warning("cannot read recording %s: %s", path, exc)
    return info


def _is_inside(path: Path, directory: Path) -> bool:
    try:
        path.relative_to(directory)
    except ValueError:
        return False
    return True


def list_recordings(directory: str | os.PathLike[str]) -> list[RecordingInfo]:
    """Describe every visible ``*.parquet`` file of ``directory``, sorted by file name.

    Hidden files (temporary Parquet, journals), other extensions and sub-directories are
    skipped, and so are symlinks leading out of the directory. A file that cannot be read (a
    corrupt footer, a symlink loop, a file that vanished) is listed with ``error`` set. A
    missing directory lists as empty.

    Returns:
        One :class:`RecordingInfo` per file (each a fresh copy, safe to modify).
    """
    root = Path(directory)
    if not root.is_dir():
        return []
    real_root = root.resolve()
    out: list[RecordingInfo] = []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        name = entry.name
        if name.startswith(".") or not name.endswith(PARQUET_SUFFIX):
            continue
        path = root / name
        try:
            if entry.is_symlink() and not _is_inside(path.resolve(strict=True), real_root):
                continue
            if not entry.is_file():
                continue
            st = path.stat()
        except (OSError, RuntimeError) as exc:  # a symlink loop, a dangling link, a race
            reason = _os_reason(exc)
            log.warning("cannot stat recording %s: %s", path, reason)
            out.append(
                RecordingInfo(filename=name, device=guess_device(name), size_bytes=0, error=reason)
            )
            continue
        info = _describe_cached(str(path), st.st_size, st.st_mtime_ns, st.st_ino)
        out.append(info.model_copy(deep=True))
    return out


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, RuntimeError) or (isinstance(exc, OSError) and exc.errno == errno.ELOOP):
        return "symbolic link loop"
    if isinstance(exc, FileNotFoundError):
        return "file vanished or dangling symbolic link"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc)


_DESCRIBED: dict[tuple[str, int, int, int], RecordingInfo] = {}
_DESCRIBED_MAX = 100_000


def _describe_cached(path: str, size: int, mtime_ns: int, inode: int) -> RecordingInfo:
    """:func:`describe_file`, read once per version of a file.

    Segments appear by atomic rename and are never rewritten in place, so a file with the same
    name, size, modification time and inode holds the same footer: listing a folder of a
    day's segments reads only the new ones. A file that could not be read is not remembered,
    so a passing I/O error is not listed forever.
    """
    key = (path, size, mtime_ns, inode)
    info = _DESCRIBED.get(key)
    if info is None:
        info = describe_file(Path(path))
        if info.error is None:
            if len(_DESCRIBED) >= _DESCRIBED_MAX:
                _DESCRIBED.pop(next(iter(_DESCRIBED)))
            _DESCRIBED[key] = info
    return info


def safe_recording_path(directory: str | os.PathLike[str], filename: str) -> Path:
    """Resolve a client-given recording file name inside ``directory``.

    The name must be a plain, visible file name ending in ``.parquet`` of at most
    :data:`MAX_NAME_BYTES` bytes: no directory part (``/`` or ``\\``), no drive, not absolute,
    no leading ``.``, no NUL; and if it is a symlink its target must stay inside ``directory``.
    Existence is *not* checked.

    Returns:
        The resolved absolute path.

    Raises:
        UnsafePath: the name was refused; the message says why.
    """
    if not isinstance(filename, str) or not filename:
        raise UnsafePath("empty file name")
    if "\x00" in filename:
        raise UnsafePath("file name contains a NUL character")
    size = len(filename.encode("utf-8", "surrogatepass"))
    if size > MAX_NAME_BYTES:
        raise UnsafePath(f"file name of {size} bytes is longer than {MAX_NAME_BYTES} bytes")
    if PurePosixPath(filename).is_absolute() or PureWindowsPath(filename).is_absolute():
        raise UnsafePath(f"{filename!r} is an absolute path")
    if "/" in filename or "\\" in filename or PureWindowsPath(filename).drive:
        raise UnsafePath(f"{filename!r} has a directory part; give a bare file name")
    if filename.startswith("."):
        raise UnsafePath(f"{filename!r} is a hidden file")
    if not filename.endswith(PARQUET_SUFFIX):
        raise UnsafePath(f"{filename!r} is not a .parquet file")
    root = Path(directory).resolve()
    try:
        resolved = (root / filename).resolve()
    except (OSError, RuntimeError) as exc:
        raise UnsafePath(f"{filename!r} cannot be resolved: {_os_reason(exc)}") from None
    if not _is_inside(resolved, root) or resolved == root:
        raise UnsafePath(f"{filename!r} leads outside the recordings directory")
    return resolved

"""Online backups of a SQLite manifest through SQLite's backup API, with a retention count.

The copy is taken in one step (``pages=-1``) from a read transaction: in WAL mode that is a
consistent snapshot of the last commit before it started, and writers go on meanwhile (a
reader never blocks a writer). A step-wise copy would restart whenever another connection
writes (https://sqlite.org/backup.html), so it could starve on a busy manifest.

Each backup is written under a temporary name, checked (``PRAGMA quick_check``), switched to
``journal_mode=DELETE`` (one self-contained file), fsynced and renamed into place:
``<dest>/<stem>-<UTC stamp>.sqlite``. The oldest backups beyond ``keep`` are deleted.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path

from sqlalchemy import Engine

from rigwatch.errors import BackupError
from rigwatch.recordings.files import fsync_dir, tmp_path
from rigwatch.timefmt import file_stamp

log = logging.getLogger(__name__)


def _source_path(source: str | Path | Engine) -> Path:
    if isinstance(source, Engine):
        if source.dialect.name != "sqlite" or not source.url.database:
            raise BackupError(
                f"online backups are for SQLite manifests; back up "
                f"{source.url.render_as_string()} with the database's own tools (pg_dump)"
            )
        return Path(source.url.database)
    return Path(source)


def backup_sqlite(
    source: str | Path | Engine,
    dest_dir: str | Path,
    keep: int = 7,
    busy_timeout_s: float = 30.0,
) -> Path:
    """Copy the SQLite manifest ``source`` (a path or the manifest's engine) into
    ``dest_dir`` while it is in use, and keep only the newest ``keep`` backups.

    Returns:
        The new backup file.

    Raises:
        BackupError: ``keep`` < 1, the source is missing or not SQLite, the copy failed its
            check, or the destination cannot be written (no partial backup is left).
    """
    if keep < 1:
        raise BackupError(f"keep must be >= 1, not {keep}")
    src_path = _source_path(source)
    if not src_path.is_file():
        raise BackupError(f"manifest {src_path} does not exist")
    dest = Path(dest_dir)
    stem = src_path.stem
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(f"backup folder {dest}: {exc}") from exc
    final = dest / f"{stem}-{file_stamp(time.time_ns())}.sqlite"
    tmp = tmp_path(final)
    try:
        src = sqlite3.connect(src_path, timeout=busy_timeout_s)
        try:
            dst = sqlite3.connect(tmp)
            try:
                src.backup(dst, pages=-1)
                check = dst.execute("PRAGMA quick_check").fetchone()[0]
                if check != "ok":
                    raise BackupError(f"backup of {src_path} failed its check: {check}")
                dst.execute("PRAGMA journal_mode = DELETE")
                dst.commit()
            finally:
                dst.close()
        finally:
            src.close()
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        fsync_dir(dest)
    except (sqlite3.Error, OSError) as exc:
        raise BackupError(f"backup of {src_path} into {dest} failed: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    backups = sorted(dest.glob(f"{stem}-*.sqlite"))
    for old in backups[:-keep]:
        old.unlink(missing_ok=True)
        log.info("removed old manifest backup %s", old)
    log.info("manifest backup %s", final)
    return final

"""Where a SQLite manifest may live: on a local file system, never on a network share.

SQLite's WAL mode keeps its index in shared memory (the ``-shm`` file, mmapped) and relies on
POSIX locks; both only work between processes of one host (https://sqlite.org/wal.html,
"WAL does not work over a network filesystem"). A manifest on NFS or SMB would corrupt
silently, so opening one there is refused.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rigwatch.errors import ManifestLocationError

log = logging.getLogger(__name__)

MOUNTS_FILE = Path("/proc/mounts")

NETWORK_FS_TYPES = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "ncpfs",
        "afs",
        "coda",
        "9p",
        "ceph",
        "glusterfs",
        "lustre",
        "gpfs",
        "ocfs2",
        "gfs2",
        "davfs",
        "fuse.sshfs",
        "fuse.glusterfs",
        "fuse.ceph",
        "fuse.s3fs",
        "fuse.rclone",
        "fuse.davfs2",
        "fuse.gcsfuse",
        "fuse.smbnetfs",
        "fuse.cephfs",
    }
)
"""File-system types (third field of ``/proc/mounts``) that are shared over a network."""


@dataclass(frozen=True)
class Mount:
    """One line of ``/proc/mounts``: mount point and file-system type."""

    mount_point: str
    fs_type: str


def _unescape(field: str) -> str:
    """``/proc/mounts`` writes space, tab, newline and backslash as ``\\ooo`` octal."""
    out: list[str] = []
    i = 0
    while i < len(field):
        code = field[i + 1 : i + 4]
        if field[i] == "\\" and len(code) == 3 and code.isdigit():
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def read_mounts(mounts_file: Path = MOUNTS_FILE) -> list[Mount]:
    """The mounts of this host, from ``/proc/mounts``; empty when it cannot be read (not
    Linux), in which case no file system is recognised as a network one."""
    try:
        text = mounts_file.read_text()
    except OSError:
        log.debug("cannot read %s; network file systems are not detected", mounts_file)
        return []
    mounts: list[Mount] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3:
            mounts.append(Mount(_unescape(fields[1]), fields[2]))
    return mounts


def mount_of(path: Path, mounts: list[Mount]) -> Mount | None:
    """The mount holding ``path`` (the longest mount point that is a prefix of it; the last
    such line wins, as later mounts hide earlier ones)."""
    target = str(path)
    best: Mount | None = None
    for m in mounts:
        mp = m.mount_point.rstrip("/") or "/"
        inside = target == mp or target.startswith(mp + "/") or mp == "/"
        if inside and (best is None or len(mp) >= len(best.mount_point.rstrip("/") or "/")):
            best = m
    return best


def check_local(db_path: Path, mounts_reader: Callable[[], list[Mount]] | None = None) -> Path:
    """Resolve ``db_path`` (following symbolic links, also of a file not yet created) and
    check it lies on a local file system.

    Args:
        db_path: the SQLite file of the manifest.
        mounts_reader: returns the host's mounts (default: :func:`read_mounts`).

    Returns:
        The resolved absolute path.

    Raises:
        ManifestLocationError: the path is on a network file system; the message names the
            path, the mount point and the file-system type.
    """
    resolved = Path(os.path.realpath(db_path))
    mount = mount_of(resolved, (mounts_reader or read_mounts)())
    if mount is not None and mount.fs_type.lower() in NETWORK_FS_TYPES:
        raise ManifestLocationError(
            f"manifest {resolved} is on a network file system ({mount.fs_type} mounted at "
            f"{mount.mount_point}); SQLite in WAL mode needs a local disk: put the manifest "
            "on local storage, or use a PostgreSQL URL for workers on several hosts"
        )
    return resolved

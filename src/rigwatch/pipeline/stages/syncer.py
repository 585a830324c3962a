"""The syncer: artifacts copied to a share, verified, then marked synced.

Each file is copied under a hidden temporary name in the share (``.<name>.part``), flushed,
read back and compared with the artifact's checksum, then renamed into place; only then is
the ``sync`` stage completed (the local file stays until retention removes it). A file that
is already at its destination with the right checksum (the syncer died after the rename) is
accepted as synced.

When the share is missing (not a folder, not mounted when ``require_mount``, not writable) the
syncer claims nothing and its status says why; a copy that fails because the share went away
gives the items back. The other stages go on (local first) and the syncer resumes when the
share returns.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from rigwatch.errors import BadItem, StageWaiting
from rigwatch.pipeline.manifest import Lease, Manifest
from rigwatch.pipeline.stages.files import copy_durably, sha256_file
from rigwatch.pipeline.stages.status import StatusFile
from rigwatch.pipeline.stages.worker import ClaimingStage, Handled, WorkerSettings, data_path

log = logging.getLogger(__name__)


def share_problem(share: Path, require_mount: bool) -> str | None:
    """Why ``share`` cannot take files now, or ``None``."""
    if not share.is_dir():
        return f"share {share} is missing (not a folder)"
    if require_mount and not os.path.ismount(share):
        return f"share {share} is not mounted"
    if not os.access(share, os.W_OK | os.X_OK):
        return f"share {share} is not writable"
    return None


class Syncer(ClaimingStage):
    """The syncer stage.

    Args:
        share: the share's folder; require_mount: it must be a mount point.
    """

    name = "syncer"
    stage = "sync"

    def __init__(
        self,
        manifest: Manifest,
        share: Path,
        require_mount: bool = False,
        settings: WorkerSettings | None = None,
        status: StatusFile | None = None,
        owner: str | None = None,
    ) -> None:
        super().__init__(manifest, settings, status, owner)
        self.share = Path(share)
        self.require_mount = require_mount

    def ready(self) -> str | None:
        return share_problem(self.share, self.require_mount)

    def destination(self, lease: Lease) -> Path:
        """Where an artifact goes: ``<share>/<kind>/<file name>``."""
        return self.share / lease.artifact.kind / data_path(lease).name

    def handle(self, lease: Lease) -> Handled:
        source = data_path(lease)
        expected = lease.artifact.checksum
        if not source.exists():
            raise BadItem(f"{source}: local file does not exist")
        if expected is None:
            expected, _ = sha256_file(source)
        dest = self.destination(lease)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.exists():
                existing, size = sha256_file(dest)
                if existing == expected:
                    self.sync_dir_before_commit(dest.parent)  # its rename may not be flushed
                    return Handled(
                        {
                            "synced_to": str(dest),
                            "checksum": existing,
                            "size": size,
                            "already_there": True,
                        }
                    )
                log.warning("%s exists with another checksum: replacing it", dest)
            checksum, size = copy_durably(source, dest, sync_dir=False)
            self.sync_dir_before_commit(dest.parent)
        except (OSError, ValueError) as exc:
            problem = share_problem(self.share, self.require_mount)
            if problem is not None:
                raise StageWaiting(problem) from exc
            raise
        if checksum != expected:
            dest.unlink(missing_ok=True)
            raise BadItem(
                f"{source}: local file's checksum {checksum} differs from the manifest's "
                f"{expected} (changed after collection)"
            )
        # the copy was read back at the share and checked before its rename (copy_durably)
        return Handled({"synced_to": str(dest), "checksum": checksum, "size": size})

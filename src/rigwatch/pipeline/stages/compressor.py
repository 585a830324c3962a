"""The compressor: files of processed artifacts compressed with zstd or gzip where it pays.

Already compressed formats (PNG, JPEG, ``.gz``...; ``skip_suffixes``) and Parquet files whose
pages are compressed (rigwatch writes zstd) are left as they are (the result says why). Others
are written to ``<name>.<zst|gz>`` under a hidden temporary name, fsynced and renamed; the
manifest then records the new path, size and checksum (and the codec and original size and
checksum in the artifact's meta) in the same transaction as the completion; the original is
deleted only after that commit. A worker that dies before the commit leaves the original
as the artifact's file; the compression is redone.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from rigwatch.errors import BadItem
from rigwatch.pipeline.manifest import ArtifactChanges, Lease, Manifest
from rigwatch.pipeline.stages.files import CHUNK
from rigwatch.pipeline.stages.status import StatusFile
from rigwatch.pipeline.stages.worker import ClaimingStage, Handled, WorkerSettings, data_path
from rigwatch.recordings.files import fsync_dir, tmp_path

log = logging.getLogger(__name__)

SUFFIX = {"zstd": ".zst", "gzip": ".gz"}


def parquet_is_compressed(path: Path) -> bool:
    """True when the first column chunk of a Parquet file is compressed (unreadable files:
    False, they are compressed like any other file)."""
    try:
        import pyarrow.parquet as pq

        md = pq.ParquetFile(path).metadata
        if md.num_row_groups == 0 or md.num_columns == 0:
            return False
        return str(md.row_group(0).column(0).compression).upper() != "UNCOMPRESSED"
    except Exception:
        return False


def compress_file(
    source: Path, codec: Literal["zstd", "gzip"], level: int | None = None, sync_dir: bool = True
) -> tuple[Path, str, int]:
    """Compress ``source`` to ``source + .zst|.gz`` durably (temporary name, fsync, rename,
    and the folder flushed unless ``sync_dir`` is false: the caller flushes it).

    Returns:
        The compressed file, its SHA-256 and its size.

    Raises:
        OSError: reading or writing failed (the temporary file is removed).
    """
    final = source.with_name(source.name + SUFFIX[codec])
    tmp = tmp_path(final)
    digest = hashlib.sha256()

    class _Hashing:
        def __init__(self, fh: Any) -> None:
            self.fh = fh

        def write(self, data: bytes) -> int:
            digest.update(data)
            return int(self.fh.write(data))

    try:
        with open(source, "rb") as src, open(tmp, "wb") as raw:
            sink = _Hashing(raw)
            if codec == "zstd":
                import zstandard

                cctx = zstandard.ZstdCompressor(level=level or 3)
                size_in = os.fstat(src.fileno()).st_size  # the frame says its size
                with cctx.stream_writer(sink, size=size_in, closefd=False) as writer:  # type: ignore[arg-type]
                    _copy(src, writer)
            else:
                with gzip.GzipFile(  # type: ignore[call-overload]
                    filename=source.name,
                    mode="wb",
                    fileobj=sink,
                    compresslevel=level or 6,
                    mtime=0,
                ) as writer:
                    _copy(src, writer)
            raw.flush()
            os.fsync(raw.fileno())
            size = raw.tell()
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if sync_dir:
        fsync_dir(final.parent)
    return final, digest.hexdigest(), size


def _copy(src: Any, dst: Any) -> None:
    while block := src.read(CHUNK):
        dst.write(block)


class Compressor(ClaimingStage):
    """The compressor stage.

    Args:
        codec, level: the codec; skip_suffixes: suffixes left as they are.
    """

    name = "compressor"
    stage = "compress"

    def __init__(
        self,
        manifest: Manifest,
        codec: Literal["zstd", "gzip"] = "zstd",
        level: int | None = None,
        skip_suffixes: Iterable[str] = (),
        settings: WorkerSettings | None = None,
        status: StatusFile | None = None,
        owner: str | None = None,
    ) -> None:
        super().__init__(manifest, settings, status, owner)
        self.codec = codec
        self.level = level
        self.skip = tuple(s.lower() for s in skip_suffixes)

    def skip_reason(self, path: Path) -> str | None:
        """Why ``path`` is not compressed, or ``None``."""
        name = path.name.lower()
        if name.endswith(self.skip):
            return f"already a compressed format ({path.suffix})"
        if name.endswith(".parquet") and parquet_is_compressed(path):
            return "Parquet pages already compressed"
        return None

    def handle(self, lease: Lease) -> Handled:
        path = data_path(lease)
        if not path.exists():
            raise BadItem(f"{path}: file does not exist")
        reason = self.skip_reason(path)
        if reason is not None:
            return Handled({"compressed": False, "reason": reason})
        final, checksum, size = compress_file(path, self.codec, self.level, sync_dir=False)
        self.sync_dir_before_commit(final.parent)
        a = lease.artifact
        meta = {
            **a.meta,
            "codec": self.codec,
            "original_size": a.size_bytes,
            "original_checksum": a.checksum,
        }
        changes = ArtifactChanges(path=final, checksum=checksum, size_bytes=size, meta=meta)

        def remove_original() -> None:
            path.unlink(missing_ok=True)

        ratio = (a.size_bytes or 0) / size if size else None
        return Handled(
            {
                "compressed": True,
                "codec": self.codec,
                "path": str(final),
                "size": size,
                "ratio": ratio,
            },
            changes,
            remove_original,
        )

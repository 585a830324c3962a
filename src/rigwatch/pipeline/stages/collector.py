"""The collector: every ``interval_s`` it takes an image (synthetic or USB camera, or imports
existing images from a folder), reads the DS18B20 temperatures and takes over the station's
closed Parquet segments; each new file becomes an artifact with its SHA-256 and size.

Files are written into ``data_dir`` under a hidden temporary name, flushed and renamed before
they are added to the manifest; a file written but not added (the collector died in between)
is adopted at the next start. While the free space of ``data_dir`` is below
``min_free_bytes`` the collector pauses and its status says why; the other stages go on (and
retention frees space).

Artifacts:

- ``image``: ``image_%Y%m%d_%H%M%S_%f_cam<idx>.png`` (16-bit grayscale PNG), meta
  ``camera_index``, ``temperature_readings`` ``{sensor: degC}``, ``temperature_timestamp``;
- ``temperature`` (only when no camera runs): ``temperature_<stamp>.json`` with the reading;
- ``segment`` (kind configurable): a hard link (or copy) of a closed segment in
  ``data_dir/segments/``, meta from the file's own metadata (device, channels, rate, span).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rigwatch.errors import CameraError, DuplicateArtifact, PipelineError
from rigwatch.pipeline.config import FolderImportConfig, PipelineConfig
from rigwatch.pipeline.manifest import Manifest, NewArtifact
from rigwatch.pipeline.stages.files import (
    FreeBytes,
    copy_durably,
    disk_free_bytes,
    link_or_copy,
    sha256_file,
    write_bytes_durably,
)
from rigwatch.pipeline.stages.queries import CHUNK, known_paths
from rigwatch.pipeline.stages.sources.ds18b20 import Ds18b20Bus, TemperatureReading
from rigwatch.pipeline.stages.sources.names import image_name, parse_image_name
from rigwatch.pipeline.stages.status import StatusFile
from rigwatch.pipeline.stages.worker import StageLoop
from rigwatch.recordings.files import fsync_dir
from rigwatch.timefmt import file_stamp, iso_utc

if TYPE_CHECKING:
    import numpy as np

    from rigwatch.pipeline.stages.sources.cameras import Camera

log = logging.getLogger(__name__)

COMPRESSED_SUFFIXES = (".gz", ".zst")
SEGMENTS_SUBDIR = "segments"


def _variants(path: Path) -> list[str]:
    """The paths an artifact collected as ``path`` may have now (compressed or not)."""
    return [str(path), *(str(path) + s for s in COMPRESSED_SUFFIXES)]


def encode_png(image: np.ndarray) -> bytes:
    """A grayscale ``uint8``/``uint16`` image as PNG bytes (fast compression level)."""
    import numpy as np
    from PIL import Image

    arr = np.ascontiguousarray(image)
    if arr.dtype not in (np.uint8, np.uint16):
        arr = np.clip(arr, 0, 65535).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


class Collector(StageLoop):
    """The collector stage (see the module docstring).

    Args:
        manifest: the manifest.
        config: the pipeline config (``paths``, ``collector``).
        status: the status file.
        free_bytes: free space of a path (the disk seam; tests pass their own).
        camera: a camera to use instead of the configured one.
        temperature: a one-wire bus to use instead of the configured one.
    """

    name = "collector"

    def __init__(
        self,
        manifest: Manifest,
        config: PipelineConfig,
        status: StatusFile | None = None,
        *,
        free_bytes: FreeBytes = disk_free_bytes,
        camera: Camera | None = None,
        temperature: Ds18b20Bus | None = None,
    ) -> None:
        super().__init__(status)
        self.manifest = manifest
        self.config = config
        self.section = config.collector
        self.data_dir = Path(config.paths.data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.free_bytes = free_bytes
        cam = self.section.camera
        self.camera: Camera | None = camera
        # cameras (NumPy, the synthetic images' analysis helpers, OpenCV) are imported only
        # when one is configured: a collector importing a folder needs none of them
        if self.camera is None and cam.enabled and cam.type == "synthetic":
            from rigwatch.pipeline.stages.sources.cameras import SyntheticCamera

            self.camera = SyntheticCamera(cam.synthetic)
        elif self.camera is None and cam.enabled and cam.type == "usb":
            from rigwatch.pipeline.stages.sources.cameras import UsbCamera

            self.camera = UsbCamera(cam.usb)
        tcfg = self.section.temperature
        self.temperature = temperature
        if self.temperature is None and tcfg.enabled:
            self.temperature = Ds18b20Bus(tcfg.devices_dir, tcfg.sensors, tcfg.retries)
        self._imported: set[str] = set()
        self._segments_seen: set[str] = set()
        self._last_ns = 0
        self.adopted = self.adopt_orphans()

    # -- the cycle ----------------------------------------------------------------------------

    def cycle(self, stop: threading.Event) -> float:
        started = time.monotonic()
        reason = self.disk_reason()
        if reason is not None:
            self.status.set("paused", reason)
            return self.section.interval_s
        self.status.set("running")
        new: list[NewArtifact] = []
        reading = self._read_temperature()
        cam = self.section.camera
        if cam.enabled and cam.type == "folder":
            new += self._import_folder()
        elif self.camera is not None:
            image = self._capture(reading)
            if image is not None:
                new.append(image)
        elif reading is not None:
            new.append(self._temperature_artifact(reading))
        if self.section.segments.enabled:
            new += self._take_segments()
        self._add(new)
        self.status.set("idle")
        return max(0.0, self.section.interval_s - (time.monotonic() - started))

    def disk_reason(self) -> str | None:
        """Why the collector must pause (free space below the floor), or ``None``."""
        floor = self.section.min_free_bytes
        try:
            free = self.free_bytes(self.data_dir)
        except OSError as exc:
            return f"cannot read the free space of {self.data_dir}: {exc}"
        if free < floor:
            return (
                f"disk full: {free} bytes free on {self.data_dir}, below the floor of "
                f"{floor} bytes (min_free_bytes); collection resumes when space returns"
            )
        return None

    def close(self) -> None:
        if self.camera is not None:
            self.camera.close()

    # -- sources -----------------------------------------------------------------------------

    def _now_ns(self) -> int:
        now = max(time.time_ns(), self._last_ns + 1000)  # distinct microsecond stamps
        self._last_ns = now
        return now

    def _read_temperature(self) -> TemperatureReading | None:
        if self.temperature is None:
            return None
        reading = self.temperature.read()
        for sensor, err in reading.errors.items():
            self.status.count("sensor_errors", error=f"{sensor}: {err}")
        return reading

    def _capture(self, reading: TemperatureReading | None) -> NewArtifact | None:
        assert self.camera is not None
        ts = self._now_ns()
        try:
            frame = self.camera.capture()
        except CameraError as exc:
            self.status.count("camera_errors", error=str(exc))
            log.warning("%s", exc)
            return None
        path = self.data_dir / image_name(ts, self.section.camera.index)
        data = encode_png(frame)
        write_bytes_durably(path, data)
        meta: dict[str, Any] = {"camera_index": self.section.camera.index}
        meta.update(_temperature_meta(reading))
        return NewArtifact("image", path, hashlib.sha256(data).hexdigest(), len(data), ts, meta)

    def _temperature_artifact(self, reading: TemperatureReading) -> NewArtifact:
        path = self.data_dir / f"temperature_{file_stamp(reading.timestamp_ns)}.json"
        body = {
            "timestamp": iso_utc(reading.timestamp_ns),
            "data": reading.data,
            "errors": reading.errors,
        }
        data = json.dumps(body).encode()
        write_bytes_durably(path, data)
        return NewArtifact(
            "temperature",
            path,
            hashlib.sha256(data).hexdigest(),
            len(data),
            reading.timestamp_ns,
            _temperature_meta(reading),
        )

    def _import_folder(self) -> list[NewArtifact]:
        folder = self.section.camera.folder
        assert folder is not None
        try:
            listed = os.listdir(folder.source_dir)
        except OSError as exc:
            self.status.count("import_errors", error=f"{folder.source_dir}: {exc}")
            return []
        images: list[tuple[str, tuple[int, int]]] = []  # (name, (captured_ns, camera_index))
        for n in listed:
            if n in self._imported:
                continue
            parsed = parse_image_name(n)
            if parsed is not None:
                images.append((n, parsed))
        images.sort()  # by name (names are unique)
        out: list[NewArtifact] = []
        self._import_names(folder, images, out)
        if out:
            fsync_dir(self.data_dir)  # the renames of the batch, before it is recorded
        return out

    def _import_names(
        self,
        folder: FolderImportConfig,
        images: list[tuple[str, tuple[int, int]]],
        out: list[NewArtifact],
    ) -> None:
        """Copy the images ``(name, (captured_ns, camera_index))`` not in the manifest yet
        into ``data_dir``, appending their artifacts to ``out`` (at most ``per_cycle``)."""
        for start in range(0, len(images), CHUNK):
            chunk = images[start : start + CHUNK]
            variants = {n: _variants(self.data_dir / n) for n, _ in chunk}
            known = known_paths(self.manifest, [v for vs in variants.values() for v in vs])
            for name, (captured_ns, camera_index) in chunk:
                if any(v in known for v in variants[name]):
                    self._imported.add(name)
                    continue
                dest = self.data_dir / name
                try:
                    checksum, size = copy_durably(folder.source_dir / name, dest, sync_dir=False)
                except (OSError, ValueError) as exc:
                    self.status.count("import_errors", error=f"{name}: {exc}")
                    continue
                meta = {"camera_index": camera_index, "imported_from": str(folder.source_dir)}
                out.append(NewArtifact("image", dest, checksum, size, captured_ns, meta))
                if len(out) >= folder.per_cycle:
                    return

    def _take_segments(self) -> list[NewArtifact]:
        from rigwatch.recordings.catalog import describe_file
        from rigwatch.recordings.files import is_recording_name, is_snapshot

        seg = self.section.segments
        target_dir = self.data_dir / SEGMENTS_SUBDIR
        try:
            names = sorted(
                n
                for n in os.listdir(seg.folder)
                if n not in self._segments_seen and is_recording_name(n) and not is_snapshot(n)
            )
        except OSError as exc:
            self.status.count("segment_errors", error=f"{seg.folder}: {exc}")
            return []
        if not names:
            return []
        target_dir.mkdir(parents=True, exist_ok=True)
        variants = {n: _variants(target_dir / n) for n in names}
        known = known_paths(self.manifest, [v for vs in variants.values() for v in vs])
        out: list[NewArtifact] = []
        for name in names:
            self._segments_seen.add(name)
            if any(v in known for v in variants[name]):
                continue
            source = seg.folder / name
            dest = target_dir / name
            try:
                link_or_copy(source, dest)
                checksum, size = sha256_file(dest)
                info = describe_file(dest)
            except OSError as exc:  # deleted by the station's retention meanwhile
                self._segments_seen.discard(name)
                self.status.count("segment_errors", error=f"{name}: {exc}")
                continue
            meta = {
                "source": str(source),
                "device": info.device,
                "rows": info.rows,
                "channels": info.channels,
                "units": info.units,
                "sample_rate_hz": info.sample_rate_hz,
                "station": info.station,
                "start_ns": info.start_ns,
                "end_ns": info.end_ns,
                "read_error": info.error,
            }
            out.append(NewArtifact(seg.kind, dest, checksum, size, info.start_ns, meta))
        return out

    # -- manifest -------------------------------------------------------------------------------

    def _add(self, new: list[NewArtifact]) -> None:
        if not new:
            return
        try:
            self.manifest.add_many(new)
            added = len(new)
        except DuplicateArtifact:
            added = 0
            for a in new:
                try:
                    self.manifest.add(a)
                    added += 1
                except DuplicateArtifact:
                    log.info("%s is already in the manifest", a.path)
        for a in new:
            name = Path(a.path).name
            if a.kind == "image":
                self._imported.add(name)
        self.status.count("done", added)

    def adopt_orphans(self) -> int:
        """Add files of ``data_dir`` written by a collector that died before adding them;
        remove originals left beside their compressed artifact. Returns how many were added."""
        # (file, where, (captured_ns, camera_index) of an image's name)
        candidates: list[tuple[Path, str, tuple[int, int] | None]] = []
        dirs = [(self.data_dir, "top"), (self.data_dir / SEGMENTS_SUBDIR, "segments")]
        for folder, where in dirs:
            try:
                names = os.listdir(folder)
            except OSError:
                continue
            for n in names:
                if n.startswith(".") or n.endswith(COMPRESSED_SUFFIXES):
                    continue
                p = folder / n
                parsed = None
                if where == "top":
                    parsed = parse_image_name(n)
                    if parsed is None and not (
                        n.startswith("temperature_") and n.endswith(".json")
                    ):
                        continue
                if where == "segments":
                    from rigwatch.recordings.files import is_recording_name

                    if not is_recording_name(n):
                        continue
                candidates.append((p, where, parsed))
        if not candidates:
            return 0
        known = known_paths(self.manifest, [v for p, _, _ in candidates for v in _variants(p)])
        new: list[NewArtifact] = []
        for p, where, parsed in candidates:
            if str(p) in known:
                continue
            if any(v in known for v in _variants(p)[1:]):
                p.unlink(missing_ok=True)  # the original of a compressed artifact
                continue
            try:
                checksum, size = sha256_file(p)
            except OSError:
                continue
            if where == "segments":
                new.append(NewArtifact(self.section.segments.kind, p, checksum, size))
            elif p.suffix == ".json":
                new.append(NewArtifact("temperature", p, checksum, size))
            else:
                assert parsed is not None
                new.append(
                    NewArtifact("image", p, checksum, size, parsed[0], {"camera_index": parsed[1]})
                )
        try:
            self._add(new)
        except PipelineError as exc:
            log.warning("adopting %d files failed: %s", len(new), exc)
            return 0
        if new:
            log.info("adopted %d files written before a crash", len(new))
        return len(new)


def _temperature_meta(reading: TemperatureReading | None) -> dict[str, Any]:
    if reading is None:
        return {}
    return {
        "temperature_readings": reading.data,
        "temperature_timestamp": iso_utc(reading.timestamp_ns),
        "temperature_errors": reading.errors or None,
    }

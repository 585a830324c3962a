"""What the pipeline's TUI shows, without the UI: each stage process's state and throughput,
the manifest's counts (read only), starting and stopping through the supervisor, calibration
on the newest image, and one frame from the configured camera.

Everything here blocks (files, the database, a camera, a calibration run); the TUI calls it
from worker threads. :class:`Monitor` itself is meant for one thread at a time.

A stage's state shown is the one of its status file (``running``, ``idle``, ``waiting``,
``paused``, ``starting``, ``stopping``, ``stopped``) with these additions:

- ``crashed``: the supervisor restarts it after it exited (exit code and backoff in the
  reason), or its status file names a state other than ``stopped`` but its process is gone;
- ``stopped`` with reason ``no status file``: it never ran with this state folder.

Throughput is items finished (``done`` + ``failed`` of the status file) per second over the
last minute, from the counters sampled at each poll; it starts again when the process
restarts (new pid, counters reset).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import psutil  # type: ignore[import-untyped]
from sqlalchemy.exc import SQLAlchemyError

from rigwatch.errors import CameraError, ManifestError, PipelineError
from rigwatch.pipeline.config import PipelineConfig, StageName, load_pipeline_config
from rigwatch.pipeline.manifest import Manifest, Stage
from rigwatch.pipeline.manifest.database import (
    create_manifest_engine,
    current_revision,
    head_revision,
    manifest_url,
)
from rigwatch.pipeline.stages.sources.cameras import Camera
from rigwatch.pipeline.stages.sources.names import parse_image_name

log = logging.getLogger(__name__)

MANIFEST_STAGE: dict[StageName, str] = {
    "collector": Stage.COLLECT.value,
    "processor": Stage.PROCESS.value,
    "reporter": Stage.REPORT.value,
    "compressor": Stage.COMPRESS.value,
    "syncer": Stage.SYNC.value,
    "retention": Stage.RETENTION.value,
}
"""The manifest stage each stage process works on."""

THROUGHPUT_WINDOW_S = 60.0
"""Throughput is averaged over this many seconds."""

FEATURES_FILE = "Feature_locations.toml"
CHIP_MAPS_FILE = "chip_maps.toml"
TEMPLATE_FILE = "label_template.png"
"""Default calibration inputs, looked for in the config's folder."""


# -- stage rows -----------------------------------------------------------------------------


@dataclass(frozen=True)
class StageRow:
    """One stage process as shown.

    Attributes:
        name: process name (``processor``, ``processor-2``...); stage: its stage.
        state: see the module docstring; reason: why it waits, pauses or crashed.
        counts: ``{status: n}`` of its manifest stage (shared by the workers of one stage).
        throughput: items per second over the last minute (``None``: not measured yet).
        last_error: the last error its status file reports.
        restarts: restarts by the supervisor.
    """

    name: str
    stage: StageName
    state: str
    reason: str | None
    counts: Mapping[str, int]
    throughput: float | None
    last_error: str | None
    restarts: int = 0


@dataclass(frozen=True)
class Snapshot:
    """One poll of the pipeline.

    Attributes:
        running: the supervisor runs; supervisor_pid: its pid (from its state file).
        rows: one per stage process, in start order.
        counts: ``{manifest stage: {status: n}}``; counts_error: why they are missing.
        new_errors: ``(process name, error)`` first seen in this poll.
    """

    running: bool
    supervisor_pid: int | None
    rows: tuple[StageRow, ...]
    counts: Mapping[str, Mapping[str, int]]
    counts_error: str | None
    new_errors: tuple[tuple[str, str], ...] = ()


class Throughput:
    """Items per second per process over a sliding window, from a monotonic counter.

    Args:
        window_s: the window, seconds.
    """

    def __init__(self, window_s: float = THROUGHPUT_WINDOW_S) -> None:
        self.window_s = window_s
        self._samples: dict[str, deque[tuple[float, int]]] = {}
        self._pids: dict[str, int | None] = {}

    def add(self, name: str, t_s: float, pid: int | None, total: int) -> float | None:
        """Record ``total`` items finished by process ``name`` at monotonic time ``t_s``.

        Returns:
            Items per second since the newest sample at or before the window's start;
            ``None`` with a single sample (just started, or the process restarted).
        """
        samples = self._samples.setdefault(name, deque())
        if self._pids.get(name) != pid or (samples and total < samples[-1][1]):
            samples.clear()
        self._pids[name] = pid
        samples.append((t_s, total))
        # keep the newest sample at or before the window's start: the span covers the window
        while len(samples) > 2 and t_s - samples[1][0] >= self.window_s:
            samples.popleft()
        t0, n0 = samples[0]
        if len(samples) < 2 or t_s <= t0:
            return None
        return (total - n0) / (t_s - t0)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie does not)."""
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def stage_state(
    status: Mapping[str, Any] | None,
    child: Mapping[str, Any] | None,
    supervised: bool,
    alive: Callable[[int], bool] = pid_alive,
) -> tuple[str, str | None]:
    """``(state, reason)`` of a stage process from its status file and the supervisor's view
    of it (``child``: its entry in ``supervisor.json``; ``supervised``: the supervisor runs)."""
    if supervised and child is not None and child.get("state") == "restarting":
        code = child.get("last_exit")
        wait = child.get("restart_in_s")
        return "crashed", f"exited with {code}; restart in {wait} s"
    if status is None:
        return ("starting", None) if supervised else ("stopped", "no status file")
    state = str(status.get("state", "?"))
    reason = status.get("reason")
    reason_text = None if reason is None else str(reason)
    if state == "stopped":
        return state, reason_text
    pid = status.get("pid")
    if isinstance(pid, int) and not alive(pid):
        return "crashed", f"process {pid} is gone (its last state: {state})"
    return state, reason_text


class ManifestCounts:
    """The manifest's counts per stage and status, read only: a missing SQLite file is not
    created and an old schema is not upgraded (the stages do that)."""

    def __init__(self, config: PipelineConfig) -> None:
        self.config = config
        self._manifest: Manifest | None = None

    def _open(self) -> Manifest:
        from rigwatch.pipeline.stages.build import flow_of

        target = self.config.manifest_target()
        url = manifest_url(target)
        if url.get_backend_name() == "sqlite" and not Path(str(url.database)).is_file():
            raise ManifestError(f"no manifest at {url.database} yet (the stages create it)")
        engine = create_manifest_engine(target, synchronous=self.config.manifest.synchronous)
        try:
            revision = current_revision(engine)
            head = head_revision()
            if revision != head:
                raise ManifestError(
                    f"manifest {target} has schema {revision}, not {head}: start a stage to "
                    f"upgrade it"
                )
        except SQLAlchemyError as exc:
            engine.dispose()
            raise ManifestError(f"cannot read manifest {target}: {exc}") from exc
        except BaseException:
            engine.dispose()
            raise
        return Manifest(engine, flow=flow_of(self.config))

    def read(self) -> dict[str, dict[str, int]]:
        """``{manifest stage: {status: n}}``.

        Raises:
            ManifestError: missing, unreadable or not yet migrated manifest.
        """
        if self._manifest is None:
            self._manifest = self._open()
        try:
            return self._manifest.counts()
        except ManifestError:
            self.close()
            raise

    def close(self) -> None:
        """Close its connections (opened again by the next :meth:`read`)."""
        if self._manifest is not None:
            self._manifest.close()
            self._manifest = None


class Monitor:
    """Polls the status files, the supervisor's state and the manifest of one config.

    The config is read once, here: a poll only reads state. The stage rows the TUI shows are
    the config's processes as read now (an edited config is seen by a new monitor).

    Args:
        config_path: the pipeline's TOML config.
        alive: tells whether a pid runs (tests pass their own).
        clock: monotonic seconds (for the throughput).

    Raises:
        ConfigError: the config cannot be read.
    """

    def __init__(
        self,
        config_path: Path,
        *,
        alive: Callable[[int], bool] = pid_alive,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config_path = Path(config_path)
        self.config = load_pipeline_config(self.config_path)
        self.alive = alive
        self.clock = clock
        self.throughput = Throughput()
        self.counts = ManifestCounts(self.config)
        self._seen_errors: dict[str, str] = {}

    def process_names(self) -> list[tuple[StageName, str]]:
        """``(stage, process name)`` of every stage process the supervisor starts."""
        from rigwatch.pipeline.supervisor import process_names

        return process_names(self.config)

    def poll(self) -> Snapshot:
        """Read the state once: the status files, the supervisor's state and the manifest's
        counts (the config was read once, by the constructor)."""
        from rigwatch.pipeline.supervisor import status_of

        info = status_of(self.config, with_counts=False)
        running = bool(info.get("running"))
        sup = info.get("supervisor") or {}
        children: Mapping[str, Any] = sup.get("children") or {}
        counts: dict[str, dict[str, int]] = {}
        counts_error = None
        try:
            counts = self.counts.read()
        except ManifestError as exc:
            counts_error = str(exc)
        now = self.clock()
        rows: list[StageRow] = []
        new_errors: list[tuple[str, str]] = []
        for stage, name in self.process_names():
            st = info.get("stages", {}).get(name)
            child = children.get(name)
            state, reason = stage_state(st, child, running, self.alive)
            rate = None
            last_error = None
            if st is not None:
                total = int(st.get("done", 0)) + int(st.get("failed", 0))
                pid = st.get("pid")
                rate = self.throughput.add(name, now, pid if isinstance(pid, int) else None, total)
                last_error = st.get("last_error") or None
            if last_error and self._seen_errors.get(name) != last_error:
                self._seen_errors[name] = str(last_error)
                new_errors.append((name, str(last_error)))
            rows.append(
                StageRow(
                    name=name,
                    stage=stage,
                    state=state,
                    reason=reason,
                    counts=counts.get(MANIFEST_STAGE[stage], {}),
                    throughput=rate,
                    last_error=None if last_error is None else str(last_error),
                    restarts=int((child or {}).get("restarts", 0)),
                )
            )
        sup_pid = sup.get("pid") if running else None
        return Snapshot(
            running=running,
            supervisor_pid=sup_pid if isinstance(sup_pid, int) else None,
            rows=tuple(rows),
            counts=counts,
            counts_error=counts_error,
            new_errors=tuple(new_errors),
        )

    def close(self) -> None:
        """Close the manifest's connections."""
        self.counts.close()


# -- start and stop -------------------------------------------------------------------------


class PipelineControl(Protocol):
    """Starts and stops every stage (the supervisor)."""

    def up(self) -> int:
        """Start the supervisor; returns its pid.

        Raises:
            PipelineError: already running or did not come up.
        """
        ...

    def down(self) -> bool:
        """Stop the supervisor; False when none ran.

        Raises:
            PipelineError: it did not stop in time.
        """
        ...


@dataclass(frozen=True)
class SupervisorControl:
    """:class:`PipelineControl` through :mod:`rigwatch.pipeline.supervisor`."""

    config_path: Path

    def up(self) -> int:
        from rigwatch.pipeline.supervisor import up

        return up(self.config_path)

    def down(self) -> bool:
        from rigwatch.pipeline.supervisor import down

        return down(self.config_path)


# -- calibration ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CalibrationFiles:
    """The inputs and output folder of calibration.

    Attributes:
        features: ``Feature_locations.toml``; chip_maps: chip maps per chip type (TOML/JSON);
        template: image of one label mark; out_dir: where ``ROI_manifest.json`` and
        ``located_rois.png`` go.
    """

    features: Path
    chip_maps: Path
    template: Path
    out_dir: Path

    @classmethod
    def defaults(cls, config: PipelineConfig, config_path: Path) -> CalibrationFiles:
        """Files in the config's folder; the output next to the ROI manifest the grating
        analysis reads (else the config's folder)."""
        base = Path(config_path).resolve().parent
        out = base
        for entry in config.processor.plugins.get("image", []):
            roi = entry.options.get("roi_manifest")
            if entry.name == "grating" and isinstance(roi, str):
                out = (base / roi).parent
                break
        return cls(base / FEATURES_FILE, base / CHIP_MAPS_FILE, base / TEMPLATE_FILE, out)


@dataclass(frozen=True)
class CalibrationOutcome:
    """A calibration run: the image used and what was found."""

    image: Path
    rois: int
    labels: int
    image_angle_deg: float
    scale: float
    rms_residual_px: float
    roi_manifest: Path
    picture: Path


def newest_image(data_dir: Path) -> Path:
    """The newest image of ``data_dir`` by the time in its name
    (``image_%Y%m%d_%H%M%S_%f_cam<idx>.png``).

    Raises:
        PipelineError: the folder is missing or holds no such image.
    """
    folder = Path(data_dir)
    if not folder.is_dir():
        raise PipelineError(f"data folder {folder} does not exist")
    best: tuple[int, str] | None = None
    for p in folder.glob("image_*.png"):
        parsed = parse_image_name(p.name)
        if parsed is not None and (best is None or (parsed[0], p.name) > best):
            best = (parsed[0], p.name)
    if best is None:
        raise PipelineError(f"no image named image_<time>_cam<idx>.png in {folder}")
    return folder / best[1]


def run_calibration(files: CalibrationFiles, data_dir: Path) -> CalibrationOutcome:
    """Calibrate on the newest image of ``data_dir`` (see
    :func:`rigwatch.pipeline.analysis.calibration.calibrate`).

    Raises:
        PipelineError: no image; AnalysisError (CalibrationError, ImageError): a missing or
            malformed input, labels not found (the message names the file or label).
    """
    from rigwatch.pipeline.analysis.calibration import calibrate, load_chip_maps
    from rigwatch.pipeline.analysis.images import read_image

    image_path = newest_image(data_dir)
    chip_maps = load_chip_maps(files.chip_maps)
    template = read_image(files.template)
    image = read_image(image_path)
    files.out_dir.mkdir(parents=True, exist_ok=True)
    result = calibrate(image, files.features, chip_maps, template, files.out_dir)
    return CalibrationOutcome(
        image=image_path,
        rois=len(result.manifest.rois),
        labels=len(result.matches),
        image_angle_deg=result.manifest.image_angle,
        scale=result.transform.scale,
        rms_residual_px=result.rms_residual_px,
        roi_manifest=files.out_dir / "ROI_manifest.json",
        picture=files.out_dir / "located_rois.png",
    )


# -- live capture ---------------------------------------------------------------------------


def open_camera(config: PipelineConfig) -> Camera:
    """The configured camera, for live capture (whether or not the collector uses it).

    A synthetic camera does not write its ROI manifest here.

    Raises:
        CameraError: a folder importer is configured (no live frames), OpenCV missing, or the
            USB camera cannot be opened.
    """
    from rigwatch.pipeline.stages.sources.cameras import SyntheticCamera, UsbCamera

    cam = config.collector.camera
    if cam.type == "synthetic":
        return SyntheticCamera(cam.synthetic.model_copy(update={"roi_manifest": None}))
    if cam.type == "usb":
        return UsbCamera(cam.usb)
    raise CameraError(f"camera type {cam.type!r} gives no live frames: configure synthetic or usb")


PREVIEW_RAMP = " .:-=+*#%@"
"""Characters from dark to bright for the text preview."""


@dataclass(frozen=True)
class FrameStats:
    """Basic statistics of one frame (counts of the camera's dtype).

    Attributes:
        shape: ``(rows, cols)``; dtype: its NumPy dtype name.
        minimum, maximum, mean, std: over all pixels.
        saturated: fraction of pixels at the dtype's maximum (integer frames; else 0).
    """

    shape: tuple[int, int]
    dtype: str
    minimum: float
    maximum: float
    mean: float
    std: float
    saturated: float
    preview: tuple[str, ...] = field(default=(), repr=False)

    @classmethod
    def of(cls, frame: np.ndarray, preview_rows: int = 0) -> FrameStats:
        """Statistics of ``frame`` (2-D), with a text preview of ``preview_rows`` lines.

        Raises:
            CameraError: not a non-empty 2-D array.
        """
        arr = np.asarray(frame)
        if arr.ndim != 2 or arr.size == 0:
            raise CameraError(f"expected a non-empty 2-D frame, got shape {arr.shape}")
        sat = 0.0
        if arr.dtype.kind in "ui":
            sat = float(np.count_nonzero(arr == np.iinfo(arr.dtype).max)) / arr.size
        return cls(
            shape=(int(arr.shape[0]), int(arr.shape[1])),
            dtype=str(arr.dtype),
            minimum=float(arr.min()),
            maximum=float(arr.max()),
            mean=float(arr.mean(dtype=np.float64)),
            std=float(arr.std(dtype=np.float64)),
            saturated=sat,
            preview=text_preview(arr, preview_rows) if preview_rows > 0 else (),
        )


def text_preview(frame: np.ndarray, rows: int) -> tuple[str, ...]:
    """A coarse picture of ``frame`` in ``rows`` lines of characters (block means, min-max
    scaled onto :data:`PREVIEW_RAMP`; two columns per row of blocks for the terminal's cells,
    about twice as high as wide)."""
    arr = np.asarray(frame, dtype=np.float64)
    h, w = arr.shape
    rows = max(1, min(rows, h))
    cols = max(1, min(w, round(2 * rows * w / h)))
    r_edges = np.linspace(0, h, rows + 1).astype(int)
    c_edges = np.linspace(0, w, cols + 1).astype(int)
    # block sums by cumulative sums over the edges, then means
    cum = np.zeros((h + 1, w + 1))
    cum[1:, 1:] = arr.cumsum(0).cumsum(1)
    sums = (
        cum[np.ix_(r_edges[1:], c_edges[1:])]
        - cum[np.ix_(r_edges[:-1], c_edges[1:])]
        - cum[np.ix_(r_edges[1:], c_edges[:-1])]
        + cum[np.ix_(r_edges[:-1], c_edges[:-1])]
    )
    areas = np.outer(np.diff(r_edges), np.diff(c_edges))
    means = sums / np.maximum(areas, 1)
    lo, hi = float(means.min()), float(means.max())
    scale = (len(PREVIEW_RAMP) - 1) / (hi - lo) if hi > lo else 0.0
    idx = np.clip(np.rint((means - lo) * scale), 0, len(PREVIEW_RAMP) - 1).astype(int)
    return tuple("".join(PREVIEW_RAMP[i] for i in line) for line in idx)

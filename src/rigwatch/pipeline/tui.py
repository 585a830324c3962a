"""The pipeline's terminal UI (Textual): stage states, counts per status, throughput and
errors, start and stop of every stage, calibration and live capture.

Run it with ``rigwatch pipeline tui --config configs/phorest.toml``
(:func:`rigwatch.pipeline.tui_cli.tui`). Keys:

=====  ==========================================================================
``u``  start every stage (the supervisor, in the background: it keeps running when the
       TUI or the SSH session closes)
``d``  stop every stage (each finishes its current item)
``c``  calibrate ("locate gratings") on the newest image of ``data_dir``
``l``  live capture: one frame of the configured camera, its statistics and a preview
``a``  automatic live capture on or off (a frame every ``capture_s``: aligning, focusing)
``r``  refresh now (else every ``refresh_s``)
``q``  quit (the pipeline keeps running)
=====  ==========================================================================

Everything that blocks (status files, the manifest, the supervisor, calibration, the camera)
runs in worker threads; the UI stays responsive. The manifest is only read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.timer import Timer
from textual.widgets import Button, DataTable, Footer, Header, Log, Static

from rigwatch.errors import RigwatchError
from rigwatch.pipeline.monitor import (
    CalibrationFiles,
    FrameStats,
    Monitor,
    PipelineControl,
    Snapshot,
    SupervisorControl,
    open_camera,
    run_calibration,
)
from rigwatch.pipeline.stages.sources.cameras import Camera
from rigwatch.pipeline.tui_cli import REFRESH_S

log = logging.getLogger(__name__)

STATUSES = ("pending", "leased", "done", "failed")
"""Manifest statuses shown as columns (``blocked`` is shown too, last)."""
CELL_CHARS = 48
PREVIEW_ROWS = 12
LOG_LINES = 500
CAPTURE_S = 1.0
"""Default time between two frames of automatic live capture."""

COLUMNS = ("stage", "state", "reason", *STATUSES, "blocked", "items/s", "restarts", "last error")


def _clip(text: str | None, n: int) -> str:
    if not text:
        return ""
    line = " ".join(text.split())
    return line if len(line) <= n else line[: n - 1] + "…"


def _rate(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.2f}"


def _stamp() -> str:
    return time.strftime("%H:%M:%S")


class PipelineTui(App[None]):
    """The pipeline's TUI.

    Args:
        config_path: the pipeline's TOML config.
        control: starts and stops the stages (default: the supervisor of ``config_path``).
        calibration: calibration inputs (default: :meth:`CalibrationFiles.defaults`).
        camera_factory: opens the camera for live capture (default: the configured one).
        monitor: polls the pipeline (default: a :class:`Monitor` of ``config_path``).
        refresh_s: time between two polls.
        capture_s: time between two frames of automatic live capture.

    Raises:
        ConfigError: the config cannot be read (when no ``monitor`` is given).
    """

    TITLE = "rigwatch pipeline"
    CSS = """
    #top { height: 1; }
    #supervisor { width: 1fr; }
    #action { width: 2fr; }
    #stages { height: auto; max-height: 16; }
    #buttons { height: 3; }
    #buttons Button { margin: 0 1 0 0; }
    #panels { height: 1fr; }
    #left { width: 1fr; }
    #calibration, #capture-view { border: round $primary; padding: 0 1; height: auto; }
    #errors { width: 1fr; border: round $error; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("u", "start", "Start all"),
        Binding("d", "stop", "Stop all"),
        Binding("c", "calibrate", "Calibrate"),
        Binding("l", "capture", "Live capture"),
        Binding("a", "auto_capture", "Auto capture"),
        Binding("r", "refresh", "Refresh"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        config_path: Path,
        *,
        control: PipelineControl | None = None,
        calibration: CalibrationFiles | None = None,
        camera_factory: Callable[[], Camera] | None = None,
        monitor: Monitor | None = None,
        refresh_s: float = REFRESH_S,
        capture_s: float = CAPTURE_S,
    ) -> None:
        super().__init__()
        self.config_path = Path(config_path)
        self.monitor = monitor or Monitor(self.config_path)
        config = self.monitor.config
        self.control: PipelineControl = control or SupervisorControl(self.config_path)
        self.calibration = calibration or CalibrationFiles.defaults(config, self.config_path)
        self.camera_factory = camera_factory or (lambda: open_camera(config))
        self.refresh_s = refresh_s
        self.capture_s = capture_s
        self.data_dir = Path(config.paths.data_dir)
        self._camera: Camera | None = None
        self._polling = threading.Lock()
        self._busy = {kind: threading.Lock() for kind in ("control", "calibrate", "capture")}
        self.snapshot: Snapshot | None = None
        self._counts_error: str | None = None
        self._poll_error: str | None = None
        self._auto: Timer | None = None

    # -- layout ------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="top"):
            yield Static("supervisor: ?", id="supervisor", markup=False)
            yield Static("", id="action", markup=False)
        yield DataTable(id="stages", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="buttons"):
            yield Button("Start all (u)", id="start", variant="success")
            yield Button("Stop all (d)", id="stop", variant="error")
            yield Button("Calibrate (c)", id="calibrate", variant="primary")
            yield Button("Live capture (l)", id="capture", variant="primary")
            yield Button("Refresh (r)", id="refresh")
        with Horizontal(id="panels"):
            with Vertical(id="left"):
                yield Static("calibration: not run", id="calibration", markup=False)
                yield Static("live capture: no frame", id="capture-view", markup=False)
            yield Log(id="errors", max_lines=LOG_LINES)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = str(self.config_path)
        table = self.query_one("#stages", DataTable)
        for name in COLUMNS:
            table.add_column(name, key=name)
        for stage, name in self.monitor.process_names():
            table.add_row(*([Text(name)] + [Text("")] * (len(COLUMNS) - 1)), key=name)
            log.debug("row %s for stage %s", name, stage)
        self.query_one("#calibration", Static).border_title = "Calibration"
        self.query_one("#capture-view", Static).border_title = "Live capture"
        self.query_one("#errors", Log).border_title = "Errors"
        self.action_refresh()
        self.set_interval(self.refresh_s, self.action_refresh)

    def on_unmount(self) -> None:
        if self._camera is not None:
            self._camera.close()
            self._camera = None
        self.monitor.close()

    # -- helpers -----------------------------------------------------------------------------

    def _error(self, source: str, message: str) -> None:
        self.query_one("#errors", Log).write_line(f"{_stamp()} {source}: {message}")

    def _say(self, message: str) -> None:
        self.query_one("#action", Static).update(message)
        self.notify(message, timeout=4)

    def _call(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn`` on the UI's thread from a worker thread (dropped once the app is gone)."""
        try:
            self.call_from_thread(fn, *args)
        except RuntimeError as exc:  # the app stopped meanwhile
            log.debug("UI update dropped: %s", exc)

    def _in_thread(
        self,
        kind: str,
        work: Callable[[], None],
        announce: Callable[[], None] | None = None,
        quiet: bool = False,
    ) -> None:
        """Run a user action in a worker thread, one at a time per ``kind`` (start and stop
        are one kind: ``control``); ``announce`` runs first, on the UI's thread."""
        lock = self._busy[kind]
        if not lock.acquire(blocking=False):
            if not quiet:
                self.notify(f"{kind}: the previous one has not finished yet", severity="warning")
            return
        if announce is not None:
            announce()

        def run() -> None:
            try:
                work()
            except Exception as exc:  # a bug must not end the operator's session: show it
                log.exception("%s failed", kind)
                self._call(self._error, kind, f"unexpected error: {exc!r}")
            finally:
                lock.release()

        self.run_worker(run, name=kind, group=kind, thread=True)

    # -- status ------------------------------------------------------------------------------

    def action_refresh(self) -> None:
        """Poll the pipeline in a worker thread (skipped while a poll is under way)."""
        if not self._polling.acquire(blocking=False):
            return

        def poll() -> None:
            try:
                snapshot = self.monitor.poll()
            except Exception as exc:  # shown once; the next poll tries again
                if not isinstance(exc, RigwatchError):
                    log.exception("poll failed")
                self._call(self._poll_failed, str(exc))
                return
            finally:
                self._polling.release()
            self._call(self._show, snapshot)

        self.run_worker(poll, name="poll", group="poll", thread=True)

    def _poll_failed(self, message: str) -> None:
        if message != self._poll_error:
            self._error("status", message)
        self._poll_error = message

    def _show(self, snap: Snapshot) -> None:
        self.snapshot = snap
        self._poll_error = None
        sup = self.query_one("#supervisor", Static)
        if snap.running:
            sup.update(f"supervisor: running (pid {snap.supervisor_pid})")
        else:
            sup.update("supervisor: not running")
        table = self.query_one("#stages", DataTable)
        for row in snap.rows:
            counts = row.counts
            cells = {
                "state": row.state,
                "reason": _clip(row.reason, CELL_CHARS),
                **{s: str(counts.get(s, 0)) for s in STATUSES},
                "blocked": str(counts.get("blocked", 0)),
                "items/s": _rate(row.throughput),
                "restarts": str(row.restarts),
                "last error": _clip(row.last_error, CELL_CHARS),
            }
            if snap.counts_error is not None:
                for s in (*STATUSES, "blocked"):
                    cells[s] = "?"
            for key, value in cells.items():
                table.update_cell(row.name, key, Text(value), update_width=True)
        for name, error in snap.new_errors:
            self._error(name, error)
        if snap.counts_error is not None and snap.counts_error != self._counts_error:
            self._error("manifest", snap.counts_error)
        self._counts_error = snap.counts_error

    # -- start and stop ----------------------------------------------------------------------

    def on_button_pressed(self, event: Button.Pressed) -> None:
        actions = {
            "start": self.action_start,
            "stop": self.action_stop,
            "calibrate": self.action_calibrate,
            "capture": self.action_capture,
            "refresh": self.action_refresh,
        }
        action = actions.get(event.button.id or "")
        if action is not None:
            action()

    def action_start(self) -> None:
        """Start every stage under the supervisor."""

        def work() -> None:
            try:
                pid = self.control.up()
            except RigwatchError as exc:
                self._call(self._say, f"start failed: {exc}")
                self._call(self._error, "start", str(exc))
            else:
                self._call(self._say, f"pipeline running (supervisor pid {pid})")
            self._call(self.action_refresh)

        self._in_thread("control", work, lambda: self._say("starting the pipeline..."))

    def action_stop(self) -> None:
        """Stop the supervisor and its stages."""

        def work() -> None:
            try:
                stopped = self.control.down()
            except RigwatchError as exc:
                self._call(self._say, f"stop failed: {exc}")
                self._call(self._error, "stop", str(exc))
            else:
                self._call(self._say, "pipeline stopped" if stopped else "pipeline was not running")
            self._call(self.action_refresh)

        self._in_thread(
            "control",
            work,
            lambda: self._say("stopping the pipeline (each stage finishes its item)..."),
        )

    # -- calibration -------------------------------------------------------------------------

    def action_calibrate(self) -> None:
        """Calibrate on the newest image and show what was found or why it failed."""
        view = self.query_one("#calibration", Static)

        def work() -> None:
            try:
                out = run_calibration(self.calibration, self.data_dir)
            except (RigwatchError, OSError) as exc:
                self._call(view.update, f"calibration failed: {exc}")
                self._call(self._error, "calibration", str(exc))
                return
            self._call(
                view.update,
                f"image {out.image.name}\n"
                f"{out.rois} ROIs from {out.labels} labels\n"
                f"image_angle {out.image_angle_deg:.4f} deg, scale {out.scale:.5f}, "
                f"RMS residual {out.rms_residual_px:.2f} px\n"
                f"wrote {out.roi_manifest}\n"
                f"and {out.picture}",
            )

        self._in_thread(
            "calibrate",
            work,
            lambda: view.update(f"calibrating on the newest image of {self.data_dir}..."),
        )

    # -- live capture ------------------------------------------------------------------------

    def action_auto_capture(self) -> None:
        """Start or stop a live capture every ``capture_s``."""
        view = self.query_one("#capture-view", Static)
        if self._auto is not None:
            self._auto.stop()
            self._auto = None
            view.border_subtitle = ""
            return
        view.border_subtitle = f"auto, every {self.capture_s:g} s"
        self._auto = self.set_interval(self.capture_s, lambda: self.action_capture(quiet=True))
        self.action_capture(quiet=True)

    def action_capture(self, quiet: bool = False) -> None:
        """Grab one frame of the configured camera and show its statistics (``quiet``: skip
        without a notice while the previous frame is still being taken)."""
        view = self.query_one("#capture-view", Static)

        def work() -> None:
            try:
                if self._camera is None:
                    self._camera = self.camera_factory()
                stats = FrameStats.of(self._camera.capture(), preview_rows=PREVIEW_ROWS)
            except (RigwatchError, OSError) as exc:
                self._call(view.update, f"live capture failed: {exc}")
                self._call(self._error, "capture", str(exc))
                return
            rows, cols = stats.shape
            text = (
                f"{_stamp()}  {cols} x {rows} px, {stats.dtype}\n"
                f"min {stats.minimum:g}  max {stats.maximum:g}  mean {stats.mean:.1f}  "
                f"std {stats.std:.1f}  saturated {100 * stats.saturated:.2f} %\n"
                + "\n".join(stats.preview)
            )
            self._call(view.update, text)

        self._in_thread("capture", work, quiet=quiet)

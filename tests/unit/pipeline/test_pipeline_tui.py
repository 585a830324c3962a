"""The pipeline's TUI through Textual's pilot: stage rows with the manifest's counts, start and
stop through an injected supervisor, calibration, live capture; and the monitor behind it."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from textual.pilot import Pilot
from textual.widgets import DataTable, Log, Static

from rigwatch.errors import ManifestError, PipelineError
from rigwatch.pipeline.analysis.synthetic import (
    LABEL_MARK,
    ChipSpec,
    SyntheticSpec,
    make_grating_image,
)
from rigwatch.pipeline.config import load_pipeline_config
from rigwatch.pipeline.manifest import Flow, Manifest, NewArtifact
from rigwatch.pipeline.monitor import (
    CalibrationFiles,
    FrameStats,
    ManifestCounts,
    Monitor,
    Snapshot,
    Throughput,
    stage_state,
    text_preview,
)
from rigwatch.pipeline.stages.sources.cameras import SyntheticCamera
from rigwatch.pipeline.stages.sources.names import image_name
from rigwatch.pipeline.tui import PipelineTui

DEAD_PID = 999_999_991
T0_NS = 1_700_000_000_000_000_000

CONFIG = """
[manifest]
url = "manifest.sqlite"

[paths]
data_dir = "data"
results_log = "results/processing_results.jsonl"
reports_dir = "results"
state_dir = "state"

[collector.camera]
type = "synthetic"

[collector.camera.synthetic]
shape = [64, 128]
chip_rows = 1
chip_cols = 1
half_size = [10, 40]
pitch = [30, 100]
roi_manifest = "truth/ROI_manifest.json"

[compressor]
enabled = false

[sync]
enabled = false
"""


def write_config(tmp: Path) -> Path:
    path = tmp / "pipeline.toml"
    path.write_text(CONFIG)
    return path


def prepare_manifest(tmp: Path) -> None:
    """10 images: processing 3 done, 1 failed, 2 leased, 4 pending."""
    with Manifest.open(
        tmp / "manifest.sqlite", flow=Flow.standard(compress=False, sync=False)
    ) as m:
        m.add_many([NewArtifact("image", tmp / "data" / f"{i}.png") for i in range(10)])
        leases = m.claim("process", "processor@test:1:ab", limit=6)
        for lease in leases[:3]:
            m.complete(lease, {"ok": True})
        m.fail(leases[3], "truncated PNG", retry=False)


def write_status(state_dir: Path, name: str, **fields: object) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    data = {"stage": name, "done": 0, "failed": 0, "last_error": None, "reason": None}
    data.update(fields)
    (state_dir / f"{name}.status.json").write_text(json.dumps(data))


class FakeControl:
    """Records calls instead of starting processes; refuses a second start as the
    supervisor does."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.running = False

    def up(self) -> int:
        self.calls.append("up")
        if self.running:
            raise PipelineError("the pipeline is already running (supervisor pid 4242)")
        self.running = True
        return 4242

    def down(self) -> bool:
        self.calls.append("down")
        was, self.running = self.running, False
        return was


def run(app: PipelineTui, scenario: Callable[[Pilot[None]], Awaitable[None]]) -> None:
    async def main() -> None:
        async with app.run_test(size=(160, 50)) as pilot:
            await scenario(pilot)

    asyncio.run(asyncio.wait_for(main(), timeout=30))


async def until(pilot: Pilot[None], condition: Callable[[], bool], timeout_s: float = 10) -> None:
    """Let the app run until ``condition`` holds (fails after ``timeout_s``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await pilot.pause(0.02)


def text(app: PipelineTui, selector: str) -> str:
    return str(app.query_one(selector, Static).content)


def cells(app: PipelineTui, row: str) -> dict[str, str]:
    table = app.query_one("#stages", DataTable)
    keys = [str(c.key.value) for c in table.ordered_columns]
    return dict(zip(keys, (str(v) for v in table.get_row(row)), strict=True))


def alive_is_me(pid: int) -> bool:
    return pid == os.getpid()


# -- the TUI -------------------------------------------------------------------------------


def test_table_shows_each_stage_with_state_counts_and_errors(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    prepare_manifest(tmp_path)
    state = tmp_path / "state"
    me = os.getpid()
    write_status(state, "processor", pid=me, state="running", done=3, failed=1,
                 last_error="data/3.png: truncated PNG")  # fmt: skip
    write_status(state, "collector", pid=me, state="paused", reason="disk full: 10 bytes free")
    write_status(state, "reporter", pid=DEAD_PID, state="running")
    monitor = Monitor(path, alive=alive_is_me)
    app = PipelineTui(path, control=FakeControl(), monitor=monitor, refresh_s=3600)

    async def scenario(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: app.snapshot is not None)
        await pilot.pause()
        table = app.query_one("#stages", DataTable)
        assert [str(k.value) for k in table.rows] == [
            "collector",
            "processor",
            "reporter",
            "retention",
        ]
        proc = cells(app, "processor")
        assert (proc["pending"], proc["leased"], proc["done"], proc["failed"]) == (
            "4",
            "2",
            "3",
            "1",
        )
        assert proc["state"] == "running"
        assert proc["last error"] == "data/3.png: truncated PNG"
        assert proc["items/s"] == "-"  # one sample only
        report = cells(app, "reporter")
        assert report["state"] == "crashed"
        assert str(DEAD_PID) in report["reason"]
        assert (report["pending"], report["blocked"], report["done"]) == ("3", "7", "0")
        collect = cells(app, "collector")
        assert (collect["state"], collect["reason"]) == ("paused", "disk full: 10 bytes free")
        assert collect["done"] == "10"
        assert cells(app, "retention")["state"] == "stopped"
        assert text(app, "#supervisor") == "supervisor: not running"
        lines = app.query_one("#errors", Log).lines
        assert any("processor: data/3.png: truncated PNG" in line for line in lines)
        # a second poll does not log the same error again; counts follow the manifest
        with Manifest.open(
            tmp_path / "manifest.sqlite", flow=Flow.standard(compress=False, sync=False)
        ) as m:
            m.add(NewArtifact("image", tmp_path / "data" / "new.png"))
        await pilot.press("r")
        await until(pilot, lambda: cells(app, "processor")["pending"] == "5")
        lines = app.query_one("#errors", Log).lines
        assert sum("truncated PNG" in line for line in lines) == 1

    run(app, scenario)


def test_start_and_stop_call_the_supervisor_and_say_what_happened(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    control = FakeControl()
    app = PipelineTui(path, control=control, refresh_s=3600)

    async def scenario(pilot: Pilot[None]) -> None:
        await pilot.press("u")
        await until(pilot, lambda: "running" in text(app, "#action"))
        assert text(app, "#action") == "pipeline running (supervisor pid 4242)"
        assert control.calls == ["up"]
        await pilot.click("#start")
        await until(pilot, lambda: "failed" in text(app, "#action"))
        refusal = "the pipeline is already running (supervisor pid 4242)"
        assert text(app, "#action") == f"start failed: {refusal}"
        assert any(f"start: {refusal}" in line for line in app.query_one("#errors", Log).lines)
        await pilot.click("#stop")
        await until(pilot, lambda: text(app, "#action") == "pipeline stopped")
        await pilot.press("d")
        await until(pilot, lambda: text(app, "#action") == "pipeline was not running")
        assert control.calls == ["up", "up", "down", "down"]

    run(app, scenario)


CHIP = ChipSpec(rows=4, cols=2, half_size=(20, 100), pitch=(44, 240))


def calibration_inputs(tmp: Path) -> CalibrationFiles:
    """The newest image in ``tmp/data`` (an older one beside it), chip maps, template; the
    feature locations are written by the caller."""
    spec = SyntheticSpec(shape=(260, 560), chip=CHIP, origin=(40, 40), angle_deg=1.2)
    img = make_grating_image(spec, seed=5)
    data = tmp / "data"
    data.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((8, 8), np.uint16)).save(data / image_name(T0_NS, 0))
    Image.fromarray(img.image).save(data / image_name(T0_NS + 10**9, 0))
    (tmp / "chips.json").write_text(json.dumps({"demo_chip": CHIP.chip_map()}))
    Image.fromarray((np.pad(LABEL_MARK, 3) * 200).astype(np.uint8)).save(tmp / "label.png")
    x0, y0 = img.label_positions["R00C00"]
    x1, y1 = img.label_positions["R03C01"]
    (tmp / "Feature_locations.toml").write_text(
        'chip_type = "demo_chip"\n'
        f'[[features]]\nlabel = "R00C00"\nfeature_location = [{x0 + 2}, {y0 - 1}]\n'
        f'[[features]]\nlabel = "R03C01"\nfeature_location = [{x1 - 1}, {y1 + 2}]\n'
    )
    return CalibrationFiles(
        tmp / "Feature_locations.toml", tmp / "chips.json", tmp / "label.png", tmp / "out"
    )


def test_calibration_shows_the_error_of_a_missing_file(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    files = calibration_inputs(tmp_path)
    missing = tmp_path / "nowhere" / "Feature_locations.toml"
    files = CalibrationFiles(missing, files.chip_maps, files.template, files.out_dir)
    app = PipelineTui(path, control=FakeControl(), calibration=files, refresh_s=3600)

    async def scenario(pilot: Pilot[None]) -> None:
        await pilot.press("c")
        await until(pilot, lambda: "failed" in text(app, "#calibration"))
        shown = text(app, "#calibration")
        assert shown.startswith("calibration failed: ")
        assert f"{missing}: cannot read the feature locations" in shown
        lines = app.query_one("#errors", Log).lines
        assert any("calibration:" in line and str(missing) in line for line in lines)
        assert not (files.out_dir / "ROI_manifest.json").exists()

    run(app, scenario)


def test_calibration_runs_on_the_newest_image_and_shows_the_result(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    files = calibration_inputs(tmp_path)
    app = PipelineTui(path, control=FakeControl(), calibration=files, refresh_s=3600)

    async def scenario(pilot: Pilot[None]) -> None:
        await pilot.click("#calibrate")
        await until(pilot, lambda: "ROIs" in text(app, "#calibration") or "failed" in text(
            app, "#calibration"), timeout_s=20)  # fmt: skip
        shown = text(app, "#calibration")
        assert image_name(T0_NS + 10**9, 0) in shown
        assert "16 ROIs from 8 labels" in shown
        angle = float(shown.split("image_angle ")[1].split(" deg")[0])
        assert angle == pytest.approx(1.2, abs=0.1)
        assert (files.out_dir / "ROI_manifest.json").is_file()
        assert (files.out_dir / "located_rois.png").is_file()

    run(app, scenario)


def test_live_capture_shows_the_stats_of_synthetic_frames(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    config = load_pipeline_config(path)
    synthetic = config.collector.camera.synthetic.model_copy(update={"roi_manifest": None})

    def frame_stats(n: int) -> FrameStats:
        """Statistics of frame ``n`` (0-based) of a fresh synthetic camera."""
        camera = SyntheticCamera(synthetic)
        for _ in range(n):
            camera.capture()
        return FrameStats.of(camera.capture())

    first, second = frame_stats(0), frame_stats(1)
    assert first.mean != second.mean  # the lines drift from one frame to the next
    app = PipelineTui(path, control=FakeControl(), refresh_s=3600, capture_s=0.05)

    async def scenario(pilot: Pilot[None]) -> None:
        await pilot.press("l")
        await until(pilot, lambda: "px" in text(app, "#capture-view"))
        shown = text(app, "#capture-view")
        assert "128 x 64 px, uint16" in shown
        assert f"min {first.minimum:g}  max {first.maximum:g}  mean {first.mean:.1f}" in shown
        # the camera stays open: the next frame is the camera's next one
        await pilot.click("#capture")
        await until(pilot, lambda: f"mean {second.mean:.1f}" in text(app, "#capture-view"))
        # automatic capture: frame after frame without a key press, until switched off
        camera = app._camera
        assert isinstance(camera, SyntheticCamera)
        await pilot.press("a")
        await until(pilot, lambda: camera.count >= 5)
        await pilot.press("a")
        assert app._auto is None
        await until(pilot, lambda: not app._busy["capture"].locked())
        taken = camera.count
        last = frame_stats(taken - 1)
        assert f"mean {last.mean:.1f}" in text(app, "#capture-view")
        await pilot.pause(0.2)
        assert camera.count == taken  # switched off

    run(app, scenario)
    assert not (tmp_path / "truth" / "ROI_manifest.json").exists()  # the TUI wrote nothing


def test_a_slow_poll_does_not_block_the_ui(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    release = threading.Event()
    entered = threading.Event()

    class SlowMonitor(Monitor):
        def poll(self) -> Snapshot:
            entered.set()
            release.wait(20)
            return super().poll()

    app = PipelineTui(path, control=FakeControl(), monitor=SlowMonitor(path), refresh_s=3600)

    async def scenario(pilot: Pilot[None]) -> None:
        await until(pilot, entered.is_set)
        await pilot.press("l")  # handled while the poll hangs
        await until(pilot, lambda: "px" in text(app, "#capture-view"))
        assert app.snapshot is None
        release.set()
        await until(pilot, lambda: app.snapshot is not None)

    try:
        run(app, scenario)
    finally:
        release.set()


def test_polls_read_state_not_the_config(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    state = tmp_path / "state"
    write_status(state, "processor", pid=os.getpid(), state="idle")
    monitor = Monitor(path, alive=alive_is_me)
    app = PipelineTui(path, control=FakeControl(), monitor=monitor, refresh_s=3600)

    async def scenario(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: app.snapshot is not None)
        path.write_text("this is [not TOML")  # a poll that read the config would fail now
        write_status(state, "processor", pid=os.getpid(), state="running", done=7)
        await pilot.press("r")
        await until(pilot, lambda: cells(app, "processor")["state"] == "running")
        assert app._poll_error is None
        assert not any("status:" in line for line in app.query_one("#errors", Log).lines)

    run(app, scenario)


# -- the monitor ---------------------------------------------------------------------------


def test_throughput_is_items_per_second_over_the_last_minute() -> None:
    tp = Throughput(window_s=60.0)
    assert tp.add("p", 0.0, 10, 0) is None
    assert tp.add("p", 10.0, 10, 50) == pytest.approx(5.0)
    for t in range(20, 200, 10):
        rate = tp.add("p", float(t), 10, 50 + (t - 10) * 2)  # 2/s from t = 10 on
    assert rate == pytest.approx(2.0)  # the 5/s of the first 10 s left the window
    # a restart (new pid, counters from zero) starts a new measurement
    assert tp.add("p", 200.0, 11, 3) is None
    assert tp.add("p", 204.0, 11, 11) == pytest.approx(2.0)


def test_stage_state_from_status_file_and_supervisor() -> None:
    me = os.getpid()
    assert stage_state(None, None, supervised=False) == ("stopped", "no status file")
    assert stage_state(None, None, supervised=True) == ("starting", None)
    waiting = {"pid": me, "state": "waiting", "reason": "share /mnt/nas is not mounted"}
    assert stage_state(waiting, {"state": "running"}, True, alive_is_me) == (
        "waiting",
        "share /mnt/nas is not mounted",
    )
    gone = {"pid": DEAD_PID, "state": "running", "reason": None}
    state, reason = stage_state(gone, None, False, alive_is_me)
    assert state == "crashed" and reason is not None and "running" in reason
    stopped = {"pid": DEAD_PID, "state": "stopped", "reason": None}
    assert stage_state(stopped, None, False, alive_is_me) == ("stopped", None)
    child = {"state": "restarting", "last_exit": -9, "restart_in_s": 1.5}
    state, reason = stage_state(waiting, child, True, alive_is_me)
    assert state == "crashed" and reason == "exited with -9; restart in 1.5 s"


def test_monitor_reads_the_config_once(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    me = os.getpid()
    write_status(tmp_path / "state", "collector", pid=me, state="paused", reason="disk full")
    write_status(tmp_path / "moved", "collector", pid=me, state="running")
    monitor = Monitor(path, alive=alive_is_me)
    first = monitor.poll()
    # the file changes between polls: the monitor goes on with the config it read
    path.write_text(CONFIG.replace('state_dir = "state"', 'state_dir = "moved"'))
    second = monitor.poll()
    path.unlink()
    third = monitor.poll()
    for snap in (first, second, third):
        row = next(r for r in snap.rows if r.name == "collector")
        assert (row.state, row.reason) == ("paused", "disk full")
    monitor.close()


def test_counts_never_create_a_missing_manifest(tmp_path: Path) -> None:
    config = load_pipeline_config(write_config(tmp_path))
    counts = ManifestCounts(config)
    with pytest.raises(ManifestError, match="no manifest at"):
        counts.read()
    assert not (tmp_path / "manifest.sqlite").exists()
    prepare_manifest(tmp_path)
    assert counts.read()["process"] == {"pending": 4, "leased": 2, "done": 3, "failed": 1}
    counts.close()


def test_frame_stats_and_preview() -> None:
    frame = np.zeros((40, 80), np.uint16)
    frame[:, 40:] = 65535
    stats = FrameStats.of(frame, preview_rows=4)
    assert (stats.shape, stats.minimum, stats.maximum) == ((40, 80), 0.0, 65535.0)
    assert stats.mean == pytest.approx(65535 / 2)
    assert stats.saturated == pytest.approx(0.5)
    assert stats.preview == (" " * 8 + "@" * 8,) * 4
    assert text_preview(np.full((5, 5), 7.0), 2) == ("    ",) * 2


# -- the command ---------------------------------------------------------------------------


def test_the_command_opens_the_tui_with_the_given_calibration_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from rigwatch.pipeline.cli import app

    path = write_config(tmp_path)
    opened: list[PipelineTui] = []
    monkeypatch.setattr(PipelineTui, "run", lambda self: opened.append(self))
    args = ["tui", "--config", str(path), "--template", str(tmp_path / "mark.png")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    (tui,) = opened
    assert tui.calibration == CalibrationFiles(
        tmp_path / "Feature_locations.toml",
        tmp_path / "chip_maps.toml",
        tmp_path / "mark.png",
        tmp_path,
    )
    result = CliRunner().invoke(app, ["tui", "--config", str(tmp_path / "missing.toml")])
    assert result.exit_code == 2
    assert "missing.toml" in result.output

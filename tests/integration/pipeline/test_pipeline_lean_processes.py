"""The running pipeline's processes map only the native libraries their work needs: after every
stage handled a few images under the supervisor, no process but the reporter (which drew its
plot) has matplotlib, none has SciPy, scikit-image or PyArrow, only the processor has NumPy and
Pillow, and the stages are the supervisor's only children (forked from it: no fork server
holding a second copy of the modules they share)."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import psutil
import pytest

from rigwatch.pipeline.stages.build import open_manifest
from rigwatch.pipeline.stages.status import read_status
from rigwatch.pipeline.stages.worker import wait_until
from support.pipeline_stages import (
    base_config,
    folder_camera,
    grating_plugins,
    image_folder,
    start_supervisor,
    tiny_roi_manifest,
    write_config,
)

N = 30
NEVER = {"scipy", "skimage", "pyarrow", "cv2"}
PACKAGE = re.compile(r"site-packages/([A-Za-z0-9_]+)")

pytestmark = pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc")


def mapped_packages(pid: int) -> set[str]:
    """Installed packages with a file (native library) mapped into process ``pid``."""
    text = Path(f"/proc/{pid}/maps").read_text()
    return {m.group(1).split(".")[0] for m in PACKAGE.finditer(text)}


def test_processes_map_only_what_they_use(tmp_path: Path) -> None:
    image_folder(tmp_path / "src", N)
    tiny_roi_manifest(tmp_path / "roi.json")
    (tmp_path / "share").mkdir()
    data = base_config(
        tmp_path,
        collector={
            "min_free_bytes": 0,
            "camera": folder_camera(),
        },
        processor={"plugins": grating_plugins()},
        reporter={
            "poll_s": 0.05,
            "handlers": [{"type": "csv_plot", "plot": "plot.png", "plot_interval_s": 0.1}],
        },
        compressor={"enabled": True, "codec": "zstd", "skip_suffixes": []},
        sync={"enabled": True, "share": "share"},
        supervisor={"stop_timeout_s": 10.0},
    )
    config_path, config = write_config(tmp_path, data)
    state_dir = Path(config.paths.state_dir)
    manifest = open_manifest(config)
    sup_log = tmp_path / "supervisor.err"
    sup = start_supervisor(config_path, sup_log)
    try:

        def all_done() -> bool:
            counts = manifest.counts()
            return all(
                counts.get(s, {}).get("done", 0) == N
                for s in ("collect", "process", "report", "compress", "sync")
            )

        assert wait_until(all_done, 120, 0.1), manifest.counts()
        plot = Path(config.paths.reports_dir) / "plot.png"
        assert wait_until(plot.exists, 30), "the reporter never drew"
        children = (read_status(state_dir / "supervisor.json") or {})["children"]
        pids = {name: int(child["pid"]) for name, child in children.items()}
        assert set(pids) == {
            "collector",
            "processor",
            "reporter",
            "compressor",
            "syncer",
            "retention",
        }
        # the stages are the supervisor's only children: forked from it
        assert {p.pid for p in psutil.Process(sup.pid).children()} == set(pids.values())
        mapped = {name: mapped_packages(pid) for name, pid in pids.items()}
        mapped["supervisor"] = mapped_packages(sup.pid)
    finally:
        sup.send_signal(signal.SIGTERM)
        sup.wait(timeout=60)
        manifest.close()
    assert sup.returncode == 0, sup_log.read_text()[-3000:]
    assert "sqlalchemy" in mapped["supervisor"]  # the listing is real
    for name, packages in mapped.items():
        forbidden = set(NEVER)
        if name not in ("processor", "reporter"):  # the grating analysis; matplotlib's own
            forbidden |= {"numpy", "PIL"}
        if name != "reporter":
            forbidden.add("matplotlib")
        assert not packages & forbidden, f"{name} maps {packages & forbidden}"
    assert {"numpy", "PIL"} <= mapped["processor"]
    assert "matplotlib" in mapped["reporter"]  # it drew: the check sees what is loaded

"""Each stage process, and the supervisor every stage is forked from, imports only what it
uses: no matplotlib, SciPy, scikit-image, PyArrow, asyncua or aiomqtt unless its own work
needs them (the memory budget of the pipeline on a Raspberry Pi, see
``bench/pipeline_memory.py``). Each check runs in a new interpreter (``python -c``) that does
what the process does at start, and a first piece of work, then lists ``sys.modules``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from support.pipeline_stages import (
    base_config,
    folder_camera,
    grating_plugins,
    image_folder,
    tiny_roi_manifest,
    write_config,
)

NEVER = frozenset(
    {"matplotlib", "scipy", "skimage", "pyarrow", "asyncua", "aiomqtt", "cv2", "pandas", "h5py"}
)
"""Needed by no stage for this configuration's work (and never by the supervisor)."""
ARRAYS = frozenset({"numpy", "PIL"})
"""Needed only by the processor's grating analysis here."""

FORBIDDEN: dict[str, frozenset[str]] = {
    "supervisor": NEVER | ARRAYS | {"zstandard"},
    "collector": NEVER | ARRAYS,
    "processor": NEVER,
    "reporter": NEVER | ARRAYS,
    "compressor": NEVER | ARRAYS,
    "syncer": NEVER | ARRAYS | {"zstandard"},
    "retention": NEVER | ARRAYS | {"zstandard"},
}

STAGE = r"""
import json, sys, threading
from pathlib import Path

import rigwatch.pipeline.stages.run  # the stage processes' entry module
from rigwatch.pipeline.config import load_pipeline_config
from rigwatch.pipeline.stages.build import build_stage, open_manifest

name, config_path = sys.argv[1], Path(sys.argv[2])
config = load_pipeline_config(config_path)
manifest = open_manifest(config)
stage = build_stage(name, config, manifest)
if name == "collector":
    stage.cycle(threading.Event())  # imports the folder's images
elif name == "processor":
    for plugin in stage.plugins["image"]:
        plugin.analyse(sorted((config_path.parent / "src").iterdir())[0])
elif name == "reporter":
    from rigwatch.pipeline.manifest import ArtifactRecord
    from rigwatch.pipeline.stages.handlers.records import ReportRecord

    artifact = ArtifactRecord(1, "image", "/data/a.png", None, None, 1, 1, 1, {})
    result = {"image_analysis": [{"ROI-label": "A1", "Analysis-method": "max_intensity",
                                  "max_intensity": {"Median": 1.0}}]}
    stage.handlers[0].deliver(ReportRecord(artifact, result, 1))
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
if name == "reporter":  # drawing the plot is what needs matplotlib
    stage.handlers[0].draw()
    print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
manifest.close()
"""

SUPERVISOR = r"""
import json, sys
from pathlib import Path

from rigwatch.pipeline.supervisor import Supervisor

supervisor = Supervisor(Path(sys.argv[1]))
supervisor._catch_up_log()  # what run() does before it forks the stages
supervisor._launcher.prepare()
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
supervisor._close_connections()
"""


@pytest.fixture(scope="module")
def config_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every stage as ``bench/pipeline_memory.py`` runs them, on two tiny images."""
    tmp = tmp_path_factory.mktemp("lean")
    image_folder(tmp / "src", 2)
    tiny_roi_manifest(tmp / "roi.json")
    (tmp / "share").mkdir()
    data = base_config(
        tmp,
        collector={
            "min_free_bytes": 0,
            "camera": folder_camera(),
        },
        processor={"plugins": grating_plugins()},
        reporter={"handlers": [{"type": "csv_plot", "plot": "plot.png"}]},
        compressor={"enabled": True, "codec": "zstd"},
        sync={"enabled": True, "share": "share"},
    )
    path, _config = write_config(tmp, data)
    return path


def modules_of(script: str, *args: Any) -> list[set[str]]:
    """The top-level modules ``script`` printed (one JSON list per line)."""
    out = subprocess.run(
        [sys.executable, "-c", script, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return [set(json.loads(line)) for line in out.stdout.splitlines() if line.startswith("[")]


@pytest.mark.parametrize(
    "stage", ["collector", "processor", "reporter", "compressor", "syncer", "retention"]
)
def test_a_stage_imports_only_what_its_work_needs(stage: str, config_path: Path) -> None:
    loaded = modules_of(STAGE, stage, config_path)
    assert "sqlalchemy" in loaded[0]  # the listing is real: every stage uses the manifest
    assert not loaded[0] & FORBIDDEN[stage], f"{stage} imported {loaded[0] & FORBIDDEN[stage]}"
    if stage == "processor":
        assert {"numpy", "PIL"} <= loaded[0]
    if stage == "reporter":
        assert "matplotlib" in loaded[1]  # only once it draws


def test_the_supervisor_forks_stages_from_a_lean_process(config_path: Path) -> None:
    (loaded,) = modules_of(SUPERVISOR, config_path)
    assert {"sqlalchemy", "alembic"} <= loaded  # shared with every stage it forks
    assert not loaded & FORBIDDEN["supervisor"], loaded & FORBIDDEN["supervisor"]

"""Helpers for the pipeline stages' tests: a config written to a temporary folder, tiny
grating images with their ROI manifest, running a stage until a condition holds."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from rigwatch.pipeline.analysis.roi_manifest import Roi, RoiManifest, write_roi_manifest
from rigwatch.pipeline.config import PipelineConfig, load_pipeline_config
from rigwatch.pipeline.manifest import ArtifactRecord
from rigwatch.pipeline.phorest_import import dump_toml
from rigwatch.pipeline.stages.handlers.records import ReportRecord
from rigwatch.pipeline.stages.sources.names import image_name
from rigwatch.pipeline.stages.worker import StageLoop, wait_until

T0_NS = 1_700_000_000_000_000_000


def roi_record(aid: int, mu: float, temp: float = 21.5) -> ReportRecord:
    """A reporter's record of image ``aid``: one ROI ``ROI_A1_1`` whose ``mu`` median and mean
    are ``mu``, and the ``chip`` temperature ``temp`` (degrees C)."""
    artifact = ArtifactRecord(
        aid,
        "image",
        f"/d/image_{aid}.png",
        None,
        None,
        1_700_000_000 * 10**9 + aid,
        1,
        1,
        {"temperature_readings": {"chip": temp}},
    )
    result = {
        "image_analysis": [
            {"brightness": 123.5, "contrast": 40.0},
            {
                "ROI-label": "ROI_A1_1",
                "Analysis-method": "gaussian",
                "mu": {"Median": mu, "Mean": mu},
            },
        ]
    }
    return ReportRecord(artifact, result, artifact.captured_ns or 0)


def tiny_image(peak_col: int, shape: tuple[int, int] = (8, 32)) -> np.ndarray:
    """A ``uint16`` image whose every row peaks at ``peak_col``."""
    x = np.arange(shape[1])
    row = 1000 + 20000 * np.exp(-((x - peak_col) ** 2) / 4.0)
    return np.tile(row, (shape[0], 1)).astype(np.uint16)


def write_png(path: Path, image: np.ndarray) -> None:
    Image.fromarray(image).save(path, format="PNG", compress_level=1)


def tiny_roi_manifest(path: Path, shape: tuple[int, int] = (8, 32)) -> Path:
    """One ROI covering the tiny image."""
    write_roi_manifest(RoiManifest((Roi("ROI_A1_1", "A1", False, 0, 0, *shape),), 0.0), path)
    return path


def image_folder(folder: Path, n: int, start_ns: int = T0_NS) -> list[Path]:
    """``n`` tiny images named as today's collector names them."""
    folder.mkdir(parents=True, exist_ok=True)
    encoded: dict[int, bytes] = {}  # 16 distinct images, each encoded once
    out = []
    for i in range(n):
        peak = 8 + i % 16
        if peak not in encoded:
            buf = io.BytesIO()
            Image.fromarray(tiny_image(peak)).save(buf, format="PNG", compress_level=1)
            encoded[peak] = buf.getvalue()
        p = folder / image_name(start_ns + i * 1_000_000, 0)
        p.write_bytes(encoded[peak])
        out.append(p)
    return out


def base_config(tmp: Path, **sections: Any) -> dict[str, Any]:
    """A config mapping with every folder under ``tmp`` and short times."""
    cfg: dict[str, Any] = {
        "manifest": {
            "url": "manifest.sqlite",
            "lease_s": 5.0,
            "batch": 16,
            "backoff_base_s": 0.0,
            "max_attempts": 5,
        },
        "paths": {
            "data_dir": "data",
            "results_log": "results/processing_results.jsonl",
            "reports_dir": "results",
            "state_dir": "state",
        },
        "collector": {"interval_s": 0.05, "min_free_bytes": 0, "camera": {"enabled": False}},
        "processor": {"poll_s": 0.05},
        "reporter": {"poll_s": 0.05, "handlers": [{"type": "csv_plot", "plot": ""}]},
        "compressor": {"enabled": False, "poll_s": 0.05},
        "sync": {"enabled": False, "poll_s": 0.05, "share": "share"},
        "retention": {"poll_s": 0.05},
    }
    for name, value in sections.items():
        if isinstance(value, dict) and isinstance(cfg.get(name), dict):
            cfg[name] = {**cfg[name], **value}
        else:
            cfg[name] = value
    return cfg


def write_config(tmp: Path, data: dict[str, Any]) -> tuple[Path, PipelineConfig]:
    """Write ``data`` as ``tmp/pipeline.toml`` and load it."""
    path = tmp / "pipeline.toml"
    path.write_text(dump_toml(data))
    return path, load_pipeline_config(path)


def run_until(stage: StageLoop, done: Callable[[], bool], timeout_s: float = 20.0) -> bool:
    """Run ``stage`` on a thread until ``done()`` holds (or the timeout); stop it; returns
    whether the condition was met."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            stage.run(stop)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    try:
        ok = wait_until(lambda: done() or bool(errors) or not thread.is_alive(), timeout_s)
        ok = ok and done()
    finally:
        stop.set()
        thread.join(timeout=30)
    if errors:
        raise errors[0]
    return ok


def folder_camera(source_dir: str = "src", **folder: Any) -> dict[str, Any]:
    """The collector's ``camera`` section importing the image folder ``source_dir``."""
    return {"enabled": True, "type": "folder", "folder": {"source_dir": source_dir, **folder}}


def grating_plugins(roi_manifest: str = "roi.json") -> dict[str, Any]:
    """The processor's ``plugins`` section: the grating analysis (``max_intensity``)."""
    return {
        "image": [
            {
                "name": "grating",
                "options": {"roi_manifest": roi_manifest, "method": "max_intensity"},
            }
        ]
    }


def start_supervisor(config_path: Path, stderr_path: Path) -> subprocess.Popen[bytes]:
    """``python -m rigwatch.pipeline.supervisor CONFIG`` with its stderr in ``stderr_path``."""
    with open(stderr_path, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "rigwatch.pipeline.supervisor", str(config_path)],
            stdout=subprocess.DEVNULL,
            stderr=out,
        )

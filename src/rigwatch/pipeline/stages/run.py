"""Running one stage process until SIGINT/SIGTERM: ``python -m rigwatch.pipeline.stages STAGE
CONFIG [--name NAME]`` (what ``rigwatch pipeline run`` and the supervisor start)."""

from __future__ import annotations

import argparse
import faulthandler
import logging
import signal
import sys
import threading
from pathlib import Path

from rigwatch.errors import RigwatchError
from rigwatch.pipeline.config import STAGE_NAMES, StageName, load_pipeline_config
from rigwatch.pipeline.stages.build import build_stage, open_manifest
from rigwatch.pipeline.stages.worker import stop_on_signals

log = logging.getLogger(__name__)


def run_stage(stage: StageName, config_path: Path, process_name: str | None = None) -> None:
    """Run ``stage`` of the pipeline configured in ``config_path`` until a stop signal; the
    current item is finished and the leases are released before it returns.

    Raises:
        ConfigError: invalid config; PipelineError: the stage cannot start.
    """
    config = load_pipeline_config(config_path)
    stop = threading.Event()
    stop_on_signals(stop)
    manifest = open_manifest(config)
    try:
        worker = build_stage(stage, config, manifest, process_name=process_name)
        log.info("%s started (config %s)", process_name or stage, config_path)
        worker.run(stop)
    finally:
        manifest.close()
    log.info("%s stopped", process_name or stage)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry of a stage process."""
    parser = argparse.ArgumentParser(prog="python -m rigwatch.pipeline.stages")
    parser.add_argument("stage", choices=STAGE_NAMES)
    parser.add_argument("config", type=Path)
    parser.add_argument("--name", default=None, help="process name (status file)")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    if hasattr(signal, "SIGUSR1"):  # `kill -USR1 <pid>` writes every thread's stack to the log
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        run_stage(args.stage, args.config, args.name)
    except RigwatchError as exc:
        log.error("%s cannot run: %s", args.name or args.stage, exc)
        sys.exit(2)

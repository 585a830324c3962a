"""Building a stage process from the pipeline config: the manifest it shares with the others
and the stage object."""

from __future__ import annotations

from pathlib import Path

from rigwatch.pipeline.config import PipelineConfig, StageName
from rigwatch.pipeline.manifest import Flow, Manifest, ResultsLog, RetryPolicy
from rigwatch.pipeline.stages.files import FreeBytes, disk_free_bytes
from rigwatch.pipeline.stages.status import StatusFile, status_path
from rigwatch.pipeline.stages.worker import StageLoop, WorkerSettings


def flow_of(config: PipelineConfig) -> Flow:
    """The stages an artifact goes through under ``config``."""
    return Flow.standard(compress=config.compressor.enabled, sync=config.sync.enabled)


def open_manifest(config: PipelineConfig) -> Manifest:
    """The manifest of ``config`` (created or upgraded), with its flow, retries and results
    log.

    Raises:
        ManifestError: it cannot be opened.
    """
    m = config.manifest
    paths = config.paths
    Path(paths.data_dir).mkdir(parents=True, exist_ok=True)
    target = config.manifest_target()
    if "://" not in target:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
    return Manifest.open(
        target,
        synchronous=m.synchronous,
        flow=flow_of(config),
        retry=RetryPolicy(m.max_attempts, m.backoff_base_s, m.backoff_max_s),
        lease_s=m.lease_s,
        results_log=ResultsLog(
            paths.results_log, paths.results_log_max_bytes, paths.results_log_backups
        ),
    )


def settings_of(config: PipelineConfig, poll_s: float) -> WorkerSettings:
    """The claim settings of a stage polling every ``poll_s``."""
    m = config.manifest
    return WorkerSettings(m.batch, m.lease_s, m.heartbeat_interval_s, poll_s)


def build_stage(
    stage: StageName,
    config: PipelineConfig,
    manifest: Manifest,
    *,
    process_name: str | None = None,
    free_bytes: FreeBytes = disk_free_bytes,
) -> StageLoop:
    """The stage object of ``stage`` (its status file in ``state_dir``).

    Raises:
        PipelineError: a plugin, handler or source cannot be set up (the message says which).
        ValueError: unknown stage.
    """
    status = StatusFile(status_path(Path(config.paths.state_dir), process_name or stage), stage)
    if stage == "collector":
        from rigwatch.pipeline.stages.collector import Collector

        return Collector(manifest, config, status, free_bytes=free_bytes)
    if stage == "processor":
        from rigwatch.pipeline.stages.processor import Processor, build_plugins

        return Processor(
            manifest,
            build_plugins(config.processor.plugins, config.base_dir),
            settings_of(config, config.processor.poll_s),
            status,
        )
    if stage == "reporter":
        from rigwatch.pipeline.stages.handlers.ledger import Ledger
        from rigwatch.pipeline.stages.reporter import LEDGER_NAME, Reporter, build_handlers

        reports = Path(config.paths.reports_dir)
        ledger = Ledger(reports / LEDGER_NAME)
        handlers = build_handlers(config.reporter, reports, ledger)
        return Reporter(
            manifest, handlers, ledger, settings_of(config, config.reporter.poll_s), status
        )
    if stage == "compressor":
        from rigwatch.pipeline.stages.compressor import Compressor

        c = config.compressor
        return Compressor(
            manifest, c.codec, c.level, c.skip_suffixes, settings_of(config, c.poll_s), status
        )
    if stage == "syncer":
        from rigwatch.pipeline.stages.syncer import Syncer

        s = config.sync
        return Syncer(manifest, s.share, s.require_mount, settings_of(config, s.poll_s), status)
    if stage == "retention":
        from rigwatch.pipeline.stages.retention import Retention

        r = config.retention
        return Retention(manifest, r.max_count, r.max_bytes, settings_of(config, r.poll_s), status)
    raise ValueError(f"unknown stage {stage!r}")

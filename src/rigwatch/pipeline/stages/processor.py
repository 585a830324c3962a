"""The processor: runs the analysis plugins configured for an artifact's kind and records their
results as the artifact's ``process`` result (a row of the manifest, also appended to the
JSONL results log in today's layout).

The result of an artifact is the merge of its plugins' ``to_record()`` (``image_analysis`` of
the grating plugin, the vibration plugin's features...). A kind without plugins (temperature
readings) is processed with an empty result; its collector metadata is what the results log
shows. Bad input (a corrupt or truncated image, an image of the wrong size for the ROI manifest,
an unreadable segment) ends the artifact ``failed`` with the reason; the stage goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rigwatch.errors import AnalysisError, BadItem
from rigwatch.pipeline.analysis.base import AnalysisPlugin
from rigwatch.pipeline.config import PluginEntry
from rigwatch.pipeline.manifest import Lease, Manifest
from rigwatch.pipeline.stages.status import StatusFile
from rigwatch.pipeline.stages.worker import ClaimingStage, Handled, WorkerSettings, data_path

log = logging.getLogger(__name__)


def build_plugin(entry: PluginEntry) -> AnalysisPlugin:
    """The plugin named by ``entry`` with its options.

    ``grating`` is built directly when the registry does not list it.

    Raises:
        AnalysisError: unknown plugin or invalid options.
    """
    from rigwatch.pipeline.analysis import create_plugin, plugin_names

    if entry.name == "grating" and "grating" not in plugin_names():
        from rigwatch.pipeline.analysis.grating import GratingAnalysis

        return GratingAnalysis.from_mapping(entry.options)
    return create_plugin(entry.name, entry.options)


PATH_OPTIONS = ("roi_manifest",)
"""Plugin options that are file paths (also any option ending in ``_path`` or ``_file``)."""


def resolve_options(options: Mapping[str, Any], base_dir: Path | None) -> dict[str, Any]:
    """``options`` with relative file paths resolved against ``base_dir`` (the config's
    folder)."""
    out = dict(options)
    if base_dir is None:
        return out
    for key, value in options.items():
        is_path = key in PATH_OPTIONS or key.endswith(("_path", "_file"))
        if is_path and isinstance(value, str) and not Path(value).is_absolute():
            out[key] = str((base_dir / value).resolve())
    return out


def build_plugins(
    plugins: Mapping[str, Sequence[PluginEntry]], base_dir: Path | None = None
) -> dict[str, list[AnalysisPlugin]]:
    """``{kind: [plugins]}`` built from the config (relative paths in options resolved
    against ``base_dir``).

    Raises:
        AnalysisError: an unknown plugin or invalid options (the message names the kind).
    """
    out: dict[str, list[AnalysisPlugin]] = {}
    for kind, entries in plugins.items():
        built = []
        for entry in entries:
            try:
                options = resolve_options(entry.options, base_dir)
                built.append(build_plugin(PluginEntry(name=entry.name, options=options)))
            except AnalysisError as exc:
                raise AnalysisError(f"processor.plugins.{kind}: {exc}") from exc
        out[kind] = built
    return out


class Processor(ClaimingStage):
    """The processor stage.

    Args:
        manifest: the manifest; plugins: ``{kind: [plugins]}`` (see :func:`build_plugins`).
    """

    name = "processor"
    stage = "process"

    def __init__(
        self,
        manifest: Manifest,
        plugins: Mapping[str, Sequence[AnalysisPlugin]],
        settings: WorkerSettings | None = None,
        status: StatusFile | None = None,
        owner: str | None = None,
    ) -> None:
        super().__init__(manifest, settings, status, owner)
        self.plugins = {k: list(v) for k, v in plugins.items()}

    def handle(self, lease: Lease) -> Handled:
        path = data_path(lease)
        if not path.exists():
            raise BadItem(f"{path}: file does not exist")
        result: dict[str, Any] = {}
        for plugin in self.plugins.get(lease.artifact.kind, []):
            try:
                record = plugin.analyse(path).to_record()
            except AnalysisError as exc:
                raise BadItem(f"{plugin.name}: {exc}") from exc
            for key, value in record.items():
                result.setdefault(key, value)
        return Handled(result)

"""Analysis plugins of the pipeline's processor: grating resonance and vibration.

Each plugin has a ``name`` and ``analyse(source) -> result`` (see :mod:`.base`); the processor
builds them by name with :func:`create_plugin` from its config section.
"""

from __future__ import annotations

from rigwatch.pipeline.analysis.base import (
    AnalysisPlugin,
    AnalysisResult,
    create_plugin,
    plugin_names,
    register,
)
from rigwatch.pipeline.analysis.grating import GratingAnalysis
from rigwatch.pipeline.analysis.vibration import VibrationAnalysis

register("grating", GratingAnalysis.from_mapping)
register("vibration", VibrationAnalysis.from_mapping)

__all__ = ["AnalysisPlugin", "AnalysisResult", "create_plugin", "plugin_names", "register"]

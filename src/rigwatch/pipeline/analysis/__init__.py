"""Analysis plugins of the pipeline's processor: grating resonance and vibration.

Each plugin has a ``name`` and ``analyse(source) -> result`` (see :mod:`.base`); the processor
builds them by name with :func:`create_plugin` from its config section.

A plugin's module (and what it needs: Pillow, SciPy, PyArrow) is imported when the plugin is
first built, so a processor configured for grating images never loads the vibration
analysis' SciPy signal processing or the recordings readers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rigwatch.pipeline.analysis.base import (
    AnalysisPlugin,
    AnalysisResult,
    create_plugin,
    plugin_names,
    register,
)


def _grating(config: Mapping[str, Any]) -> AnalysisPlugin:
    from rigwatch.pipeline.analysis.grating import GratingAnalysis

    return GratingAnalysis.from_mapping(config)


def _vibration(config: Mapping[str, Any]) -> AnalysisPlugin:
    from rigwatch.pipeline.analysis.vibration import VibrationAnalysis

    return VibrationAnalysis.from_mapping(config)


register("grating", _grating)
register("vibration", _vibration)

__all__ = ["AnalysisPlugin", "AnalysisResult", "create_plugin", "plugin_names", "register"]

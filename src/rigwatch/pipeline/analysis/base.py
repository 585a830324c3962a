"""The protocol every analysis plugin follows, and the registry the processor picks them from.

A plugin is a small object with a ``name`` and one method, ``analyse(source)``, taking an
artifact's path or an array already in memory and returning a result whose ``to_record()`` is
a JSON-ready ``dict`` (what the processor stores as a row and appends to the results log).
Plugins are built from their config mapping by a factory registered under their name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from rigwatch.errors import AnalysisError

Source = str | Path | np.ndarray
"""What a plugin analyses: an artifact's path, or its data already in memory."""


@runtime_checkable
class AnalysisResult(Protocol):
    """A plugin's result: ``to_record()`` gives the JSON-ready dict stored by the processor."""

    def to_record(self) -> dict[str, Any]: ...


@runtime_checkable
class AnalysisPlugin(Protocol):
    """An analysis the processor can run on an artifact.

    Attributes:
        name: the registry name (``"grating"``, ``"vibration"``).
    """

    name: str

    def analyse(self, source: Source) -> AnalysisResult: ...


PluginFactory = Callable[[Mapping[str, Any]], AnalysisPlugin]
"""Builds a plugin from its config mapping (the plugin validates it)."""

_REGISTRY: dict[str, PluginFactory] = {}


def register(name: str, factory: PluginFactory) -> None:
    """Register ``factory`` under ``name``; registering a name twice is an error.

    Raises:
        AnalysisError: ``name`` is already registered.
    """
    if name in _REGISTRY:
        raise AnalysisError(f"analysis plugin {name!r} is already registered")
    _REGISTRY[name] = factory


def plugin_names() -> list[str]:
    """The registered plugin names, sorted."""
    return sorted(_REGISTRY)


def create_plugin(name: str, config: Mapping[str, Any] | None = None) -> AnalysisPlugin:
    """Build the plugin registered as ``name`` from its config mapping.

    Raises:
        AnalysisError: no plugin of that name (the message lists the known ones), or the config
            is invalid for it.
    """
    factory = _REGISTRY.get(name)
    if factory is None:
        raise AnalysisError(
            f"unknown analysis plugin {name!r}; known: {', '.join(plugin_names()) or 'none'}"
        )
    return factory(config or {})

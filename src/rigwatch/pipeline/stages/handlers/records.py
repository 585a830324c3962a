"""What the reporter hands to its handlers: an artifact with its processing result, and the
result's values flattened to ``key -> number`` for handlers that write single values
(OPC-UA nodes, fleet metrics)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from rigwatch.pipeline.manifest import ArtifactRecord
from rigwatch.timefmt import iso_utc

Scalar = float | int | str | bool | None


@dataclass(frozen=True)
class ReportRecord:
    """One processed artifact to report.

    Attributes:
        artifact: the artifact (id, kind, path, meta...).
        result: its ``process`` result (``image_analysis``, vibration features...).
        timestamp_ns: when its data were taken (captured, else added), ns since the epoch.
    """

    artifact: ArtifactRecord
    result: Mapping[str, Any]
    timestamp_ns: int

    @property
    def artifact_id(self) -> int:
        """The artifact's id."""
        return self.artifact.id

    @property
    def timestamp_iso(self) -> str:
        """The timestamp as ISO 8601 UTC."""
        return iso_utc(self.timestamp_ns)

    @property
    def filename(self) -> str:
        """The artifact's file name."""
        return Path(self.artifact.path).name

    def temperatures(self) -> dict[str, float | None]:
        """``{sensor: degC}`` read with the artifact (collector metadata or result)."""
        readings = self.result.get("temperature_readings") or self.artifact.meta.get(
            "temperature_readings"
        )
        return dict(readings) if isinstance(readings, Mapping) else {}

    def values(self) -> dict[str, Scalar]:
        """The result flattened (see :func:`flatten_result`)."""
        return flatten_result(self.result, self.temperatures())


def _walk(prefix: str, value: Any, out: dict[str, Scalar]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _walk(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, bool | int | str) or value is None:
        out[prefix] = value
    elif isinstance(value, float):
        out[prefix] = value if math.isfinite(value) else None


def flatten_result(
    result: Mapping[str, Any], temperatures: Mapping[str, float | None] | None = None
) -> dict[str, Scalar]:
    """``key -> value`` of a processing result.

    Keys: ``brightness``, ``contrast``, ``<ROI-label>.<output>.<statistic>`` (grating
    analysis, e.g. ``ROI_R00C00_1.mu.Median``), dotted paths of other mappings
    (``rms``, ``defect_lines.bpfi.amplitude``) and ``temperature.<sensor>``. Lists other
    than ``image_analysis`` are left out.
    """
    out: dict[str, Scalar] = {}
    for key, value in result.items():
        if key == "image_analysis" and isinstance(value, list):
            for item in value:
                if not isinstance(item, Mapping):
                    continue
                label = item.get("ROI-label")
                if label is None:
                    _walk("", item, out)
                    continue
                for name, stats in item.items():
                    if isinstance(stats, Mapping):
                        _walk(f"{label}.{name}", stats, out)
        elif key != "temperature_readings":
            _walk(key, value, out)
    for sensor, degc in (temperatures or {}).items():
        out[f"temperature.{sensor}"] = degc
    return out


class ReportHandler(Protocol):
    """A reporter handler."""

    name: str

    def deliver(self, record: ReportRecord) -> dict[str, Any]:
        """Deliver one record; returns what was delivered (JSON object).

        Raises:
            DeliveryError: not delivered (retried later).
        """
        ...

    def flush(self) -> None:
        """Periodic work after a batch (redraw a plot)."""
        ...

    def close(self) -> None:
        """Release connections and files."""
        ...

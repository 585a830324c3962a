"""Rolling-element bearing defect frequencies from bearing geometry and shaft speed.

Formulas (R. B. Randall and J. Antoni, "Rolling element bearing diagnostics - A tutorial",
Mechanical Systems and Signal Processing 25 (2011) 485-520, eqs. (1)-(4)), for a stationary
outer race, shaft (inner-race) frequency ``f_r``, ``n`` rolling elements of diameter ``d`` on a
pitch diameter ``D`` and contact angle ``phi``:

- cage, fundamental train frequency:  ``FTF  = f_r / 2 * (1 - d/D cos phi)``
- ball pass frequency, outer race:    ``BPFO = n f_r / 2 * (1 - d/D cos phi)``
- ball pass frequency, inner race:    ``BPFI = n f_r / 2 * (1 + d/D cos phi)``
- ball (roller) spin frequency:       ``BSF  = D f_r / (2 d) * (1 - (d/D cos phi)^2)``

A ball defect strikes both races once per spin, so its envelope spectrum usually shows
``2 x BSF``; tables such as the CWRU Bearing Data Center's quote that value as "BSF".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rigwatch.errors import AnalysisError


@dataclass(frozen=True)
class BearingGeometry:
    """Geometry of a rolling-element bearing.

    Attributes:
        n_elements: number of balls or rollers, >= 1.
        element_diameter: ball or roller diameter ``d`` (any length unit, same as the pitch).
        pitch_diameter: pitch diameter ``D`` (same unit), > ``element_diameter``.
        contact_angle_deg: contact angle ``phi`` in degrees, 0 <= phi < 90.
    """

    n_elements: int
    element_diameter: float
    pitch_diameter: float
    contact_angle_deg: float = 0.0

    def __post_init__(self) -> None:
        if self.n_elements < 1:
            raise AnalysisError(f"bearing n_elements must be >= 1, got {self.n_elements}")
        if not 0 < self.element_diameter < self.pitch_diameter:
            raise AnalysisError(
                "bearing needs 0 < element_diameter < pitch_diameter, got "
                f"{self.element_diameter} and {self.pitch_diameter}"
            )
        if not 0 <= self.contact_angle_deg < 90:
            raise AnalysisError(
                f"bearing contact_angle_deg must be in [0, 90), got {self.contact_angle_deg}"
            )

    def defect_frequencies(self, shaft_hz: float) -> DefectFrequencies:
        """The four characteristic frequencies at shaft frequency ``shaft_hz`` (Hz, > 0)."""
        if not shaft_hz > 0:
            raise AnalysisError(f"shaft frequency must be > 0 Hz, got {shaft_hz}")
        ratio = self.element_diameter / self.pitch_diameter
        ratio *= math.cos(math.radians(self.contact_angle_deg))
        n = self.n_elements
        return DefectFrequencies(
            shaft_hz=shaft_hz,
            ftf_hz=shaft_hz / 2 * (1 - ratio),
            bpfo_hz=n * shaft_hz / 2 * (1 - ratio),
            bpfi_hz=n * shaft_hz / 2 * (1 + ratio),
            bsf_hz=self.pitch_diameter * shaft_hz / (2 * self.element_diameter) * (1 - ratio**2),
        )


@dataclass(frozen=True)
class DefectFrequencies:
    """Characteristic defect frequencies in Hz (see the module docstring for the formulas)."""

    shaft_hz: float
    ftf_hz: float
    bpfo_hz: float
    bpfi_hz: float
    bsf_hz: float

    def as_dict(self) -> dict[str, float]:
        """``{"shaft_hz", "ftf_hz", "bpfo_hz", "bpfi_hz", "bsf_hz"}``."""
        return {
            "shaft_hz": self.shaft_hz,
            "ftf_hz": self.ftf_hz,
            "bpfo_hz": self.bpfo_hz,
            "bpfi_hz": self.bpfi_hz,
            "bsf_hz": self.bsf_hz,
        }


SKF_6205 = BearingGeometry(
    n_elements=9, element_diameter=0.3126, pitch_diameter=1.537, contact_angle_deg=0.0
)
"""SKF 6205-2RS JEM deep-groove ball bearing (inches), the CWRU test rig's drive-end bearing
(dimensions as published by the CWRU Bearing Data Center)."""

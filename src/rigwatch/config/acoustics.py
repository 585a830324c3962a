"""The acoustic camera's configuration: ``[acoustics]`` in a station config.

The camera reads one device's microphone channels from its ring buffer (``device``), maps
them to the microphones of an array (``[acoustics.array]``), focuses on a grid
(``[acoustics.grid]``: a plane or the ball mill's pipe surface) and publishes maps
(``method``, ``[acoustics.band]``) at ``map_rate_hz``. See ``configs/ball_mill.toml`` and
``configs/acoustic_replay.toml``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from rigwatch.config.base import Name, ResolvedPath, Strict

SteeringName = Literal["classic", "inverse", "true level", "true location"]
"""Steering vector formulations I-IV of Sarradj (2012), with Acoular's names."""

MethodName = Literal["conventional", "music", "clean_sc", "seed_music"]
"""Map methods: conventional beamforming (dB), MUSIC on the band (pseudo-spectrum), CLEAN-SC
(dB), and the ball mill's former MUSIC heatmap (15 bands of 400 Hz, 1-7 kHz, normalised)."""


class ArrayConfig(Strict):
    """Microphone geometry and wiring.

    Attributes:
        builtin: ``"ball_mill_9"``: 8 microphones on a 5 cm circle plus one at the centre.
        file: an Acoular XML (``<pos Name x y z/>``), CSV (x, y, z in metres) or
            array-benchmark HDF5 geometry file, instead of ``builtin``.
        channels: the device channel wired to each microphone, in the geometry's order
            (default: the device's first channels, in order).
        excluded: channels never used (known bad microphones).
    """

    builtin: Literal["ball_mill_9"] | None = None
    file: ResolvedPath | None = None
    channels: list[Name] | None = None
    excluded: list[Name] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_source(self) -> ArrayConfig:
        if (self.builtin is None) == (self.file is None):
            raise ValueError("give exactly one of array.builtin and array.file")
        return self


class PlaneGridConfig(Strict):
    """A rectangular plane of focus points at distance ``z_m`` in front of the array."""

    kind: Literal["plane"] = "plane"
    x_min_m: float = -1.0
    x_max_m: float = 1.0
    y_min_m: float = -1.0
    y_max_m: float = 1.0
    z_m: float = Field(1.0, gt=0)
    increment_m: float = Field(0.05, gt=0)


class CylinderGridConfig(Strict):
    """Points on a pipe's surface, unrolled: ``n_along`` along ``length_m`` x ``n_around``
    over ``arc_deg`` of the circumference facing the array. Defaults: the ball mill's."""

    kind: Literal["cylinder"] = "cylinder"
    length_m: float = Field(3.15, gt=0)
    diameter_m: float = Field(0.30, gt=0)
    n_along: int = Field(50, ge=1, le=2000)
    n_around: int = Field(5, ge=1, le=360)
    distance_m: float = Field(1.5, gt=0)
    height_m: float = 0.46
    axis_x_m: float = 0.0
    arc_deg: float = Field(180.0, gt=0, le=360)


GridConfig = Annotated[PlaneGridConfig | CylinderGridConfig, Field(discriminator="kind")]


class BandConfig(Strict):
    """The frequency band a map covers.

    Attributes:
        kind: ``third_octave`` or ``octave`` (IEC 61260-1 bands around ``centre_hz``),
            ``narrow`` (the FFT bin nearest ``centre_hz``), ``range`` (``low_hz`` to
            ``high_hz``), ``custom`` (the sum of ``ranges_hz``, the ball mill's former bands).
    """

    kind: Literal["third_octave", "octave", "narrow", "range", "custom"] = "third_octave"
    centre_hz: float | None = Field(4000.0, gt=0)
    low_hz: float | None = Field(None, gt=0)
    high_hz: float | None = Field(None, gt=0)
    ranges_hz: list[tuple[float, float]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _complete(self) -> BandConfig:
        if self.kind == "range" and (
            self.low_hz is None or self.high_hz is None or self.low_hz >= self.high_hz
        ):
            raise ValueError("band kind 'range' needs low_hz < high_hz")
        if self.kind == "custom":
            if not self.ranges_hz:
                raise ValueError("band kind 'custom' needs ranges_hz")
            bad = [r for r in self.ranges_hz if not 0 < r[0] < r[1]]
            if bad:
                raise ValueError(f"ranges_hz entries must be 0 < low < high, got {bad}")
        if self.kind in ("third_octave", "octave", "narrow") and self.centre_hz is None:
            raise ValueError(f"band kind {self.kind!r} needs centre_hz")
        return self


class ListenConfig(Strict):
    """Listening to a point: delay-and-sum, then a filter (SciPy SOS Butterworth).

    Attributes:
        low_hz: high-pass edge (None: low-pass only).
        high_hz: low-pass edge (the ball mill's playback used 1 kHz).
        order: Butterworth order.
        block_s: length of each PCM frame sent to listeners.
        max_selections: points listened to at once.
    """

    low_hz: float | None = Field(None, gt=0)
    high_hz: float | None = Field(1000.0, gt=0)
    order: int = Field(4, ge=1, le=10)
    block_s: float = Field(0.05, gt=0, le=1)
    max_selections: int = Field(8, ge=1, le=64)


class AcousticCameraConfig(Strict):
    """``[acoustics]``: the acoustic camera of a station.

    Attributes:
        device: the device whose channels are the microphones.
        temperature_c: air temperature, for the speed of sound.
        block_size: FFT block length of the Welch CSM (samples).
        overlap: fraction of a block shared with the next.
        window: the Welch window.
        average_s: time the CSM of a live map averages over (the newest ``average_s``).
        steering: steering vector formulation (Sarradj 2012; Acoular's names).
        diagonal_removal: drop the CSM's main diagonal (microphone self-noise).
        method: the map method (:data:`MethodName`).
        n_sources: signal subspace size of MUSIC; CLEAN-SC iterations per source.
        map_rate_hz: maps published per second.
        dynamic_range_db: default colour-scale range of the page below a map's peak.
        full_scale_pa: the microphones' clipping level after calibration (the input range
            times the calibration gain); a block with a channel at it is refused as clipped.
            ``None``: not checked.
    """

    device: Name
    array: ArrayConfig
    grid: GridConfig = CylinderGridConfig()
    temperature_c: float = Field(20.0, gt=-80, lt=80)
    block_size: int = Field(1024, ge=16, le=65536)
    overlap: float = Field(0.5, ge=0, lt=1)
    window: Literal["hann", "hamming", "blackman", "boxcar"] = "hann"
    average_s: float = Field(1.0, gt=0, le=60)
    steering: SteeringName = "true level"
    diagonal_removal: bool = True
    method: MethodName = "conventional"
    band: BandConfig = BandConfig()
    n_sources: int = Field(2, ge=1, le=64)
    map_rate_hz: float = Field(2.0, gt=0, le=50)
    dynamic_range_db: float = Field(20.0, gt=0, le=120)
    full_scale_pa: float | None = Field(None, gt=0)
    listen: ListenConfig = ListenConfig()

    @model_validator(mode="after")
    def _block_fits(self) -> AcousticCameraConfig:
        if self.block_size & (self.block_size - 1):
            raise ValueError(f"block_size must be a power of two, got {self.block_size}")
        return self

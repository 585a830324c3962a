"""Request and response models of the acoustic camera's endpoints (``/api/acoustics/...`` and
the ball mill's former ``/heatmap``, ``/audio_data``, ``/select_pixel``, ``/play``,
``/deselect_pixel``, ``/status``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from rigwatch.config.acoustics import BandConfig, ListenConfig, MethodName, SteeringName


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PeakOut(BaseModel):
    """A local maximum of a map."""

    row: int
    col: int
    point_index: int
    position_m: tuple[float, float, float]
    value: float = Field(description="dB re 20 uPa, or the pseudo-spectrum (0..1)")


class AcousticMapOut(BaseModel):
    """The newest map."""

    seq: int
    timestamp: str = Field(description="ISO 8601 UTC time of the newest sample in the map")
    values: list[list[float]] = Field(description="rows x cols, the grid's map shape")
    quantity: Literal["spl_db", "pseudo_spectrum"]
    unit: str
    method: MethodName
    band: str
    f_low_hz: float
    f_high_hz: float
    compute_ms: float
    excluded: list[str] = Field(description="microphones left out (configured or dead)")
    peaks: list[PeakOut]


class GridOut(BaseModel):
    """The focus grid as the page draws it."""

    kind: Literal["plane", "cylinder"]
    shape: tuple[int, int] = Field(description="(rows, cols) of every map")
    x_m: list[float] = Field(description="column positions: x (plane) or along the pipe")
    y_m: list[float] = Field(description="row positions: y (plane) or arc length around")
    row_label: str
    col_label: str


class ArrayOut(BaseModel):
    """The microphone array as wired."""

    n_mics: int
    channels: list[str]
    positions_m: list[tuple[float, float, float]]
    excluded: list[str]
    dead: list[str]


class ParametersOut(BaseModel):
    """The parameters maps are made with now."""

    method: MethodName
    band: BandConfig
    steering: SteeringName
    diagonal_removal: bool
    map_rate_hz: float
    dynamic_range_db: float
    average_s: float
    n_sources: int
    block_size: int
    overlap: float
    window: str
    temperature_c: float
    speed_of_sound_m_s: float
    sample_rate_hz: float
    listen: ListenConfig


class ParametersIn(_In):
    """Parameters to change (all optional); they apply from the next map."""

    method: MethodName | None = None
    band: BandConfig | None = None
    steering: SteeringName | None = None
    diagonal_removal: bool | None = None
    map_rate_hz: float | None = Field(None, gt=0, le=50)
    dynamic_range_db: float | None = Field(None, gt=0, le=120)
    average_s: float | None = Field(None, gt=0, le=60)
    n_sources: int | None = Field(None, ge=1, le=64)


class SelectionOut(BaseModel):
    """A point listened to."""

    id: str
    row: int
    col: int
    point_index: int
    position_m: tuple[float, float, float]
    playing: bool = Field(description="played on the station's sound card")


class SelectIn(_In):
    """A map cell to listen to."""

    row: int = Field(ge=0)
    col: int = Field(ge=0)


class PlayIn(_In):
    """Play a selection on the station's sound card, or stop."""

    playing: bool = True


class CameraStatsOut(BaseModel):
    """The camera's counts."""

    state: str
    maps: int
    last_compute_ms: float
    blocks_refused: int
    rows_missed: int
    audio_frames: int
    last_error: str | None
    sound_card: str | None


class AcousticsOut(BaseModel):
    """Everything about the acoustic camera at once."""

    device: str
    array: ArrayOut
    grid: GridOut
    parameters: ParametersOut
    stats: CameraStatsOut
    selections: list[SelectionOut]
    listen_latency_ms: float = Field(
        description="focus latency (delays and filter), without the acquisition's block"
    )


# -- the ball mill's former endpoints ----------------------------------------------------------


class HeatmapDimensions(BaseModel):
    """Size of the mapped surface, metres (for a plane: its width and height)."""

    length: float
    diameter: float


class LegacyHeatmap(BaseModel):
    """``GET /heatmap`` as the ball mill's clients read it: values min-max normalised 0..1."""

    heatmap: list[list[float]]
    timestamp: str
    dimensions: HeatmapDimensions


class PixelIn(BaseModel):
    """A heatmap pixel: ``x`` = column (along the pipe), ``y`` = row (around)."""

    model_config = ConfigDict(extra="ignore")
    x: int = Field(ge=0)
    y: int = Field(ge=0)


class PixelPlayIn(PixelIn):
    """``/play``: a pixel (selected if it is not yet) and whether to play it."""

    play: bool = True


class PixelReply(BaseModel):
    """Reply of ``/select_pixel``, ``/play`` and ``/deselect_pixel``."""

    success: bool
    message: str
    selected_pixels: list[tuple[int, int]] = Field(description="(x, y) of every selection")
    playing: list[tuple[int, int]]


class LegacyAudioData(BaseModel):
    """``GET /audio_data``: the newest raw samples of the microphones."""

    audio_data: list[list[float]] = Field(description="samples x microphones, Pa")
    sample_rate: float
    channels: list[str]
    timestamp: str


class LegacyStatus(BaseModel):
    """``GET /status``: the ball mill's former servers' status fields in one reply: acquisition
    and mapping (without a camera: the acquisition devices' state, no maps), playback, and the
    valve server's Pi connection and valve states (empty without GPIO valves)."""

    is_running: bool
    status: str
    queue_size: int = Field(description="blocks waiting to be mapped (0: maps keep up)")
    maps: int
    selected_pixels: list[tuple[int, int]]
    playing: list[tuple[int, int]]
    is_playing: bool
    pi_connected: bool = Field(default=False, description="The GPIO valves' Pi is connected.")
    pi_ip: str | None = Field(default=None, description="The Pi running the pigpio daemon.")
    valve_states: list[bool | None] = Field(
        default_factory=list, description="Each valve: true open, false closed, null unknown."
    )

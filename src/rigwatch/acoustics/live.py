"""The live acoustic camera: maps and focused sound from a device's ring buffer.

The camera is a ring-buffer reader like the live hub: it never slows acquisition. Two threads,
each with its own read position in the microphone device's buffer:

* the **map thread** (lowered priority, :func:`rigwatch.threads.lower_thread_priority`) adds
  every new block to an incremental cross-spectral matrix over the bins of the chosen band
  (:class:`~rigwatch.acoustics.csm.CsmAccumulator`, exponentially averaged with time constant
  ``average_s``), and at ``map_rate_hz`` turns it into a map: conventional beamforming or
  CLEAN-SC as sound pressure level (dB re 20 uPa), MUSIC as a pseudo-spectrum, or the ball
  mill's former MUSIC heatmap (from the newest second of time data). A microphone found dead
  is excluded from the next map on, and reported, without a restart.
* the **audio thread** focuses on the selected points (time-domain delay-and-sum,
  :class:`~rigwatch.acoustics.focus.FocusedBeam`) as blocks arrive and hands PCM frames of
  ``listen.block_s`` to its listeners (the WebSocket) and, when a selection is playing, to the
  station's sound card.

Listeners are called from these threads: they must return quickly (hand over to an event loop).
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import maximum_filter

from rigwatch.acoustics.bands import Band, union_bins
from rigwatch.acoustics.beamform import beamform_bins, sound_pressure_level_db
from rigwatch.acoustics.clean_sc import clean_sc_bins
from rigwatch.acoustics.csm import CsmAccumulator
from rigwatch.acoustics.focus import BandFilter, FocusedBeam
from rigwatch.acoustics.geometry import MicArray
from rigwatch.acoustics.music import music_pseudo_spectrum, seed_music_map
from rigwatch.acoustics.setup import Scene, build_bands, build_scene
from rigwatch.acoustics.steering import Steering
from rigwatch.acquisition.engine import DeviceStream
from rigwatch.config.acoustics import AcousticCameraConfig, ListenConfig
from rigwatch.counters import Counters
from rigwatch.errors import AcousticsError
from rigwatch.threads import lower_thread_priority

log = logging.getLogger(__name__)

WINDOW_NAMES = {
    "hann": "Hanning",
    "hamming": "Hamming",
    "blackman": "Blackman",
    "boxcar": "Rectangular",
}
"""Config window names -> the CSM's (Acoular's symmetric windows)."""

TUNABLE = frozenset(
    {
        "method",
        "band",
        "steering",
        "diagonal_removal",
        "map_rate_hz",
        "dynamic_range_db",
        "average_s",
        "n_sources",
    }
)
"""Parameters that can change while the camera runs (the rest needs a restart)."""

SEED_MUSIC_WINDOW_S = 1.0
"""Time data per heatmap of the ``seed_music`` method: the ball mill's 1 s NI-DAQ block."""

MAX_PEAKS = 5
WAKE_TIMEOUT_S = 0.25

Quantity = Literal["spl_db", "pseudo_spectrum"]


@dataclass(frozen=True)
class Peak:
    """A local maximum of a map: its cell, focus point and value (the map's quantity)."""

    row: int
    col: int
    point_index: int
    position_m: tuple[float, float, float]
    value: float


@dataclass(frozen=True)
class AcousticMap:
    """One published map.

    Attributes:
        seq: 0, 1, 2... per camera.
        timestamp_ns: time of the newest sample in it (ns since the Unix epoch).
        values: float32 ``(rows, cols)`` (the grid's map shape): dB re 20 uPa for
            ``quantity == "spl_db"``, a dimensionless 0..1 pseudo-spectrum otherwise.
        quantity: ``"spl_db"`` or ``"pseudo_spectrum"``.
        method: the method that made it.
        band_label: the band(s).
        f_low_hz, f_high_hz: the lowest and highest frequency of the bins used.
        compute_s: time the map took, from the CSM (or time data) to the values.
        excluded: microphones left out (configured or found dead), by channel name.
        peaks: up to :data:`MAX_PEAKS` local maxima, strongest first.
    """

    seq: int
    timestamp_ns: int
    values: NDArray[np.float32]
    quantity: Quantity
    method: str
    band_label: str
    f_low_hz: float
    f_high_hz: float
    compute_s: float
    excluded: tuple[str, ...]
    peaks: tuple[Peak, ...]

    @property
    def unit(self) -> str:
        """``"dB re 20 uPa"`` or ``""`` (a pseudo-spectrum has no unit)."""
        return "dB re 20 uPa" if self.quantity == "spl_db" else ""

    def normalised(self) -> NDArray[np.float64]:
        """The map min-max normalised to 0..1 (the ball mill's former ``/heatmap`` values)."""
        v = self.values.astype(np.float64)
        lo, hi = float(v.min()), float(v.max())
        return (v - lo) / (hi - lo) if hi > lo else np.zeros_like(v)


@dataclass(frozen=True)
class Selection:
    """A point listened to: its grid cell, position and whether the sound card plays it."""

    id: str
    point_index: int
    row: int
    col: int
    position_m: tuple[float, float, float]
    playing: bool = False


@dataclass(frozen=True)
class AudioFrame:
    """Focused sound of every selection over the same samples.

    Attributes:
        seq: 0, 1, 2... per camera.
        start_index: absolute ring-buffer index of the first sample.
        sample_rate_hz: the microphones' rate.
        selections: the selection ids, one per column of ``samples``.
        samples: float32 ``(n_samples, n_selections)``, Pa.
        latency_s: algorithmic latency of the focus (delays and filter).
    """

    seq: int
    start_index: int
    sample_rate_hz: float
    selections: tuple[str, ...]
    samples: NDArray[np.float32]
    latency_s: float


MapListener = Callable[[AcousticMap], None]
AudioListener = Callable[[AudioFrame], None]


@dataclass
class CameraStats:
    """Counts and times of one camera (read by the status endpoint)."""

    maps: int = 0
    last_compute_s: float = 0.0
    blocks_refused: int = 0
    rows_missed: int = 0
    audio_frames: int = 0
    last_error: str | None = None
    dead: tuple[str, ...] = ()
    state: str = "idle"
    sound_card: str | None = None


class AcousticCamera:
    """The acoustic camera of one microphone device.

    Args:
        config: the ``[acoustics]`` section.
        stream: the microphone device's stream (ring buffer and listeners).
        counters: where refused blocks, missed rows and errors are counted.
        sound_card: opens the station's sound card for playback (default: the ``sounddevice``
            sink, imported only when a selection is played).

    Raises:
        GeometryError: the array does not fit the device (see :func:`build_scene`).
        BandError: the configured band does not fit the device's rate.
    """

    def __init__(
        self,
        config: AcousticCameraConfig,
        stream: DeviceStream,
        counters: Counters,
        *,
        sound_card: Callable[[float], Any] | None = None,
    ) -> None:
        self.stream = stream
        self.scene: Scene = build_scene(config, stream.info)
        self.sample_rate_hz = float(stream.info.sample_rate_hz)
        build_bands(config.band, self.sample_rate_hz)
        self._config = config
        self._counters = counters
        self._open_sound_card = sound_card or _default_sound_card
        self._lock = threading.Lock()
        self._generation = 0  # bumped on every parameter change
        self._map_wake = threading.Event()
        self._audio_wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._latest: AcousticMap | None = None
        self._map_listeners: list[MapListener] = []
        self._audio_listeners: list[AudioListener] = []
        self._selections: dict[str, Selection] = {}
        self._selection_ids = itertools.count(1)
        self._selections_changed = True
        self._dead: frozenset[int] = frozenset()
        self.stats = CameraStats()
        self._sink: Any = None
        points = self.scene.grid.points_m
        self._points = points
        n_mics = self.scene.mics.n_mics
        self._mic_order = MicArray(
            self.scene.mics.positions_m,
            self.scene.mics.names,
            tuple(range(n_mics)),
            self.scene.mics.excluded,
        )
        """The array indexed by column of the microphone-ordered data the threads read."""
        self._listen_latency_s = FocusedBeam(
            self.scene.mics.positions_m,
            np.zeros((0, 3)),
            self.sample_rate_hz,
            self.scene.speed_of_sound_m_s,
            band=listen_filter(config.listen),
        ).latency_s

    # -- parameters ---------------------------------------------------------------------------
    @property
    def config(self) -> AcousticCameraConfig:
        """The current parameters."""
        return self._config

    def set_parameters(self, changes: dict[str, Any]) -> AcousticCameraConfig:
        """Change map parameters while running; they apply from the next map.

        Args:
            changes: keys of :data:`TUNABLE` with new values (``band`` as a mapping).

        Returns:
            the new parameters.

        Raises:
            AcousticsError: a key that cannot change while running.
            pydantic.ValidationError: a value the config model refuses.
            BandError: a band above Nyquist.
        """
        fixed = sorted(set(changes) - TUNABLE)
        if fixed:
            raise AcousticsError(
                f"parameter(s) {fixed} cannot change while running (tunable: {sorted(TUNABLE)})"
            )
        merged = {**self._config.model_dump(), **changes}
        new = AcousticCameraConfig.model_validate(merged)
        build_bands(new.band, self.sample_rate_hz)
        with self._lock:
            self._config = new
            self._generation += 1
        self._map_wake.set()
        return new

    # -- maps ---------------------------------------------------------------------------------
    @property
    def latest(self) -> AcousticMap | None:
        """The newest map, or ``None`` before the first."""
        return self._latest

    def add_map_listener(self, listener: MapListener) -> None:
        """Be called with every new map (from the map thread)."""
        with self._lock:
            self._map_listeners = [*self._map_listeners, listener]

    def remove_map_listener(self, listener: MapListener) -> None:
        """Stop calling ``listener``."""
        with self._lock:
            self._map_listeners = [x for x in self._map_listeners if x is not listener]

    # -- listening ----------------------------------------------------------------------------
    @property
    def selections(self) -> list[Selection]:
        """The points listened to, oldest first."""
        with self._lock:
            return list(self._selections.values())

    def cell_of(self, row: int, col: int) -> int:
        """The focus-point index of map cell ``(row, col)``.

        Raises:
            AcousticsError: the cell is outside the map.
        """
        rows, cols = self.scene.grid.shape
        if not (0 <= row < rows and 0 <= col < cols):
            raise AcousticsError(f"cell ({row}, {col}) is outside the {rows} x {cols} map")
        return row * cols + col

    def select(self, row: int, col: int, *, playing: bool = False) -> Selection:
        """Listen to map cell ``(row, col)`` (an existing selection of it is returned).

        Raises:
            AcousticsError: the cell is outside the map, or ``listen.max_selections`` are
                already selected.
        """
        idx = self.cell_of(row, col)
        with self._lock:
            for sel in self._selections.values():
                if sel.point_index == idx:
                    return sel
            if len(self._selections) >= self._config.listen.max_selections:
                raise AcousticsError(
                    f"{len(self._selections)} points are already selected (the most is "
                    f"listen.max_selections = {self._config.listen.max_selections})"
                )
            p = self._points[idx]
            sel = Selection(
                id=f"s{next(self._selection_ids)}",
                point_index=idx,
                row=row,
                col=col,
                position_m=(float(p[0]), float(p[1]), float(p[2])),
                playing=playing,
            )
            self._selections[sel.id] = sel
            self._selections_changed = True
        self._audio_wake.set()
        return sel

    def deselect(self, selection_id: str) -> Selection:
        """Stop listening to a selection.

        Raises:
            KeyError: no such selection.
        """
        with self._lock:
            sel = self._selections.pop(selection_id)
            self._selections_changed = True
        return sel

    def deselect_cell(self, row: int, col: int) -> Selection:
        """Stop listening to the selection of map cell ``(row, col)``.

        Raises:
            AcousticsError: the cell is outside the map.
            KeyError: the cell is not selected.
        """
        idx = self.cell_of(row, col)
        with self._lock:
            found = [s.id for s in self._selections.values() if s.point_index == idx]
        if not found:
            raise KeyError(f"cell ({row}, {col}) is not selected")
        return self.deselect(found[0])

    def set_playing(self, selection_id: str, playing: bool) -> Selection:
        """Play a selection on the station's sound card, or stop.

        Raises:
            KeyError: no such selection.
            AcousticsError: the sound card cannot be opened (``sounddevice`` not installed:
                extra ``rigwatch[audio]``; no output device).
        """
        if playing and self._sink is None:
            self._sink = self._open_sound_card(self.sample_rate_hz)
            self.stats.sound_card = "open"
        with self._lock:
            sel = self._selections[selection_id]
            new = Selection(**{**sel.__dict__, "playing": playing})
            self._selections[selection_id] = new
        return new

    def add_audio_listener(self, listener: AudioListener) -> None:
        """Be called with every audio frame (from the audio thread)."""
        with self._lock:
            self._audio_listeners = [*self._audio_listeners, listener]

    def remove_audio_listener(self, listener: AudioListener) -> None:
        """Stop calling ``listener``."""
        with self._lock:
            self._audio_listeners = [x for x in self._audio_listeners if x is not listener]

    # -- life cycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start both threads, reading from the newest sample on."""
        self._stop.clear()
        self.stream.add_listener(self._on_block)
        start = self.stream.buffer.write_index
        for name, target in (
            ("acoustic-maps", self._map_loop),
            ("acoustic-audio", self._audio_loop),
        ):
            t = threading.Thread(target=target, args=(start,), name=name, daemon=True)
            t.start()
            self._threads.append(t)
        self.stats.state = "running"

    def stop(self) -> None:
        """Stop both threads and close the sound card. Idempotent."""
        self._stop.set()
        self._map_wake.set()
        self._audio_wake.set()
        self.stream.remove_listener(self._on_block)
        for t in self._threads:
            t.join(timeout=5)
        self._threads = []
        if self._sink is not None:
            self._sink.close()
            self._sink = None
        self.stats.state = "stopped"

    def _on_block(self, _end: int) -> None:
        self._map_wake.set()
        self._audio_wake.set()

    def _mic_columns(self, data: NDArray[np.float32]) -> NDArray[np.float32]:
        return data[:, list(self.scene.mics.channels)]

    def _excluded_names(self) -> tuple[str, ...]:
        names = self.scene.channel_names
        return tuple(names[i] for i in sorted(self.scene.mics.excluded | self._dead))

    # -- the map thread -----------------------------------------------------------------------
    def _map_loop(self, position: int) -> None:
        lower_thread_priority()
        with self._lock:
            state = self._new_map_state(self._config, self._generation)
        next_map = time.monotonic()
        seq = 0
        while not self._stop.is_set():
            self._map_wake.wait(WAKE_TIMEOUT_S)
            self._map_wake.clear()
            with self._lock:
                cfg, generation = self._config, self._generation
            if generation != state.generation:
                state = self._new_map_state(cfg, generation)
            got = self.stream.buffer.read_since(position)
            position = got.end_index
            if got.missed:
                self.stats.rows_missed += got.missed
                self._counters.inc("acoustics.rows_missed", got.missed)
            if got.data.shape[0]:
                self._add_to_map_state(state, cfg, self._mic_columns(got.data))
                state.last_ts = int(got.timestamps_ns[-1])
            now = time.monotonic()
            if now < next_map or not state.ready(cfg):
                continue
            next_map = max(next_map + 1.0 / cfg.map_rate_hz, now)
            try:
                amap = self._compute_map(state, cfg, seq)
            except AcousticsError as exc:
                self._error(f"map not computed: {exc}")
                continue
            seq += 1
            self._latest = amap
            self.stats.maps += 1
            self.stats.last_compute_s = amap.compute_s
            for listener in self._map_listeners:
                try:
                    listener(amap)
                except Exception:
                    log.exception("acoustic map listener failed")
                    self._counters.inc("acoustics.listener_error")

    def _new_map_state(self, cfg: AcousticCameraConfig, generation: int) -> _MapState:
        bands = build_bands(cfg.band, self.sample_rate_hz)
        bins = union_bins(bands, cfg.block_size, self.sample_rate_hz)
        acc = CsmAccumulator(
            self.scene.mics.n_mics,
            self.sample_rate_hz,
            bins,
            block_size=cfg.block_size,
            window=WINDOW_NAMES[cfg.window],
            overlap=cfg.overlap,
            precision="complex64",
            full_scale=cfg.full_scale_pa,
        )
        window_rows = max(cfg.block_size, round(SEED_MUSIC_WINDOW_S * self.sample_rate_hz))
        state = _MapState(generation, bands=bands, acc=acc, window_rows=window_rows)
        return state

    def _add_to_map_state(
        self, state: _MapState, cfg: AcousticCameraConfig, x: NDArray[np.float32]
    ) -> None:
        if cfg.method == "seed_music":
            state.push_window(x)
        try:
            state.acc.forget(math.exp(-x.shape[0] / (self.sample_rate_hz * cfg.average_s)))
            state.acc.add(x)
        except AcousticsError as exc:
            self.stats.blocks_refused += 1
            self._error(f"block of {x.shape[0]} rows refused: {exc}")
            return
        dead = frozenset(state.acc.dead_channels)
        if dead != self._dead:
            names = [self.scene.channel_names[i] for i in sorted(dead)]
            if dead - self._dead:
                log.warning("microphone(s) %s found dead: excluded from the maps", names)
                self._counters.inc("acoustics.dead_microphone", message=f"dead: {names}")
            self._dead = dead
            self.stats.dead = tuple(names)
            with self._lock:
                self._selections_changed = True  # re-weight the focus without them

    def _steering(self, state: _MapState, cfg: AcousticCameraConfig) -> Steering:
        excluded = self._mic_order.excluded | self._dead
        if state.steering is None or state.steering_excluded != excluded:
            mics = MicArray(
                self._mic_order.positions_m, self._mic_order.names, self._mic_order.channels,
                frozenset(excluded),
            )  # fmt: skip
            state.steering = Steering(
                mics, self._points, self.scene.speed_of_sound_m_s, cfg.steering
            )
            state.steering_excluded = frozenset(excluded)
        return state.steering

    def _compute_map(self, state: _MapState, cfg: AcousticCameraConfig, seq: int) -> AcousticMap:
        t0 = time.perf_counter()
        shape = self.scene.grid.shape
        excluded = sorted(self._mic_order.excluded | self._dead)
        freqs = np.asarray(state.acc.frequencies_hz, dtype=np.float64)
        quantity: Quantity = "spl_db"
        if cfg.method == "seed_music":
            data = state.window()
            if data.shape[0] < state.window_rows:
                raise AcousticsError(
                    f"{data.shape[0]} of {state.window_rows} samples for the heatmap so far"
                )
            mics = self._mic_order.excluding(self._dead)
            bmap = seed_music_map(
                data, self.sample_rate_hz, mics, self.scene.grid, self.scene.speed_of_sound_m_s
            )
            values = bmap.values
            quantity = "pseudo_spectrum"
            label = "1-7 kHz, 15 bands of 400 Hz"
            f_lo, f_hi = 1000.0, 7000.0
        else:
            steering = self._steering(state, cfg)
            csm = state.acc.csm(exclude=excluded)
            label = " + ".join(b.label for b in state.bands)
            f_lo, f_hi = float(freqs.min()), float(freqs.max())
            if cfg.method == "conventional":
                p2 = beamform_bins(
                    csm, freqs, steering, remove_diagonal=cfg.diagonal_removal, sum_bins=True
                )
                values = sound_pressure_level_db(p2)
            elif cfg.method == "clean_sc":
                p2 = clean_sc_bins(
                    csm, freqs, steering, remove_diagonal=cfg.diagonal_removal, sum_bins=True
                )
                values = sound_pressure_level_db(p2)
            else:  # music on the band: per-bin pseudo-spectra, max-normalised, summed, 0..1
                n_src = min(cfg.n_sources, steering.n_mics - 1)
                total = np.zeros(steering.n_points)
                for k, f in enumerate(freqs):
                    ps = music_pseudo_spectrum(csm[k], steering.vectors(float(f)), n_src)
                    total += ps / ps.max()
                lo, hi = total.min(), total.max()
                values = (total - lo) / (hi - lo) if hi > lo else np.zeros_like(total)
                quantity = "pseudo_spectrum"
                label = f"MUSIC {label}"
        grid_values = np.asarray(values, dtype=np.float32).reshape(shape)
        return AcousticMap(
            seq=seq,
            timestamp_ns=state.last_ts,
            values=grid_values,
            quantity=quantity,
            method=cfg.method,
            band_label=label,
            f_low_hz=f_lo,
            f_high_hz=f_hi,
            compute_s=time.perf_counter() - t0,
            excluded=tuple(self.scene.channel_names[i] for i in excluded),
            peaks=self._peaks(grid_values, cfg.dynamic_range_db),
        )

    def _peaks(self, values: NDArray[np.float32], range_db: float) -> tuple[Peak, ...]:
        """Local maxima (3 x 3 neighbourhood) within the dynamic range of the top, strongest
        first (for a pseudo-spectrum the range is taken as a fraction: ``10**(-range/10)``)."""
        top = float(values.max())
        floor = top - range_db if top > 1.0 or values.min() < 0 else top * 10 ** (-range_db / 10)
        is_max = (values == maximum_filter(values, size=3, mode="nearest")) & (values >= floor)
        rows, cols = np.nonzero(is_max)
        order = np.argsort(-values[rows, cols])[:MAX_PEAKS]
        n_cols = values.shape[1]
        out = []
        for i in order:
            r, c = int(rows[i]), int(cols[i])
            p = self._points[r * n_cols + c]
            out.append(
                Peak(
                    r,
                    c,
                    r * n_cols + c,
                    (float(p[0]), float(p[1]), float(p[2])),
                    float(values[r, c]),
                )
            )
        return tuple(out)

    # -- the audio thread ---------------------------------------------------------------------
    def _audio_loop(self, position: int) -> None:
        beam: FocusedBeam | None = None
        ids: tuple[str, ...] = ()
        pending: list[NDArray[np.float32]] = []
        pending_start = position
        seq = 0
        while not self._stop.is_set():
            self._audio_wake.wait(WAKE_TIMEOUT_S)
            self._audio_wake.clear()
            with self._lock:
                changed = self._selections_changed
                self._selections_changed = False
                sels = list(self._selections.values())
                listen = self._config.listen
            got = self.stream.buffer.read_since(position)
            position = got.end_index
            if changed:
                beam, ids = self._new_beam(beam, sels, listen), tuple(s.id for s in sels)
                pending, pending_start = [], got.start_index
            if beam is None or not ids or got.data.shape[0] == 0:
                pending_start = position
                continue
            if not pending:
                pending_start = got.start_index
            pending.append(beam.process(self._mic_columns(got.data)))
            frame_rows = max(1, round(listen.block_s * self.sample_rate_hz))
            have = sum(p.shape[0] for p in pending)
            if have < frame_rows:
                continue
            out = np.concatenate(pending)
            pending = []
            frame = AudioFrame(seq, pending_start, self.sample_rate_hz, ids, out, beam.latency_s)
            seq += 1
            self.stats.audio_frames += 1
            self._deliver_audio(frame, sels)

    def _new_beam(
        self, beam: FocusedBeam | None, sels: list[Selection], listen: ListenConfig
    ) -> FocusedBeam | None:
        if not sels:
            return beam
        points = np.array([s.position_m for s in sels])
        weights = np.ones(self.scene.mics.n_mics)
        weights[list(self.scene.mics.excluded | self._dead)] = 0.0
        if beam is None:
            return FocusedBeam(
                self.scene.mics.positions_m,
                points,
                self.sample_rate_hz,
                self.scene.speed_of_sound_m_s,
                band=listen_filter(listen),
                weights=weights,
            )
        beam.set_points(points, weights=weights)
        return beam

    def listen_latency_s(self) -> float:
        """Algorithmic latency of listening: the focus's delays and filter (the acquisition's
        block and the frame length ``listen.block_s`` come on top). Fixed by the array and
        ``[acoustics.listen]``, which do not change while running."""
        return self._listen_latency_s

    def _deliver_audio(self, frame: AudioFrame, sels: list[Selection]) -> None:
        for listener in self._audio_listeners:
            try:
                listener(frame)
            except Exception:
                log.exception("audio listener failed")
                self._counters.inc("acoustics.listener_error")
        playing = [i for i, s in enumerate(sels) if s.playing]
        if playing and self._sink is not None:
            try:
                self._sink.write(frame.samples[:, playing])
            except Exception as exc:  # a sound card that went away must not stop listening
                self._error(f"sound card: {exc}")

    def _error(self, message: str) -> None:
        log.warning("acoustic camera: %s", message)
        self.stats.last_error = message
        self._counters.inc("acoustics.error", message=message)


class _MapState:
    """What the map thread keeps between maps for one set of parameters."""

    def __init__(
        self, generation: int, *, bands: list[Band], acc: CsmAccumulator, window_rows: int
    ) -> None:
        self.generation = generation
        self.bands = bands
        self.acc = acc
        self.window_rows = window_rows
        self._window: list[NDArray[np.float32]] = []
        self._window_len = 0
        self.steering: Steering | None = None
        self.steering_excluded: frozenset[int] = frozenset()
        self.last_ts = 0

    def ready(self, cfg: AcousticCameraConfig) -> bool:
        """Enough data for a map: one CSM block, or the heatmap's whole second of samples."""
        if cfg.method == "seed_music":
            return self._window_len >= self.window_rows
        return self.acc.n_blocks > 0

    def push_window(self, x: NDArray[np.float32]) -> None:
        self._window.append(x)
        self._window_len += x.shape[0]
        while self._window and self._window_len - self._window[0].shape[0] >= self.window_rows:
            self._window_len -= self._window.pop(0).shape[0]

    def window(self) -> NDArray[np.float32]:
        if not self._window:
            return np.zeros((0, 0), np.float32)
        return np.concatenate(self._window)[-self.window_rows :]


def listen_filter(listen: ListenConfig) -> BandFilter:
    """The Butterworth filter of ``[acoustics.listen]``: band-pass with both edges, low-pass
    with ``high_hz`` only, high-pass with ``low_hz`` only, none without either."""
    if listen.low_hz and listen.high_hz:
        return BandFilter("bandpass", listen.low_hz, listen.high_hz, listen.order)
    if listen.high_hz:
        return BandFilter("lowpass", None, listen.high_hz, listen.order)
    if listen.low_hz:
        return BandFilter("highpass", listen.low_hz, None, listen.order)
    return BandFilter("none")


def _default_sound_card(sample_rate_hz: float) -> Any:
    from rigwatch.acoustics.soundcard import SoundCardSink

    return SoundCardSink(sample_rate_hz)

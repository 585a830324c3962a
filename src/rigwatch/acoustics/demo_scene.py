"""A reproducible multichannel recording for the acoustic camera's demo and replay example.

The real drone recording shipped in ``data/acoustics/measurement_drone.wav`` (51 200 Hz,
Acoular project, BSD-3-Clause) is placed as a point source on the ball mill's pipe surface,
a weaker white-noise source elsewhere on it, and both are propagated by the free-field model
(:func:`rigwatch.acoustics.scene.propagate_free_field`) to the ball mill's 9-microphone array,
with independent sensor noise on every microphone. The result is written in Acoular's HDF5
time-data format, which the ``replay`` driver plays.

Where the sources are is part of the file's attributes (``source_positions_m``), so a viewer
of the map can check it finds them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
from scipy.signal import resample_poly

from rigwatch.acoustics.geometry import CylinderGrid, MicArray, speed_of_sound_m_s
from rigwatch.acoustics.scene import propagate_free_field, white_noise
from rigwatch.errors import AcousticsError
from rigwatch.recordings.readers import read_recording

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoScene:
    """What :func:`write_demo_scene` places where.

    Attributes:
        drone_point: index of the grid point (of the default :class:`CylinderGrid`) where the
            drone recording plays, row-major in the map ``(around, along)``.
        noise_point: index of the grid point of the white-noise source.
        drone_rms_pa: RMS of the drone signal at 1 m (Pa).
        noise_rms_pa: RMS of the white-noise source at 1 m (Pa).
        sensor_noise_rms_pa: RMS of each microphone's own noise (Pa).
        sample_rate_hz: rate of the written recording (the ball mill's NI-DAQ rate).
        temperature_c: air temperature of the propagation.
        seed: seed of the noise generators.
    """

    drone_point: int = 2 * 50 + 12
    noise_point: int = 2 * 50 + 38
    drone_rms_pa: float = 1.0
    noise_rms_pa: float = 0.3
    sensor_noise_rms_pa: float = 0.005
    sample_rate_hz: float = 48_000.0
    temperature_c: float = 20.0
    seed: int = 7
    grid: CylinderGrid = field(default_factory=CylinderGrid)


def write_demo_scene(
    drone_wav: Path, out_path: Path, scene: DemoScene | None = None
) -> dict[str, object]:
    """Write the demo recording (Acoular HDF5: ``time_data`` float32 (n, 9), ``sample_freq``).

    Args:
        drone_wav: the drone recording (mono WAV, 51 200 Hz).
        out_path: the HDF5 file to write (its folder is created; written atomically).
        scene: source placement and levels (default: :class:`DemoScene`).

    Returns:
        a summary: samples, channels, rate, source positions.

    Raises:
        AcousticsError: the drone recording is not mono or its rate is not 51 200 Hz.
        FormatError: the WAV file cannot be read.
    """
    sc = scene or DemoScene()
    rec = read_recording(drone_wav)
    if rec.channels != 1 or rec.sample_rate_hz != 51_200:
        raise AcousticsError(
            f"{drone_wav}: expected a mono 51 200 Hz recording, got {rec.channels} channel(s) "
            f"at {rec.sample_rate_hz:g} Hz"
        )
    drone = resample_poly(rec.data[:, 0].astype(np.float64), 15, 16)  # 51 200 -> 48 000 Hz
    drone *= sc.drone_rms_pa / max(float(np.std(drone)), 1e-12)
    noise = white_noise(drone.size, 1, seed=sc.seed, rms=sc.noise_rms_pa)[:, 0]
    points = sc.grid.points_m
    sources = points[[sc.drone_point, sc.noise_point]]
    mics = MicArray.seed_ball_mill()
    pressures = propagate_free_field(
        np.stack([drone, noise], axis=1),
        sources,
        mics.positions_m,
        sc.sample_rate_hz,
        speed_of_sound_m_s(sc.temperature_c),
    )
    rng = np.random.default_rng(sc.seed + 1)
    pressures += rng.standard_normal(pressures.shape) * sc.sensor_noise_rms_pa
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    with h5py.File(tmp, "w") as fh:
        ds = fh.create_dataset("time_data", data=pressures.astype(np.float32))
        ds.attrs["sample_freq"] = np.float64(sc.sample_rate_hz)
        ds.attrs["source_positions_m"] = sources
        ds.attrs["source_points"] = np.array([sc.drone_point, sc.noise_point])
        ds.attrs["provenance"] = (
            "measurement_drone.wav (Acoular, BSD-3-Clause) and white noise propagated in free "
            "field to the ball mill's 9-microphone array (rigwatch.acoustics.demo_scene)"
        )
    tmp.replace(out_path)
    summary: dict[str, object] = {
        "samples": int(pressures.shape[0]),
        "channels": int(pressures.shape[1]),
        "sample_rate_hz": sc.sample_rate_hz,
        "source_positions_m": sources.tolist(),
    }
    log.info("demo scene written to %s: %s", out_path, summary)
    return summary

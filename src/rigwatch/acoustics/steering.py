"""Steering vectors in the four formulations of Sarradj (2012).

E. Sarradj, "Three-dimensional acoustic source mapping with different beamforming steering
vector formulations", Advances in Acoustics and Vibration 2012, 292695. For a focus point at
distance ``r_m`` from microphone ``m`` (of ``N``) and ``r_0`` from the reference position, with
wavenumber ``k = 2 pi f / c``, the steering vector is ``h_m = a_m * exp(-1j k (r_m - r_0))`` with
the real amplitude ``a_m`` of the chosen formulation:

=================  =========================================  ==========================
``steer_type``      ``a_m``                                    property
=================  =========================================  ==========================
``classic`` (I)     ``1 / N``                                  plane-wave-like weights
``inverse`` (II)    ``r_m / (N r_0)``                          inverse of the transfer
``true level``      ``1 / (r_0 r_m sum_l r_l**-2)``            right level at the source
``true location``   ``1 / (r_m sqrt(N sum_l r_l**-2))``        right location
=================  =========================================  ==========================

The map value at a point is ``h^H C h`` (C the cross-spectral matrix), as in Acoular's
``BeamformerBase`` with ``SteeringVector(steer_type=...)``. Reference position convention
(Acoular's ``SteeringVector.ref``): a 3-vector is a position and ``r_0`` the distance of each
point to it (default: the coordinate origin, i.e. the array centre in array coordinates); a
positive scalar is used directly as ``r_0`` for every point.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal, get_args

import numpy as np
from numpy.typing import NDArray

from rigwatch.acoustics.geometry import MicArray, check_grid
from rigwatch.errors import AcousticsError

__all__ = ["STEER_TYPES", "SteerType", "Steering", "distances"]

SteerType = Literal["classic", "inverse", "true level", "true location"]
STEER_TYPES: tuple[str, ...] = get_args(SteerType)


def distances(
    points_m: NDArray[np.float64], positions_m: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Euclidean distances ``(n_points, n_positions)`` (m) between two sets of 3-D points."""
    p = np.asarray(points_m, dtype=np.float64)
    q = np.asarray(positions_m, dtype=np.float64)
    # |p - q|^2 = |p - o|^2 + |q - o|^2 - 2 (p - o).(q - o), o the mean of q (less cancellation)
    o = q.mean(axis=0)
    p, q = p - o, q - o
    d2 = (p**2).sum(1)[:, None] + (q**2).sum(1)[None, :] - 2.0 * (p @ q.T)
    return np.sqrt(np.maximum(d2, 0.0))


class Steering:
    """Steering vectors of a set of focus points for an array.

    Args:
        mics: the array; only its active (not excluded) microphones are used.
        points_m: float64 ``(n_points, 3)`` focus points (in front of the array).
        speed_of_sound_m_s: c.
        steer_type: one of :data:`STEER_TYPES` (Acoular's default is ``"true level"``).
        ref: reference position (3-vector, default origin) or reference distance (> 0).

    Raises:
        GeometryError: points behind or through the array.
        AcousticsError: unknown ``steer_type``, bad ``ref`` or speed of sound.
    """

    def __init__(
        self,
        mics: MicArray,
        points_m: NDArray[np.float64],
        speed_of_sound_m_s: float,
        steer_type: SteerType = "true level",
        ref: float | NDArray[np.float64] | tuple[float, float, float] | None = None,
    ) -> None:
        if steer_type not in STEER_TYPES:
            raise AcousticsError(f"steer_type {steer_type!r} is not one of {STEER_TYPES}")
        if not speed_of_sound_m_s > 0:
            raise AcousticsError(f"speed of sound must be > 0 m/s, got {speed_of_sound_m_s}")
        pts = np.asarray(points_m, dtype=np.float64)
        self.rm = distances(pts, mics.active_positions_m)
        check_grid(pts, mics, self.rm)
        self.mics = mics
        self.points_m = pts
        self.c = float(speed_of_sound_m_s)
        self.steer_type: SteerType = steer_type
        if ref is None:
            ref = np.zeros(3)
        if np.ndim(ref) == 0:
            r = float(np.asarray(ref))
            if not r > 0:
                raise AcousticsError(f"reference distance must be > 0 m, got {r}")
            self.r0 = np.full(pts.shape[0], r)
        else:
            rp = np.asarray(ref, dtype=np.float64).reshape(-1)
            if rp.shape != (3,):
                raise AcousticsError(f"reference position must be a 3-vector, got {rp.shape}")
            self.r0 = distances(pts, rp[None, :])[:, 0]
        self.amplitude = self._amplitude()

    @property
    def n_points(self) -> int:
        """Number of focus points."""
        return int(self.rm.shape[0])

    @property
    def n_mics(self) -> int:
        """Number of microphones used."""
        return int(self.rm.shape[1])

    def _amplitude(self) -> NDArray[np.float64]:
        """Real amplitudes ``a_m`` ``(n_points, n_mics)`` of the formulation (module table)."""
        rm, r0, n = self.rm, self.r0[:, None], self.rm.shape[1]
        if self.steer_type == "classic":
            return np.full_like(rm, 1.0 / n)
        if self.steer_type == "inverse":
            return rm / (n * r0)
        inv2 = (1.0 / rm**2).sum(axis=1, keepdims=True)
        if self.steer_type == "true level":
            return 1.0 / (r0 * rm * inv2)
        return 1.0 / (rm * np.sqrt(n * inv2))

    def vectors(self, frequency_hz: float) -> NDArray[np.complex128]:
        """Steering vectors ``h`` ``(n_points, n_mics)`` complex128 at one frequency."""
        k = 2 * np.pi * frequency_hz / self.c
        return self.amplitude * np.exp(-1j * k * (self.rm - self.r0[:, None]))

    def iter_bins(
        self,
        frequencies_hz: NDArray[np.float64],
        points: slice = slice(None),
        dtype: type[np.complexfloating] = np.complex128,
    ) -> Iterator[NDArray[np.complexfloating]]:
        """Yield the steering vectors ``(n_sel, n_mics)`` of each frequency in turn.

        Same vectors as :meth:`vectors_for_bins` (``r_0`` phase left out, phase-step recursion
        for evenly spaced frequencies), but one frequency at a time in a reused buffer: each
        yielded array is overwritten by the next one (copy it to keep it). Small working sets
        stay in the processor's cache.
        """
        f = np.asarray(frequencies_hz, dtype=np.float64).reshape(-1)
        rm = self.rm[points]
        amp = self.amplitude[points]
        w = -2j * np.pi / self.c
        even = f.size > 2 and np.allclose(np.diff(f), f[1] - f[0], rtol=1e-12, atol=0)
        if not even:
            for fi in f:
                yield (amp * np.exp(w * fi * rm)).astype(dtype)
            return
        cur = (amp * np.exp(w * f[0] * rm)).astype(dtype)
        step = np.exp(w * (f[1] - f[0]) * rm).astype(dtype)
        yield cur
        for _ in range(1, f.size):
            np.multiply(cur, step, out=cur)
            yield cur

    def vectors_for_bins(
        self,
        frequencies_hz: NDArray[np.float64],
        points: slice = slice(None),
        dtype: type[np.complexfloating] = np.complex128,
    ) -> NDArray[np.complexfloating]:
        """Steering vectors ``(n_freqs, n_sel, n_mics)`` for several frequencies.

        The ``r_0`` phase term is left out: it is common to all microphones and cancels in
        ``h^H C h``. For evenly spaced frequencies (FFT bins) each phase factor is the previous
        one times a constant step (one complex multiply instead of an exponential).
        """
        f = np.asarray(frequencies_hz, dtype=np.float64).reshape(-1)
        rm = self.rm[points]
        amp = self.amplitude[points]
        out = np.empty((f.size, rm.shape[0], rm.shape[1]), dtype)
        w = -2j * np.pi / self.c
        even = f.size > 2 and np.allclose(np.diff(f), f[1] - f[0], rtol=1e-12, atol=0)
        if not even:
            for i, fi in enumerate(f):
                out[i] = amp * np.exp(w * fi * rm)
            return out
        out[0] = amp * np.exp(w * f[0] * rm)
        step = np.exp(w * (f[1] - f[0]) * rm).astype(dtype)
        for i in range(1, f.size):
            np.multiply(out[i - 1], step, out=out[i])
        return out

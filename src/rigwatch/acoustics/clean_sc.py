"""CLEAN-SC deconvolution (Sijtsma 2007).

P. Sijtsma, "CLEAN based on spatial source coherence", International Journal of Aeroacoustics
6(4), 357-374, 2007. Per frequency bin, starting from the conventional map ``b`` (diagonal
removed, not clipped) and the CSM ``C``:

1. take the map's maximum ``b_max`` at point ``x_max`` with steering vector ``w``
   (scaled by ``sqrt(N / (N - 1))`` when the diagonal is removed);
2. add ``damp * b_max`` to the clean map at ``x_max``;
3. find the coherent source component ``g`` with ``b_max g g^H`` explaining the part of ``C``
   coherent with ``x_max``: ``g = (D w / b_max + |g|^2 w) / sqrt(1 + |w|^2 . |g|^2)``,
   ``D = C - diag C``, by fixed-point iteration (20 steps, from ``g = w``; Sijtsma eq. 20);
4. subtract ``damp`` times the component from ``C`` and its conventional map from ``b``;
5. stop after ``n_iter`` steps (default ``2 N``), or when the maximum is larger than
   ``stopn`` steps before (the step that detects this is still counted, as Acoular).

The loop factor ``damp`` (default 0.6), ``n_iter`` and ``stopn`` (default 3) and the order of
the steps are those of Acoular's ``BeamformerCleansc``, so clean maps compare with it.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from rigwatch.acoustics.beamform import beamform_bins
from rigwatch.acoustics.steering import Steering
from rigwatch.errors import AcousticsError

__all__ = ["clean_sc_bins"]


def clean_sc_bins(
    csm: NDArray[np.complexfloating],
    frequencies_hz: NDArray[np.float64],
    steering: Steering,
    *,
    damp: float = 0.6,
    n_iter: int = 0,
    stopn: int = 3,
    remove_diagonal: bool = True,
    sum_bins: bool = False,
) -> NDArray[np.float64]:
    """CLEAN-SC maps (Pa^2) per bin ``(n_bins, n_points)``, or summed over bins ``(n_points,)``.

    Args:
        csm: ``(n_bins, n_mics, n_mics)``; computed in complex128.
        frequencies_hz: ``(n_bins,)``.
        steering: steering vectors of the focus points.
        damp: loop factor in ``(0, 1]``.
        n_iter: maximum iterations per bin; 0 means ``2 * n_mics``.
        stopn: stop when the maximum exceeds the one ``stopn`` iterations before.
        remove_diagonal: as in :func:`rigwatch.acoustics.beamform.beamform_bins`.
        sum_bins: sum the clean maps over bins.

    Raises:
        AcousticsError: ``damp`` outside ``(0, 1]`` or negative ``n_iter``/``stopn``.
        GeometryError: CSM size does not match the steering.
    """
    if not 0 < damp <= 1 or n_iter < 0 or stopn < 0:
        raise AcousticsError(f"CLEAN-SC: damp {damp} must be in (0, 1], n_iter/stopn >= 0")
    c_all = np.asarray(csm).astype(np.complex128)
    freqs = np.asarray(frequencies_hz, dtype=np.float64).reshape(-1)
    maps = beamform_bins(
        c_all, freqs, steering, remove_diagonal=remove_diagonal, clip_negative=False
    )
    m = steering.n_mics
    norm = m / (m - 1) if remove_diagonal and m > 1 else 1.0
    n_steps = n_iter or 2 * m
    out = np.zeros((freqs.size, steering.n_points), np.float64)
    idx = np.arange(m)
    for k, f in enumerate(freqs):
        c = c_all[k].copy()
        b = maps[k].copy()
        h_all = steering.vectors_for_bins(np.array([f]))[0]  # (P, M), h = a exp(-jk r_m)
        h2 = np.abs(h_all) ** 2
        powers = np.zeros(n_steps)
        clean = out[k]
        for j in range(n_steps):
            xi = int(np.argmax(b))
            powers[j] = b_max = float(b[xi])
            clean[xi] += damp * b_max
            if j > stopn and b_max > powers[j - stopn]:
                break
            w = h_all[xi] * np.sqrt(norm)
            d = c.copy()
            d[idx, idx] = 0
            d1 = (d @ w) / b_max
            ww = np.abs(w) ** 2
            g = w.copy()
            for _ in range(20):
                gg = np.abs(g) ** 2
                g = (d1 + gg * w) / np.sqrt(1.0 + ww @ gg)
            # conventional map of the component b_max g g^H (same diagonal handling)
            hg = h_all.conj() @ g
            b1 = np.abs(hg) ** 2
            if remove_diagonal:
                b1 = b1 - h2 @ (np.abs(g) ** 2)
            b -= damp * norm * b_max * b1
            c -= damp * b_max * np.outer(g, g.conj())
    return out.sum(axis=0) if sum_bins else out

"""MUSIC: today's ball-mill heatmap, against a plain reimplementation of today's algorithm."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from rigwatch.acoustics.bands import Band
from rigwatch.acoustics.geometry import CylinderGrid, MicArray
from rigwatch.acoustics.music import music_map, music_pseudo_spectrum, seed_music_map
from rigwatch.acoustics.scene import propagate_free_field, white_noise
from rigwatch.errors import AcousticsError

FS = 48000.0
C = 343.0


def _todays_heatmap(
    data: np.ndarray, positions: np.ndarray, points: np.ndarray, shape: tuple[int, int]
) -> np.ndarray:
    """Today's algorithm, written plainly: band-pass, 15 bands, 2 sources, loops."""
    b, a = scipy.signal.butter(5, [1000, 7000], btype="bandpass", fs=FS)
    y = scipy.signal.filtfilt(b, a, data, axis=0)
    bs, hop = 1024, 512
    win = np.hanning(bs)
    freqs = np.fft.rfftfreq(bs, 1 / FS)
    n_mics = data.shape[1]
    total = np.zeros(points.shape[0])
    for band in range(15):
        lo, hi = 1000 + 400 * band, 1400 + 400 * band
        r = np.zeros((n_mics, n_mics), complex)
        n_blocks = 0
        for start in range(0, y.shape[0] - bs + 1, hop):
            spec = np.fft.rfft(y[start : start + bs] * win[:, None], axis=0)
            for k in range(freqs.size):
                if lo <= freqs[k] < hi:
                    r += np.outer(spec[k], spec[k].conj())
            n_blocks += 1
        r *= 2.0 / (bs * (win @ win) * n_blocks)
        _, vecs = np.linalg.eigh(r)
        noise = vecs[:, : n_mics - 2]
        f = (lo + hi) / 2
        p = np.zeros(points.shape[0])
        for i, pt in enumerate(points):
            dist = np.linalg.norm(positions - pt, axis=1)
            steer = np.exp(-2j * np.pi * f * dist / C)
            p[i] = 1.0 / np.sum(np.abs(noise.conj().T @ steer) ** 2)
        total += p / p.max()
    total = (total - total.min()) / (total.max() - total.min())
    return total.reshape(shape)


def _pipe_scene(seed: int = 0) -> tuple[np.ndarray, MicArray, CylinderGrid, list[int]]:
    mics = MicArray.seed_ball_mill()
    grid = CylinderGrid()
    idx = [1 * 50 + 12, 3 * 50 + 40]
    sig = white_noise(12000, 2, seed=seed) * [1.0, 0.8]
    p = propagate_free_field(sig, grid.points_m[idx], mics.positions_m, FS, C)
    p += 0.01 * np.random.default_rng(seed).standard_normal(p.shape)
    return p, mics, grid, idx


def test_seed_music_equals_todays_algorithm() -> None:
    p, mics, grid, _ = _pipe_scene()
    ours = seed_music_map(p, FS, mics, grid, C)
    assert ours.quantity == "pseudo-spectrum" and ours.shape == (5, 50)
    ref = _todays_heatmap(p, mics.positions_m, grid.points_m, grid.shape)
    np.testing.assert_allclose(ours.values, ref, rtol=0, atol=1e-6)
    assert ours.values.min() == 0.0 and ours.values.max() == pytest.approx(1.0)


def test_seed_music_channel_mapping() -> None:
    """The same heatmap when the microphones are wired to other station channels."""
    p, mics, grid, _ = _pipe_scene(1)
    perm = [4, 0, 8, 2, 6, 1, 3, 7, 5]
    wired = mics.with_channels(perm)
    station = np.empty_like(p)
    station[:, perm] = p
    a = seed_music_map(p, FS, mics, grid, C).values
    b = seed_music_map(station, FS, wired, grid, C).values
    np.testing.assert_allclose(a, b, atol=1e-9)


def test_music_any_band_finds_source_along_pipe() -> None:
    p, mics, grid, idx = _pipe_scene(2)
    m = music_map(p, FS, mics, grid, [Band(2000, 3000), Band(3000, 4000)], C)
    along = np.argsort(m.values.max(axis=0))[::-1]
    cols = sorted(int(np.unravel_index(i, grid.shape)[1]) for i in idx)
    assert min(abs(int(along[0]) - c) for c in cols) <= 1
    with pytest.raises(ValueError, match="no sound pressure level"):
        m.spl_db()


def test_music_bad_subspace() -> None:
    with pytest.raises(AcousticsError, match="n_sources"):
        music_pseudo_spectrum(np.eye(3, dtype=complex), np.ones((2, 3), complex), 3)

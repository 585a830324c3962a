"""Resonance position of intensity profiles, many rows at once.

Every function takes ``rows``: a 2-D ``float64`` array ``(n_rows, width)``, one intensity
profile along x per row, positions in pixels from 0 (first column) to ``width - 1``, and
returns one value (or one parameter vector) per row; ``NaN`` where a row has no answer.

Line shapes (today's analysis):

- Gaussian: ``f(x) = a exp(-(x - mu)^2 / (2 sigma^2)) + offset``
- Fano (U. Fano, Phys. Rev. 124 (1961) 1866, in the form used for guided-mode resonances):
  ``f(x) = A (q gamma + (x - x_r))^2 / (gamma^2 + (x - x_r)^2) + offset`` with asymmetry ``q``,
  resonance ``x_r`` and half-width ``gamma``; its maximum lies at ``x_r + gamma / q``.

Fits are least squares by Levenberg-Marquardt (K. Levenberg 1944; D. W. Marquardt 1963) with
analytic Jacobians, iterated on all rows together: each iteration solves one small damped
normal-equation system per row (batched ``numpy.linalg.solve``) and only rows not yet
converged take part. The starting points are given by :func:`gaussian_start` and
:func:`fano_start`.

The Fano shape is fitted in the equivalent form ``f = offset + h (gamma + s d)^2 /
(gamma^2 + d^2)`` with ``s = 1 / q`` and ``h = A q^2`` (``d = x - x_r``), then reported as
``A, q, x_r, gamma, offset``. Both forms have the same minima, but a symmetric (Lorentzian or
Gaussian-like) line is the limit ``q -> infinity`` of the first, where its parameters run away
and the fit never settles, while it is the ordinary point ``s = 0`` of the second.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

log = logging.getLogger(__name__)

GAUSS_FWHM = 2.0 * np.sqrt(2.0 * np.log(2.0))
"""Full width at half maximum of a Gaussian in units of sigma (2.3548)."""

CENTRE_SIGMAS = 3.0
"""The centroid uses the samples above ``mean + CENTRE_SIGMAS * std`` of the row."""

MAX_ITERATIONS = 100
REL_TOL = 1e-8
CHUNK_ROWS = 1024
"""Rows iterated together (their temporaries stay in the CPU caches)."""

ModelOut = tuple[np.ndarray, np.ndarray | None]
ModelJac = Callable[[np.ndarray, np.ndarray, bool], ModelOut]


def max_intensity(rows: np.ndarray) -> np.ndarray:
    """Index of each row's maximum (first one on ties), as ``float64``."""
    return np.argmax(rows, axis=1).astype(np.float64)


def mean_std(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population standard deviation of each row (two-pass, as ``numpy.std``)."""
    mean = rows.mean(axis=1)
    dev = rows - mean[:, None]
    return mean, np.sqrt(np.einsum("nw,nw->n", dev, dev) / rows.shape[1])


def centroid(rows: np.ndarray, stats: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Intensity-weighted centroid of the samples above ``mean + 3 std`` of each row;
    ``NaN`` where no sample is above. ``stats``: the rows' :func:`mean_std` if known."""
    x = np.arange(rows.shape[1], dtype=np.float64)
    mean, std = stats if stats is not None else mean_std(rows)
    thr = mean + CENTRE_SIGMAS * std
    w = np.where(rows > thr[:, None], rows, 0.0)
    total = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (w @ x) / total
    out[~(total > 0)] = np.nan
    return out


def _half_max_count(rows: np.ndarray, base: np.ndarray) -> np.ndarray:
    top = rows.max(axis=1)
    return (rows > ((top + base) / 2.0)[:, None]).sum(axis=1).astype(np.float64)


def gaussian_start(rows: np.ndarray) -> np.ndarray:
    """Starting point ``(a, mu, sigma, offset)`` per row.

    ``offset = min``, ``a = max - min``; ``mu`` and ``sigma`` from the parabola through the
    logarithms of ``row - min`` at the maximum and its two neighbours (exact for a noise-free
    Gaussian on a zero baseline): with ``l-, l0, l+`` those logarithms and
    ``c = l- - 2 l0 + l+ < 0``, ``mu = argmax + (l- - l+) / (2 c)`` and ``sigma^2 = -1 / c``.
    Where that is undefined (maximum on the edge, ``c >= 0``, a neighbour at the minimum) or
    implausible (``|mu - argmax| > 1``, ``sigma`` outside ``[0.5, width]``): ``mu = argmax``,
    ``sigma = (samples above half maximum) / 2.3548``, at least 0.5.
    """
    width = rows.shape[1]
    lo, hi = rows.min(axis=1), rows.max(axis=1)
    peak = np.argmax(rows, axis=1)
    mu = peak.astype(np.float64)
    sigma = np.maximum(_half_max_count(rows, lo) / GAUSS_FWHM, 0.5)
    inner = (peak > 0) & (peak < width - 1)
    r = np.flatnonzero(inner)
    if r.size:
        y = rows[r[:, None], peak[r, None] + np.arange(-1, 2)[None, :]] - lo[r, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            ly = np.log(y)
            c = ly[:, 0] - 2.0 * ly[:, 1] + ly[:, 2]
            delta = (ly[:, 0] - ly[:, 2]) / (2.0 * c)
            s_fit = np.sqrt(-1.0 / c)
        ok = np.isfinite(delta) & np.isfinite(s_fit) & (c < 0) & (np.abs(delta) <= 1.0)
        ok &= (s_fit >= 0.5) & (s_fit <= width)
        mu[r[ok]] += delta[ok]
        sigma[r[ok]] = s_fit[ok]
    return np.column_stack([hi - lo, mu, sigma, lo])


def fano_start(rows: np.ndarray) -> np.ndarray:
    """Starting point ``(A, q, x_r, gamma, offset)`` per row.

    ``q = +3`` when the row's minimum lies left of its maximum, else ``-3``; the baseline
    ``b`` is the row's median, so ``A = (max - b) / q^2``, ``offset = b - A``;
    ``gamma = (samples above half maximum over b) / 2`` (at least 0.5) and
    ``x_r = argmax - gamma / q``.
    """
    base = np.median(rows, axis=1)
    top = rows.max(axis=1)
    peak = max_intensity(rows)
    q = np.where(np.argmin(rows, axis=1) < peak, 3.0, -3.0)
    amp = (top - base) / q**2
    gamma = np.maximum(_half_max_count(rows, base) / 2.0, 0.5)
    return np.column_stack([amp, q, peak - gamma / q, gamma, base - amp])


def gaussian_model(x: np.ndarray, p: np.ndarray, jac: bool = True) -> ModelOut:
    """Values ``(n, width)`` and, with ``jac``, the Jacobian ``(n, 4, width)`` of the Gaussian
    at ``p (n, 4)``."""
    a, mu, s, off = (p[:, i : i + 1] for i in range(4))
    z = x[None, :] - mu
    z /= s
    g = z * z
    g *= -0.5
    np.exp(g, out=g)
    if not jac:
        return a * g + off, None
    out = np.empty((p.shape[0], 4, x.size))
    out[:, 0] = g
    j_mu = out[:, 1]
    np.multiply(g, a / s, out=j_mu)
    j_mu *= z
    np.multiply(j_mu, z, out=out[:, 2])
    out[:, 3] = 1.0
    values = a * g
    values += off
    return values, out


def fano_model(x: np.ndarray, p: np.ndarray, jac: bool = True) -> ModelOut:
    """Values ``(n, width)`` and, with ``jac``, the Jacobian ``(n, 5, width)`` of the Fano
    shape at ``p (n, 5)``."""
    amp, q, res, gam, off = (p[:, i : i + 1] for i in range(5))
    d = x[None, :] - res
    u = q * gam + d
    den = gam * gam + d * d
    f = u * u / den
    values = amp * f + off
    if not jac:
        return values, None
    out = np.empty((p.shape[0], 5, x.size))
    out[:, 0] = f
    two_amp_u_over_den = 2.0 * amp * u / den
    np.multiply(two_amp_u_over_den, gam, out=out[:, 1])
    # d f / d res = -(2u den - 2d u^2) / den^2 = -(2u/den) (1 - d u / den)
    np.multiply(-two_amp_u_over_den, 1.0 - d * u / den, out=out[:, 2])
    # d f / d gamma = (2u/den) (q - gamma u / den)
    np.multiply(two_amp_u_over_den, q - gam * u / den, out=out[:, 3])
    out[:, 4] = 1.0
    return values, out


def fano_s_model(x: np.ndarray, p: np.ndarray, jac: bool = True) -> ModelOut:
    """Values ``(n, width)`` and, with ``jac``, the Jacobian ``(n, 5, width)`` of the Fano
    shape in the form ``offset + h (gamma + s d)^2 / (gamma^2 + d^2)`` at
    ``p = (h, s, x_r, gamma, offset)`` ``(n, 5)``."""
    h, sa, res, gam, off = (p[:, i : i + 1] for i in range(5))
    d = x[None, :] - res
    u = sa * d
    u += gam
    den = d * d
    den += gam * gam
    v = np.divide(u, den, out=den)  # u / den
    out = np.empty((p.shape[0], 5, x.size)) if jac else None
    f = np.multiply(u, v, out=out[:, 0] if out is not None else u)  # u^2 / den
    values = h * f
    values += off
    if out is None:
        return values, None
    t = np.multiply(v, 2.0 * h, out=u)  # 2 h u / den (u is not needed any more)
    np.multiply(t, d, out=out[:, 1])  # d/ds = 2 h u d / den
    # d/dx_r = -2 h u (s den - u d) / den^2 = t (d u / den - s)
    w = d * v
    w -= sa
    np.multiply(t, w, out=out[:, 2])
    # d/dgamma = 2 h u (den - u gamma) / den^2 = t (1 - gamma u / den)
    np.multiply(v, gam, out=w)
    np.subtract(1.0, w, out=w)
    np.multiply(t, w, out=out[:, 3])
    out[:, 4] = 1.0
    return values, out


def fano_to_s_form(p: np.ndarray) -> np.ndarray:
    """``(A, q, x_r, gamma, offset)`` to ``(h = A q^2, s = 1/q, x_r, gamma, offset)``."""
    out = p.astype(np.float64).copy()
    out[:, 0] = p[:, 0] * p[:, 1] ** 2
    with np.errstate(divide="ignore"):
        out[:, 1] = 1.0 / p[:, 1]
    return out


def fano_from_s_form(p: np.ndarray) -> np.ndarray:
    """Inverse of :func:`fano_to_s_form`; ``s = 0`` (a symmetric line) gives ``q = inf``."""
    out = p.copy()
    out[:, 0] = p[:, 0] * p[:, 1] ** 2
    with np.errstate(divide="ignore"):
        out[:, 1] = 1.0 / p[:, 1]
    return out


def levenberg_marquardt(
    model: ModelJac,
    x: np.ndarray,
    rows: np.ndarray,
    start: np.ndarray,
    max_step: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares fit of ``model`` to every row, all rows iterated together.

    Args:
        model: ``(x, p (n, k), jac) -> (values (n, width), jacobian (n, k, width) or None)``.
        x: ``(width,)`` sample positions.
        rows: ``(n, width)`` data.
        start: ``(n, k)`` starting parameters.
        max_step: ``(k,)`` largest change of each parameter in one step (``inf``: free); a
            longer step is shortened along its direction (bounded steps keep a position or a
            width from jumping off the row while the damping adapts).

    Returns:
        ``(params (n, k), rms_residual (n,))``; rows whose fit diverged (non-finite) are NaN.
        A row stops when a step changes its cost or its parameters by less than 1e-8
        relative, or when the next (Gauss-Newton-like, little damped) step is predicted by
        the linearised model to lower the cost by less than that (the step is taken without
        a further evaluation); a row still moving after :data:`MAX_ITERATIONS` is NaN (fit
        failed).
    """
    p = start.astype(np.float64).copy()
    n = p.shape[0]
    cost = np.full(n, np.nan)
    for lo in range(0, n, CHUNK_ROWS):
        sl = slice(lo, min(lo + CHUNK_ROWS, n))
        p[sl], cost[sl] = _lm_chunk(model, x, rows[sl], p[sl], max_step)
    width = rows.shape[1]
    rms = np.sqrt(cost / width)
    bad = ~np.all(np.isfinite(p), axis=1) | ~np.isfinite(rms)
    p[bad] = np.nan
    rms[bad] = np.nan
    return p, rms


def _normal_equations(
    model: ModelJac, x: np.ndarray, rows: np.ndarray, p: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cost ``(n,)``, ``J^T J`` ``(n, k, k)`` and ``J^T r`` ``(n, k)`` at ``p``."""
    values, jac = model(x, p, True)
    assert jac is not None
    resid = rows - values
    cost = np.einsum("nw,nw->n", resid, resid)
    jtj = np.einsum("nkw,njw->nkj", jac, jac)
    jtr = np.einsum("nkw,nw->nk", jac, resid)
    return cost, jtj, jtr


def _lm_chunk(
    model: ModelJac,
    x: np.ndarray,
    rows: np.ndarray,
    p: np.ndarray,
    max_step: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Levenberg-Marquardt on one chunk of rows; the normal equations of the last accepted
    point are kept, so each iteration evaluates the model (with Jacobian) once."""
    n, k = p.shape
    cost, jtj, jtr = _normal_equations(model, x, rows, p)
    lam = np.full(n, 1e-3)
    active = np.flatnonzero(np.isfinite(cost) & np.all(np.isfinite(jtj), axis=(1, 2)))
    diag = np.arange(k)
    for _ in range(MAX_ITERATIONS):
        if active.size == 0:
            break
        damped = jtj[active]  # a copy (fancy indexing)
        scale = damped[:, diag, diag]
        damped[:, diag, diag] += lam[active, None] * (
            scale + 1e-9 * scale.max(axis=1, keepdims=True)
        )
        step = _solve(damped, jtr[active])
        if max_step is not None:
            over = np.max(np.abs(step) / max_step, axis=1)
            long = over > 1.0
            step[long] /= over[long, None]
        pa = p[active]
        old_cost = cost[active]
        # converged already when the step is negligible or the linear model promises no
        # gain worth an evaluation: take the step, keep the cost (it changes < REL_TOL)
        jtr_a = jtr[active]
        predicted = 2.0 * np.einsum("nk,nk->n", step, jtr_a) - np.einsum(
            "nk,nkj,nj->n", step, jtj[active], step
        )
        small_step = np.all(np.abs(step) <= REL_TOL * (np.abs(pa) + REL_TOL), axis=1)
        settled = small_step | ((lam[active] <= 1e-2) & (predicted <= REL_TOL * old_cost))
        if settled.any():
            p[active[settled]] = pa[settled] + step[settled]
            keep = ~settled
            active, step, pa, old_cost = active[keep], step[keep], pa[keep], old_cost[keep]
            if active.size == 0:
                break
        trial = pa + step
        sub = rows if active.size == n else rows[active]
        new_cost, new_jtj, new_jtr = _normal_equations(model, x, sub, trial)
        better = (
            np.isfinite(new_cost)
            & (new_cost <= old_cost)
            & np.all(np.isfinite(new_jtj), axis=(1, 2))
        )
        small_gain = better & (old_cost - new_cost <= REL_TOL * old_cost)
        idx = active[better]
        p[idx] = trial[better]
        cost[idx] = new_cost[better]
        jtj[idx] = new_jtj[better]
        jtr[idx] = new_jtr[better]
        lam[idx] = np.maximum(lam[idx] / 3.0, 1e-12)
        lam[active[~better]] *= 4.0
        done = small_gain | (lam[active] > 1e12)
        active = active[~done]
    if active.size:  # not converged: no answer, as a failed fit
        log.debug("%d of %d fits did not converge in %d iterations", active.size, n, MAX_ITERATIONS)
        p[active] = np.nan
        cost[active] = np.nan
    return p, cost


def _solve(matrices: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve each ``(k, k)`` system; if one is singular, all by pseudo-inverse."""
    try:
        return np.linalg.solve(matrices, rhs[:, :, None])[:, :, 0]
    except np.linalg.LinAlgError:
        return (np.linalg.pinv(matrices) @ rhs[:, :, None])[:, :, 0]


def fit_gaussian(rows: np.ndarray) -> np.ndarray:
    """Gaussian fits: ``(n, 5)`` columns amplitude, mu, sigma (> 0), offset, error (RMS
    residual, intensity units)."""
    width = rows.shape[1]
    x = np.arange(width, dtype=np.float64)
    limit = np.array([np.inf, width / 4.0, width / 4.0, np.inf])
    p, rms = levenberg_marquardt(gaussian_model, x, rows, gaussian_start(rows), limit)
    p[:, 2] = np.abs(p[:, 2])
    return np.column_stack([p, rms])


def fit_fano(rows: np.ndarray) -> np.ndarray:
    """Fano fits: ``(n, 6)`` columns amplitude, asymmetry q, resonance x_r, gamma (> 0),
    offset, error (RMS residual). ``(q, gamma)`` and ``(-q, -gamma)`` give the same shape; the
    result is reported with ``gamma > 0``. Fitted in the ``s = 1/q`` form (module docstring)
    from :func:`fano_start`; a symmetric line gives a large ``|q|`` whose value (and sign) the
    noise decides, with a well-defined resonance, gamma and peak height."""
    width = rows.shape[1]
    x = np.arange(width, dtype=np.float64)
    limit = np.array([np.inf, np.inf, width / 4.0, width / 4.0, np.inf])
    start = fano_to_s_form(fano_start(rows))
    p_s, rms = levenberg_marquardt(fano_s_model, x, rows, start, limit)
    p = fano_from_s_form(p_s)
    neg = p[:, 3] < 0
    p[neg, 1] *= -1.0
    p[neg, 3] *= -1.0
    return np.column_stack([p, rms])

"""Array arithmetic of the forecast: forward fill, rolling medians and slopes, row quantiles, fits.

Plain numpy over float arrays, nothing of op-geth or the L2 in it; ``forecasting`` gives it meaning.
"""

from __future__ import annotations

import statistics

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]


def filled(x: Array) -> Array:
    """``x`` with each gap carrying the value before it (the first value before the first)."""
    seen = np.flatnonzero(~np.isnan(x))
    if not len(seen):
        return np.zeros_like(x)
    last = np.maximum.accumulate(np.where(np.isnan(x), -1, np.arange(len(x))))
    return np.where(last >= 0, x[np.maximum(last, 0)], x[seen[0]])


def polls(t: Array, seconds: float) -> int:
    """``seconds`` in polls of this history (its median spacing)."""
    spacing = float(np.median(np.diff(t))) if len(t) > 1 else seconds
    # A guard against a zero spacing (two points at one instant), not a tolerance.
    return max(1, round(seconds / max(spacing, 1e-9)))


def rolling_median(x: Array, k: int) -> Array:
    """The median of each value and the ``k - 1`` before it (fewer at the start)."""
    head = min(k - 1, len(x))
    out = np.empty_like(x)
    # The first values have fewer than ``k`` before them: a few scalar medians. The rest in one call
    # (nanmedian over padded windows goes through masked arrays and costs ~10x more).
    for i in range(head):
        out[i] = statistics.median(x[: i + 1].tolist())
    if len(x) >= k:
        out[k - 1 :] = np.median(np.lib.stride_tricks.sliding_window_view(x, k), axis=1)
    return out


def row_quantiles(x: Array, q: float) -> Array:
    """``np.nanquantile(x, q, axis=1)`` (linear interpolation) without a per-row Python loop."""
    ordered = np.sort(x, axis=1)  # NaN sorts last
    n = np.count_nonzero(~np.isnan(x), axis=1)
    position = q * np.maximum(n - 1, 0)
    below = np.floor(position).astype(np.intp)
    above = np.minimum(below + 1, np.maximum(n - 1, 0))
    rows = np.arange(len(x))
    lo, hi = ordered[rows, below], ordered[rows, above]
    frac = position - below
    return np.asarray(np.where(frac >= 0.5, hi - (hi - lo) * (1 - frac), lo + (hi - lo) * frac))


def lagged(x: Array, k: int) -> Array:
    """``x`` shifted ``k`` polls later, the first value standing in before it."""
    return np.r_[np.full(min(k, len(x)), x[0]), x[:-k]] if len(x) > k else np.full_like(x, x[0])


def rolling_slope(x: Array, k: int) -> Array:
    """Least-squares slope per poll over each value and the ``k - 1`` before it (0 before ``k``)."""
    out = np.zeros_like(x)
    if len(x) < k:
        return out
    steps = np.arange(k, dtype=np.float64) - (k - 1) / 2
    weights = steps / float(np.sum(steps**2))
    out[k - 1 :] = np.lib.stride_tricks.sliding_window_view(x, k) @ weights
    return out


def ridge_fit(x: Array, y: Array, now: Array, *, ridge: float) -> tuple[Array, float]:
    """Fitted values on ``x`` and the prediction at ``now`` of a ridge fit without intercept.

    No intercept: a past step change would otherwise be learned as a standing drift. Columns are
    scaled to unit root-mean-square so one penalty suits signals of any unit. ``now`` is clipped to
    the range the fit has seen: a jump's slope, never seen before, is not extrapolated.
    """
    scale = np.sqrt(np.mean(x**2, axis=0))
    # A column that never moved carries nothing: scaled to zero rather than divided by zero.
    scale[scale < 1e-9] = np.inf
    z = x / scale
    gram = z.T @ z + ridge * len(z) * np.eye(z.shape[1])
    beta = np.linalg.solve(gram, z.T @ y)
    seen = np.clip(now, x.min(axis=0), x.max(axis=0))
    return np.asarray(z @ beta, dtype=np.float64), float((seen / scale) @ beta)


def ols_slope(t: Array, y: Array) -> float:
    """The least-squares slope of ``y`` over ``t`` (0 when ``t`` does not move)."""
    dt = t - t.mean()
    denominator = float(dt @ dt)
    return float(dt @ (y - y.mean())) / denominator if denominator > 0 else 0.0

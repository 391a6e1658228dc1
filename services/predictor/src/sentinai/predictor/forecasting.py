"""The forecast: op-geth's CPU *demand* over the next horizon, with calibrated bounds (``StatForecaster``).

Used CPU is capped by the allocation: a saturated op-geth at 100 % of its request needs *more* than it
uses, and the L2 tells how much more (blocks stretch, the pool backs up, blocks run full). So the
forecaster works on estimated *demand*: used cores where op-geth has room, used cores scaled by the
block stretch where it is pinned at its request.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from sentinai.common.decisions import Trend
from sentinai.predictor.model import SATURATED_SHARE, SATURATED_SHARE_ALONE, Forecast, Point
from sentinai.predictor.numerics import (
    Array,
    filled,
    lagged,
    ols_slope,
    polls,
    ridge_fit,
    rolling_median,
    rolling_slope,
    row_quantiles,
)

# A pinned op-geth needs at least this much more than it uses, even before the chain shows it.
MIN_PRESSURE: Final = 1.1
MAX_PRESSURE: Final = 2.0
# On a chain that reports its block interval, a saturated op-geth is short of CPU only once its
# blocks run this much late (the "block interval" key factor's threshold); before that it keeps up.
STRETCHED: Final = 1.25
# Block intervals are smoothed over this span (ten 2-s polls live; one sample at one-minute polls).
INTERVAL_S: Final = 20.0
# The recent points the tx pool growth key factor is read from.
SIGNAL_POINTS: Final = 30
# A trend must move demand by this share of its level over the horizon to be called rising/falling.
TREND_SHARE: Final = 0.10
MIN_LEVEL_CORES: Final = 0.1
MIN_SPREAD_CORES: Final = 0.02


@dataclass(frozen=True, slots=True)
class _Series:
    """The history as arrays over the points that measured CPU, oldest first."""

    t: Array
    demand: Array
    pool: Array | None  # forward-filled; None when the history carries no such signal
    gas: Array | None
    stretch: Array | None  # block interval over the healthy one
    nominal_interval: float
    pinned: npt.NDArray[np.bool_]  # op-geth at its request: demand is at least the estimate
    blocks: bool  # the chain reports its block interval, so ``pinned`` also needs late blocks


@dataclass(frozen=True, slots=True)
class StatForecaster:
    """Level + learned correction on estimated demand, bounded by quantiles of its own errors.

    * level: median of the last ``level_points`` demand values (reacts within two polls, ignores one
      outlier);
    * correction: a ridge regression, refitted on every call over the history, of the demand change
      ``horizon_s`` ahead on what precedes it on an L2: the recent demand slope, tx pool growth, gas
      used ratio and block-interval stretch (a signal the history lacks is left out);
    * bounds: the ``quantile`` of the regression's residuals over the history is the published upper
      bound; the ``size_quantile`` of the errors against the *highest* demand within the horizon is
      the ceiling the vCPU step is sized on (a step must hold every minute until it can change);
    * coverage: the published bound's quantile taken from the older residuals only and checked on the
      newest ``check_points``, so the confidence is how often the bound held, measured out of sample.
    """

    name: str = "calibrated-v2"
    block_time_s: float = 2.0
    level_points: int = 3
    slope_points: int = 10
    quantile: float = 0.90
    size_quantile: float = 0.90
    check_points: int = 30
    min_rows: int = 20
    neighbours: float = 0.15
    ridge: float = 0.3
    min_points: int = 10
    # None: saturated means short of CPU, whatever the block interval says.
    stretched: float | None = STRETCHED

    def forecast(self, history: Sequence[Point], *, horizon_s: float) -> Forecast:
        series = self.series(history)
        t, d = series.t, series.demand
        horizon = polls(t, horizon_s)
        level = rolling_median(d, self.level_points)
        # A pinned sample is no outlier to filter out: demand is at least what it shows.
        level = np.where(series.pinned, np.maximum(level, d), level)
        slope, trend = _trend(t, d, horizon_s=horizon_s, level=float(level[-1]))
        rows = len(d) - horizon
        if rows < self.min_rows:
            spread = _one_step_spread(d)
            upper = float(level[-1]) + spread
            return Forecast(
                point_cores=float(level[-1]),
                upper_cores=upper,
                trend=trend,
                slope_per_min=slope * 60.0,
                key_factors=self._factors(history, series, trend=trend, slope=slope),
                coverage=None,
                ceiling_cores=upper,
                level_cores=float(level[-1]),
                short=bool(series.pinned[-1]) if series.blocks else None,
            )
        features = self._features(series, horizon=horizon)
        target = d[horizon:] - level[:rows]
        fitted, now = ridge_fit(features[:rows], target, features[-1], ridge=self.ridge)
        ahead = np.lib.stride_tricks.sliding_window_view(d[1:], horizon).max(axis=1)
        # Errors depend on the level: a load that idles at 1.7 cores and sometimes runs at 3.5 jumps
        # +1.8 from the low level, never from the high one. The bounds come from the rows whose
        # level was nearest today's (in time order, so the coverage check stays out of sample).
        near = self._nearest(level[:rows], float(level[-1]))
        # The correction earns its place only where its bound is tighter than carrying the level
        # forward (on a load that flips between two levels it learns a pull to the middle that fits
        # neither). Both bounds are calibrated the same way; the sharper one is kept.
        corrected = np.quantile((target - fitted)[near], self.quantile)
        if corrected >= np.quantile(target[near], self.quantile):
            fitted, now = np.zeros(rows), 0.0
        residuals = (target - fitted)[near]
        peak_errors = (ahead - (level[:rows] + fitted))[near]
        covered, evaluated = self._coverage(level[:rows], target - fitted)
        point = max(0.0, float(level[-1]) + now)
        upper = point + max(MIN_SPREAD_CORES, float(np.quantile(residuals, self.quantile)))
        # No credit for a decline in the ceiling: scaling down on a forecast fall starves the next peak.
        ceiling = max(upper, float(level[-1]), point + float(np.quantile(peak_errors, self.size_quantile)))
        if series.pinned[-1]:
            # Pinned, its demand is censored: assume the rise of the last horizon goes on for one
            # more, plus the least a pinned op-geth lacks. One move to the step that holds it until
            # the next change can land, instead of one rung now and the next after the cooldown.
            rise = max(0.0, float(d[-1] - d[-horizon - 1 :].min()))
            ceiling = max(ceiling, (float(d[-1]) + rise) * MIN_PRESSURE)
        return Forecast(
            point_cores=point,
            upper_cores=upper,
            trend=trend,
            slope_per_min=slope * 60.0,
            key_factors=self._factors(history, series, trend=trend, slope=slope),
            coverage=covered / evaluated if evaluated else None,
            evaluated=evaluated,
            ceiling_cores=ceiling,
            level_cores=float(level[-1]),
            short=bool(series.pinned[-1]) if series.blocks else None,
        )

    def demand(self, history: Sequence[Point]) -> Array:
        """Estimated cores op-geth wanted at each point that measured its CPU."""
        return self.series(history).demand

    def series(self, history: Sequence[Point]) -> _Series:
        t, cpu, request, pool, gas, interval = _columns(history)
        measured = ~np.isnan(cpu)
        reported = np.flatnonzero(~np.isnan(interval))
        blocks = bool(len(reported)) and self.stretched is not None
        saturated = measured & (request > 0) & (cpu >= _pinned_share(blocks) * np.nan_to_num(request))
        relaxed = interval[measured & ~saturated & ~np.isnan(interval)]
        nominal = float(np.median(relaxed)) if len(relaxed) >= 5 else self.block_time_s
        # A median of the intervals reported over the last ``INTERVAL_S``: one interval is quantised to
        # the collector's poll period (4 s or 6 s polled every 2 s), and a long one is reported on
        # every poll it spans. A span, not a count: ten one-minute samples would hide a saturation
        # for ten minutes.
        stretch: Array | None = None
        pressure = np.full(len(history), MIN_PRESSURE)
        short = saturated
        if len(reported):
            recent = rolling_median(interval[reported], polls(t[reported], INTERVAL_S))
            last = np.searchsorted(reported, np.arange(len(history)), side="right") - 1
            at_point = np.where(last >= 0, recent[np.maximum(last, 0)], nominal) / nominal
            # Block time grows faster than the overload (queueing), so the square root of the
            # stretch, not the stretch itself, estimates how far demand exceeds what it may use.
            pressure = np.clip(np.sqrt(at_point), MIN_PRESSURE, MAX_PRESSURE)
            stretch = at_point[measured]
            # At its request but with blocks on time, op-geth has what it needs (a pod bursts a few
            # percent past its request): demand is what it uses, and nothing says it needs more.
            if self.stretched is not None:
                short = saturated & (at_point >= self.stretched)
        demand = np.where(short, cpu * pressure, cpu)[measured]
        return _Series(
            t=t[measured],
            demand=demand,
            pool=_signal(pool, measured),
            gas=_signal(gas, measured),
            stretch=stretch,
            nominal_interval=nominal,
            pinned=short[measured],
            blocks=blocks,
        )

    def nominal_interval(self, history: Sequence[Point]) -> float:
        """The chain's healthy block interval: what it showed with CPU to spare, else the configured one."""
        return self.series(history).nominal_interval

    def _features(self, series: _Series, *, horizon: int) -> Array:
        """One row per point: how what moves before op-geth's CPU on an L2 has just moved.

        Changes, never levels: a level that stays put (a gas ratio of 0.3, a pool of 40) would act as
        an intercept and learn a past step as a standing drift.
        """
        k = self.slope_points
        columns = [rolling_slope(series.demand, k) * horizon]
        if series.pool is not None:
            log_pool = np.log1p(np.maximum(series.pool, 0.0))
            columns.append(log_pool - lagged(log_pool, k))
        for signal in (series.gas, series.stretch):
            if signal is not None:
                columns.append(signal - lagged(signal, k))
        return np.column_stack(columns)

    def _nearest(self, levels: Array, now: float) -> npt.NDArray[np.intp]:
        """Indices, in time order, of the rows whose level was near ``now``.

        Near: within ``neighbours`` of it (relative), when at least ``min_rows`` // 4 rows were;
        else the ``min_rows`` nearest.
        """
        close = np.flatnonzero(np.abs(levels - now) <= self.neighbours * max(now, MIN_LEVEL_CORES))
        if len(close) >= self.min_rows // 4:
            return close
        k = min(self.min_rows, len(levels))
        return np.sort(np.argpartition(np.abs(levels - now), k - 1)[:k])

    def _coverage(self, levels: Array, residuals: Array) -> tuple[int, int]:
        """(covered, checked): the newest residuals under the bound the older ones gave.

        Each checked row gets the bound the forecast would have given then: the quantile of the
        older residuals whose level was near its own (all older ones when too few were).
        """
        checked = min(self.check_points, len(residuals) - self.min_rows)
        if checked <= 0:
            return 0, 0
        old_levels, old = levels[:-checked], residuals[:-checked]
        new_levels, new = levels[-checked:], residuals[-checked:]
        width = self.neighbours * np.maximum(new_levels, MIN_LEVEL_CORES)
        close = np.abs(old_levels[None, :] - new_levels[:, None]) <= width[:, None]
        close[close.sum(axis=1) < self.min_rows // 4] = True
        bounds = row_quantiles(np.where(close, old[None, :], np.nan), self.quantile)
        return int(np.count_nonzero(new <= np.maximum(bounds, MIN_SPREAD_CORES))), checked

    def _factors(
        self, history: Sequence[Point], series: _Series, *, trend: Trend, slope: float
    ) -> tuple[str, ...]:
        last = next(p for p in reversed(history) if p.cpu_cores is not None)
        d = series.demand
        factors: list[str] = []
        if last.cpu_request and last.cpu_cores is not None:
            share = last.cpu_cores / last.cpu_request
            pinned = ""
            if _saturated(last, _pinned_share(series.blocks)):
                short = not series.blocks or bool(series.pinned[-1])
                pinned = (
                    " (saturated: it needs more than it gets)" if short else " (blocks on time: it keeps up)"
                )
            factors.append(f"CPU at {share:.0%} of its {last.cpu_request:g} vCPU request{pinned}")
        reported = [(p.t, p.block_interval) for p in history if p.block_interval is not None]
        times = np.array([t for t, _ in reported], dtype=np.float64)
        intervals = [interval for _, interval in reported][-polls(times, INTERVAL_S) :]
        nominal = series.nominal_interval
        if intervals and float(np.median(intervals)) >= 1.25 * nominal:
            interval = float(np.median(intervals))
            factors.append(
                f"Block interval {interval:.1f}s, {interval / nominal:.1f}x the {nominal:.2g}s norm"
            )
        pool = [(p.t, p.tx_pool) for p in history[-SIGNAL_POINTS:] if p.tx_pool is not None]
        if len(pool) >= 3:
            xs, ys = zip(*pool, strict=True)
            per_min = 60.0 * ols_slope(np.array(xs, dtype=np.float64), np.array(ys, dtype=np.float64))
            if abs(per_min) >= 10:
                factors.append(f"TxPool growth {per_min:+.0f}/min ({pool[-1][1]:.0f} pending)")
        gas = [p.gas_used_ratio for p in history[-5:] if p.gas_used_ratio is not None]
        if gas and float(np.mean(gas)) >= 0.9:
            factors.append(f"Gas used ratio {float(np.mean(gas)):.2f}: blocks are full")
        if trend != "stable":
            factors.append(f"Demand {trend} {60 * slope:+.3f} cores/min")
        span = _span(float(series.t[-1] - series.t[0]))
        factors.append(
            f"Demand {float(d.min()):.2f}-{float(d.max()):.2f} cores over {span} "
            f"(mean {float(d.mean()):.2f}, std {float(d.std()):.2f})"
        )
        return tuple(factors)


def _columns(history: Sequence[Point]) -> Array:
    """t, cpu, request, pool, gas, interval as the rows of one array (None as NaN), in one pass."""
    rows = [(p.t, p.cpu_cores, p.cpu_request, p.tx_pool, p.gas_used_ratio, p.block_interval) for p in history]
    return np.array(rows, dtype=np.float64).reshape(len(history), 6).T


def _signal(column: Array, measured: npt.NDArray[np.bool_]) -> Array | None:
    """An L2 signal at the measured points, gaps carried forward; None when the history has none."""
    if np.isnan(column).all():
        return None
    return filled(column)[measured]


def _trend(t: Array, d: Array, *, horizon_s: float, level: float) -> tuple[float, Trend]:
    """(slope per second, label) over the last ``horizon_s``; a jump is a new level, not a trend."""
    recent = t >= t[-1] - horizon_s
    tw, dw = t[recent], d[recent]
    slope = ols_slope(tw, dw)
    long_enough = float(tw[-1] - tw[0]) >= horizon_s / 2
    moves = abs(slope * horizon_s) >= TREND_SHARE * max(level, MIN_LEVEL_CORES)
    if not (long_enough and moves and _gradual(dw)):
        return slope, "stable"
    return slope, "rising" if slope > 0 else "falling"


def _one_step_spread(d: Array) -> float:
    """A one-sided 95 % band of the level's one-step errors, while too little history for more."""
    if len(d) < 4:
        return MIN_SPREAD_CORES
    errors = d[3:] - rolling_median(d, 3)[2:-1]
    scale = 1.4826 * float(np.median(np.abs(errors - np.median(errors))))
    return max(MIN_SPREAD_CORES, float(np.median(errors)) + 1.645 * scale)


def _gradual(y: Array) -> bool:
    """Whether the window's change is spread over it rather than made in one jump.

    The medians of the window's quarters must each move the same way by at least 15 % of the whole
    move: a ramp moves a third each time, a step moves in at most two of the three.
    """
    if len(y) < 8:
        return False
    medians = [float(np.median(part)) for part in np.array_split(y, 4)]
    total = medians[-1] - medians[0]
    return total != 0 and min((b - a) / total for a, b in itertools.pairwise(medians)) >= 0.15


def _span(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def _pinned_share(blocks: bool) -> float:
    """The share of its request at which op-geth reads as pinned: 95 % where the chain's block
    intervals can corroborate a starvation, the whole request where usage is all there is."""
    return SATURATED_SHARE if blocks else SATURATED_SHARE_ALONE


def _saturated(p: Point, share: float) -> bool:
    return bool(p.cpu_request) and p.cpu_cores is not None and p.cpu_cores >= share * (p.cpu_request or 0)

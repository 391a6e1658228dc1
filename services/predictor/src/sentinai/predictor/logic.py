"""The predictor's decision: op-geth CPU demand forecast → vCPU ladder step; no I/O, no clock.

Used CPU is capped by the allocation: a saturated op-geth at 100 % of its request needs *more* than it
uses, and the L2 tells how much more (blocks stretch, the pool backs up, blocks run full). So the
forecaster works on estimated *demand*: used cores where op-geth has room, used cores scaled by the
block stretch where it is pinned at its request.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Protocol

import numpy as np
import numpy.typing as npt
from scipy import stats  # type: ignore[import-untyped]

from sentinai.common import catalog
from sentinai.common.decisions import PredictionMade, Trend
from sentinai.common.events import MetricSample

Array = npt.NDArray[np.float64]

# At or above this share of its request op-geth is treated as pinned (the twin and real kubelets let
# a pod without a limit burst a few percent past its request, so "at 100 %" reads 95-110 %).
SATURATED_SHARE: Final = 0.95
# A pinned op-geth needs at least this much more than it uses, even before the chain shows it.
MIN_PRESSURE: Final = 1.1
MAX_PRESSURE: Final = 2.0
INTERVAL_POINTS: Final = 10
# A trend must move demand by this share of its level over the horizon to be called rising/falling.
TREND_SHARE: Final = 0.10
MIN_LEVEL_CORES: Final = 0.1
MIN_SPREAD_CORES: Final = 0.02
# Confidence is the measured coverage shrunk toward an uninformed 50 % by this many pseudo-checks.
PRIOR_COVERAGE: Final = 0.5
PRIOR_WEIGHT: Final = 5.0


@dataclass(frozen=True, slots=True)
class Point:
    """One observation of op-geth, merged from the rpc and k8s samples of a poll."""

    t: float  # epoch seconds
    cpu_cores: float | None  # used cores (k8s cpuCores)
    cpu_request: float | None  # allocated cores (k8s cpuRequestCores)
    tx_pool: float | None
    gas_used_ratio: float | None
    block_interval: float | None


@dataclass(frozen=True, slots=True)
class Forecast:
    point_cores: float
    upper_cores: float
    trend: Trend
    slope_per_min: float  # cores per minute
    key_factors: tuple[str, ...]
    coverage: float | None  # measured share of past actuals under the upper bound, at the horizon
    evaluated: int = 0  # how many past forecasts ``coverage`` was measured on


class Forecaster(Protocol):
    """The seam a benchmark swaps: history in, forecast out, deterministic for the same history."""

    @property
    def name(self) -> str: ...

    def forecast(self, history: Sequence[Point], *, horizon_s: float) -> Forecast: ...


def point_fields(sample: MetricSample) -> dict[str, float]:
    """The ``Point`` fields one op-geth sample carries (none when the target was down)."""
    if not sample.target_up:
        return {}
    names = {
        catalog.CPU_CORES: "cpu_cores",
        catalog.CPU_REQUEST_CORES: "cpu_request",
        catalog.TX_POOL_COUNT: "tx_pool",
        catalog.GAS_USED_RATIO: "gas_used_ratio",
        catalog.BLOCK_INTERVAL: "block_interval",
    }
    return {field: sample.metrics[metric] for metric, field in names.items() if metric in sample.metrics}


# ------------------------------------------------------------------------------------- forecasting


@dataclass(frozen=True, slots=True)
class _Fit:
    level: float
    point: float
    upper: float
    slope: float  # cores per second
    trend: Trend


@dataclass(frozen=True, slots=True)
class StatForecaster:
    """Robust level + Theil–Sen trend on estimated demand; the upper bound from one-step errors.

    * level: median of the last three demand values (reacts within two polls, ignores one outlier);
    * trend: Theil–Sen slope over the last ``horizon_s`` (at most ``fit_points``) with its 90 %
      interval; only a trend seen over half the horizon or more, whose interval excludes zero (over
      the whole window and its recent half) and that moves demand by ``TREND_SHARE`` is extrapolated;
    * spread: a robust 95 % band of the last ``error_points`` one-step errors of that level, plus the
      slope's uncertainty over the horizon when extrapolating;
    * coverage: the same method replayed at up to ``backtests`` past points of the history, counting
      how often the actual demand ``horizon_s`` later stayed under the upper bound it gave then.
    """

    name: str = "theil-sen-v1"
    block_time_s: float = 2.0
    fit_points: int = 60
    signal_points: int = 30  # the recent points the tx pool growth is read from
    error_points: int = 30
    backtests: int = 30
    min_points: int = 10

    def forecast(self, history: Sequence[Point], *, horizon_s: float) -> Forecast:
        observed = [p for p in history if p.cpu_cores is not None]
        t = np.array([p.t for p in observed], dtype=np.float64)
        d = self.demand(history)
        fit = self._fit(t, d, horizon_s=horizon_s)
        covered, evaluated = self._backtest(t, d, horizon_s=horizon_s)
        return Forecast(
            point_cores=fit.point,
            upper_cores=fit.upper,
            trend=fit.trend,
            slope_per_min=fit.slope * 60.0,
            key_factors=self._factors(history, observed, d, fit),
            coverage=covered / evaluated if evaluated else None,
            evaluated=evaluated,
        )

    def nominal_interval(self, history: Sequence[Point]) -> float:
        """The chain's healthy block interval: what it showed with CPU to spare, else the configured one."""
        relaxed = [
            p.block_interval
            for p in history
            if p.block_interval is not None and not _saturated(p) and p.cpu_cores is not None
        ]
        return float(np.median(relaxed)) if len(relaxed) >= 5 else self.block_time_s

    def demand(self, history: Sequence[Point]) -> Array:
        """Estimated cores op-geth wanted at each point that measured its CPU."""
        nominal = self.nominal_interval(history)
        recent: list[float] = []
        out: list[float] = []
        for p in history:
            if p.block_interval is not None:
                # A median of the last ten: one interval is quantised to the collector's poll period
                # (4 s or 6 s polled every 2 s), and a long one is reported on every poll it spans.
                recent = [*recent[-(INTERVAL_POINTS - 1) :], p.block_interval]
            if p.cpu_cores is None:
                continue
            if not _saturated(p):
                out.append(p.cpu_cores)
                continue
            stretch = float(np.median(recent)) / nominal if recent else 1.0
            # Block time grows faster than the overload (queueing), so the square root of the stretch,
            # not the stretch itself, estimates how far demand exceeds what the allocation lets it use.
            out.append(p.cpu_cores * min(MAX_PRESSURE, max(MIN_PRESSURE, math.sqrt(stretch))))
        return np.array(out, dtype=np.float64)

    def _fit(self, t: Array, d: Array, *, horizon_s: float) -> _Fit:
        level = float(np.median(d[-3:]))
        # The trend is judged over as long a past as it is projected into the future, thinned to at
        # most ``fit_points`` (Theil–Sen is quadratic in its points); the newest point is always kept.
        recent = np.flatnonzero(t >= t[-1] - horizon_s)
        stride = max(1, math.ceil(len(recent) / self.fit_points))
        chosen = recent[::-1][::stride][::-1]
        tw, dw = t[chosen], d[chosen]
        slope, lo, hi = _theil_sen(tw, dw)
        change = slope * horizon_s
        # A slope seen over less than half the horizon is not projected over all of it.
        long_enough = float(tw[-1] - tw[0]) >= horizon_s / 2
        moves = long_enough and abs(change) >= TREND_SHARE * max(level, MIN_LEVEL_CORES) and _gradual(dw)
        trend: Trend = "stable"
        if moves and lo > 0:
            trend = "rising"
        elif moves and hi < 0:
            trend = "falling"
        spread = self._spread(d)
        if trend == "stable":
            return _Fit(level=level, point=level, upper=level + spread, slope=slope, trend=trend)
        point = max(0.0, level + change)
        # No credit for a decline in the bound: scaling down on an extrapolated fall starves the next peak.
        upper = (level if trend == "falling" else max(point, level + hi * horizon_s)) + spread
        return _Fit(level=level, point=point, upper=upper, slope=slope, trend=trend)

    def _spread(self, d: Array) -> float:
        """A one-sided 95 % band of the three-point median level's recent one-step errors.

        Scaled from their median absolute deviation rather than a raw quantile: the two or three huge
        errors of a step change would otherwise widen the band for the whole error window after it.
        """
        errors = [
            float(d[i]) - float(np.median(d[max(0, i - 3) : i]))
            for i in range(max(1, len(d) - self.error_points), len(d))
        ]
        if len(errors) < 3:
            return MIN_SPREAD_CORES
        scale = float(stats.median_abs_deviation(errors, scale="normal"))
        return max(MIN_SPREAD_CORES, float(np.median(errors)) + 1.645 * scale)

    def _backtest(self, t: Array, d: Array, *, horizon_s: float) -> tuple[int, int]:
        """(covered, evaluated): replays of the forecast at past points whose horizon has passed."""
        targets = np.searchsorted(t, t + horizon_s)
        anchors = [
            j
            for j in range(self.min_points - 1, len(t))
            # The actual must exist and sit near the horizon, not long after a gap in the history.
            if targets[j] < len(t) and t[targets[j]] - t[j] <= 1.5 * horizon_s
        ][-self.backtests :]
        covered = sum(
            1
            for j in anchors
            if d[targets[j]] <= self._fit(t[: j + 1], d[: j + 1], horizon_s=horizon_s).upper + 1e-9
        )
        return covered, len(anchors)

    def _factors(
        self, history: Sequence[Point], observed: Sequence[Point], d: Array, fit: _Fit
    ) -> tuple[str, ...]:
        last = observed[-1]
        factors: list[str] = []
        if last.cpu_request and last.cpu_cores is not None:
            share = last.cpu_cores / last.cpu_request
            pinned = " (saturated: it needs more than it gets)" if _saturated(last) else ""
            factors.append(f"CPU at {share:.0%} of its {last.cpu_request:g} vCPU request{pinned}")
        intervals = [p.block_interval for p in history if p.block_interval is not None][-INTERVAL_POINTS:]
        nominal = self.nominal_interval(history)
        if intervals and float(np.median(intervals)) >= 1.25 * nominal:
            interval = float(np.median(intervals))
            factors.append(
                f"Block interval {interval:.1f}s, {interval / nominal:.1f}x the {nominal:.2g}s norm"
            )
        pool = [(p.t, p.tx_pool) for p in history[-self.signal_points :] if p.tx_pool is not None]
        if len(pool) >= 3:
            per_min = (
                60.0
                * _theil_sen(
                    np.array([x for x, _ in pool], dtype=np.float64),
                    np.array([y for _, y in pool], dtype=np.float64),
                )[0]
            )
            if abs(per_min) >= 10:
                factors.append(f"TxPool growth {per_min:+.0f}/min ({pool[-1][1]:.0f} pending)")
        gas = [p.gas_used_ratio for p in history[-5:] if p.gas_used_ratio is not None]
        if gas and float(np.mean(gas)) >= 0.9:
            factors.append(f"Gas used ratio {float(np.mean(gas)):.2f}: blocks are full")
        if fit.trend != "stable":
            factors.append(f"Demand {fit.trend} {60 * fit.slope:+.3f} cores/min")
        span = _span(observed[-1].t - observed[0].t)
        factors.append(
            f"Demand {float(d.min()):.2f}-{float(d.max()):.2f} cores over {span} "
            f"(mean {float(d.mean()):.2f}, std {float(d.std()):.2f})"
        )
        return tuple(factors)


def _gradual(y: Array) -> bool:
    """Whether the window's change is spread over it rather than made in one jump.

    A step looks like a slope to any line fitted across it, and projecting that slope turns a
    one-off jump into runaway demand. The medians of the window's quarters must each move the same
    way by at least 15 % of the whole move: a ramp moves a third each time, a step moves in at most
    two of the three (the quarter holding the jump sits anywhere in between).
    """
    if len(y) < 8:
        return False
    medians = [float(np.median(part)) for part in np.array_split(y, 4)]
    total = medians[-1] - medians[0]
    return total != 0 and min((b - a) / total for a, b in itertools.pairwise(medians)) >= 0.15


def _span(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def _saturated(p: Point) -> bool:
    return (
        bool(p.cpu_request)
        and p.cpu_cores is not None
        and p.cpu_cores >= SATURATED_SHARE * (p.cpu_request or 0)
    )


def _theil_sen(t: Array, y: Array) -> tuple[float, float, float]:
    """(slope, low, high) per second with a 90 % interval; flat when there is nothing to fit."""
    if len(t) < 3 or float(np.ptp(t)) == 0.0:
        return 0.0, 0.0, 0.0
    result = stats.theilslopes(y, t - t[0], alpha=0.90)
    return float(result.slope), float(result.low_slope), float(result.high_slope)


# ------------------------------------------------------------------------------------ recommending


def recommend(
    forecast: Forecast, *, ladder: Sequence[float], current_vcpu: float | None, headroom: float
) -> float:
    """The smallest ladder step ≥ upper × (1 + headroom), capped at the top of the ladder.

    Going down needs twice the headroom, so a forecast hovering at a step boundary does not flap
    between scale-down and scale-up proposals.
    """
    steps = sorted(ladder)
    target = next((s for s in steps if s >= forecast.upper_cores * (1 + headroom)), steps[-1])
    if (
        current_vcpu is not None
        and target < current_vcpu
        and forecast.upper_cores * (1 + 2 * headroom) > target
    ):
        return current_vcpu
    return target


def confidence(forecast: Forecast) -> float:
    """0..100: measured coverage, shrunk toward 50 % while few past forecasts could be checked."""
    covered = (forecast.coverage or 0.0) * forecast.evaluated
    return 100.0 * (covered + PRIOR_COVERAGE * PRIOR_WEIGHT) / (forecast.evaluated + PRIOR_WEIGHT)


def predict(
    history: Sequence[Point],
    *,
    forecaster: Forecaster,
    ladder: Sequence[float],
    horizon_s: float,
    headroom: float,
    chain_id: str,
    now: datetime,
    min_points: int = 10,
) -> PredictionMade | None:
    """The vCPU op-geth should have ``horizon_s`` from ``now``; ``None`` with too little history."""
    measured = [p for p in history if p.cpu_cores is not None]
    if len(measured) < min_points:
        return None
    forecast = forecaster.forecast(history, horizon_s=horizon_s)
    current = measured[-1].cpu_request
    vcpu = recommend(forecast, ladder=ladder, current_vcpu=current, headroom=headroom)
    # Deterministic per (chain, model, newest sample): a replayed tick is stored once by JetStream.
    key = f"{chain_id}|{forecaster.name}|{now.isoformat()}|{horizon_s}"
    return PredictionMade(
        event_id=hashlib.blake2b(key.encode(), digest_size=16).hexdigest(),
        occurred_at=now,
        chain_id=chain_id,
        predicted_vcpu=vcpu,
        current_vcpu=current,
        confidence=round(confidence(forecast), 1),
        trend=forecast.trend,
        key_factors=forecast.key_factors,
        reasoning=reasoning(forecast, vcpu=vcpu, current=current, horizon_s=horizon_s, headroom=headroom),
        horizon_s=horizon_s,
        forecast_cores=round(forecast.point_cores, 4),
        upper_bound_cores=round(forecast.upper_cores, 4),
        model=forecaster.name,
    )


def reasoning(
    forecast: Forecast, *, vcpu: float, current: float | None, horizon_s: float, headroom: float
) -> str:
    """One sentence an SRE can check against the graphs."""
    lead = "; ".join(forecast.key_factors[:3])
    if current is None:
        verdict = f"{vcpu:g} vCPU covers it with {headroom:.0%} headroom"
    elif vcpu > current:
        verdict = f"{current:g} vCPU is not enough: scale to {vcpu:g} vCPU for {headroom:.0%} headroom"
    elif vcpu < current:
        verdict = f"{vcpu:g} vCPU would still leave {2 * headroom:.0%} headroom, so {current:g} can come down"
    else:
        verdict = f"the current {current:g} vCPU covers it with {headroom:.0%} headroom"
    coverage = (
        f"{forecast.coverage:.0%} of {forecast.evaluated} past forecasts stayed under their bound"
        if forecast.coverage is not None
        else "no past forecast could be checked yet"
    )
    return (
        f"{lead}. op-geth demand is {forecast.trend} and should be {forecast.point_cores:.2f} cores in "
        f"{horizon_s / 60:g} min (upper bound {forecast.upper_cores:.2f}; {coverage}), so {verdict}."
    )

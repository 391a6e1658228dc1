"""The predictor's decision: op-geth CPU demand forecast → vCPU ladder step → ``PredictionMade``.

Pure: no I/O, no clock. The pieces live in their own modules and are re-exported here, so the
decision reads from one import:

* ``model``: ``Point`` (one op-geth observation), ``Forecast``, the ``Forecaster`` seam;
* ``forecasting``: ``StatForecaster``, the demand forecast with its calibrated bounds;
* ``sizing``: ``recommend``, the ladder step a forecast asks for;
* here: ``predict`` (the live decision), ``confidence`` and ``reasoning`` (the event's wording).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final

from sentinai.common.decisions import PredictionMade
from sentinai.common.events import derived_id
from sentinai.predictor.forecasting import StatForecaster
from sentinai.predictor.model import (
    SATURATED_SHARE,
    SATURATED_SHARE_ALONE,
    Forecast,
    Forecaster,
    Point,
    point_fields,
)
from sentinai.predictor.sizing import recommend

__all__ = [
    "PRIOR_COVERAGE",
    "PRIOR_WEIGHT",
    "SATURATED_SHARE",
    "SATURATED_SHARE_ALONE",
    "Forecast",
    "Forecaster",
    "Point",
    "StatForecaster",
    "confidence",
    "point_fields",
    "predict",
    "reasoning",
    "recommend",
]

# Confidence is the measured coverage shrunk toward an uninformed 50 % by this many pseudo-checks.
PRIOR_COVERAGE: Final = 0.5
PRIOR_WEIGHT: Final = 5.0


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
    down_headroom: float | None = None,
    up_tolerance: float = 1 - SATURATED_SHARE,
) -> PredictionMade | None:
    """The vCPU op-geth should have ``horizon_s`` from ``now``; ``None`` with too little history."""
    measured = [p for p in history if p.cpu_cores is not None]
    if len(measured) < min_points:
        return None
    forecast = forecaster.forecast(history, horizon_s=horizon_s)
    current = measured[-1].cpu_request
    vcpu = recommend(
        forecast,
        ladder=ladder,
        current_vcpu=current,
        headroom=headroom,
        down_headroom=down_headroom,
        up_tolerance=up_tolerance,
    )
    return PredictionMade(
        # Deterministic per (chain, model, newest sample): a replayed tick is stored once by JetStream.
        event_id=derived_id("prediction", chain_id, forecaster.name, now.isoformat(), horizon_s),
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
    """One sentence an SRE can check against the graphs.

    The verdict is stated against the peak bound the step is sized on (the forecast's ceiling), with
    the share of a step that bound leaves spare, so "covers it" always comes with its real margin.
    """
    lead = "; ".join(forecast.key_factors[:3])
    peak = forecast.ceiling_cores if forecast.ceiling_cores is not None else forecast.upper_cores
    need = f"its {horizon_s / 60:g}-min peak bound of {peak:.2f} cores" + (
        f" plus {headroom:.0%} headroom" if headroom else ""
    )

    def covers(step: float) -> str:
        spare = 1 - peak * (1 + headroom) / step
        return f"covers {need} ({spare:.0%} spare)"

    if current is None:
        verdict = f"{vcpu:g} vCPU {covers(vcpu)}"
    elif vcpu > current:
        verdict = f"{current:g} vCPU is not enough for {need}: scale to {vcpu:g} vCPU"
    elif vcpu < current:
        verdict = f"{vcpu:g} vCPU still {covers(vcpu)}, so {current:g} can come down"
    elif peak * (1 + headroom) <= vcpu:
        verdict = f"the current {current:g} vCPU {covers(vcpu)}"
    else:
        verdict = f"the current {current:g} vCPU stays, below {need} (see the key factors)"
    coverage = (
        f"{forecast.coverage:.0%} of {forecast.evaluated} past forecasts stayed under their bound"
        if forecast.coverage is not None
        else "no past forecast could be checked yet"
    )
    return (
        f"{lead}. op-geth demand is {forecast.trend} and should be {forecast.point_cores:.2f} cores in "
        f"{horizon_s / 60:g} min (upper bound {forecast.upper_cores:.2f}; {coverage}), so {verdict}."
    )

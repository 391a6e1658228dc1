"""The predictor's use cases: fold op-geth samples into per-chain history; one prediction round."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from prometheus_client import Histogram

from sentinai.common.decisions import PredictionMade
from sentinai.common.events import MetricSample
from sentinai.predictor import logic
from sentinai.predictor.settings import PredictorSettings
from sentinai.predictor.windows import PredictorState

COMPONENT = "op-geth"
FORECAST_SECONDS = Histogram("sentinai_predictor_forecast_seconds", "Time to forecast one chain")

# Where a prediction goes (the EVENTS stream in production); raises if it could not be published.
Publish = Callable[[PredictionMade], Awaitable[None]]


@dataclass
class Deps:
    state: PredictorState
    forecaster: logic.Forecaster


def add_sample(deps: Deps, sample: MetricSample) -> None:
    """Fold one op-geth sample into its chain's history (a redelivered one is folded once)."""
    # The durable's filter keeps other components out; a sample that claims another one is skipped.
    if sample.component == COMPONENT:
        deps.state.add(sample)


async def predict_due(deps: Deps, *, settings: PredictorSettings, now: datetime, publish: Publish) -> int:
    """Predict every chain with new samples and publish; how many predictions went out.

    A chain is marked predicted only once its prediction is published: a failed publish raises, and
    the next round tries the chain again.
    """
    published = 0
    for chain, history in deps.state.due():
        newest = history.newest
        if newest is None or now - newest > timedelta(seconds=settings.stale_s):
            continue  # replayed history of a chain that has gone quiet: nothing current to say
        with FORECAST_SECONDS.time():
            # In a thread: tens of ms of numpy per chain must not stall the sample handler.
            prediction = await asyncio.to_thread(
                logic.predict,
                history.points(),
                forecaster=deps.forecaster,
                ladder=settings.ladder,
                horizon_s=settings.horizon_s,
                headroom=settings.headroom,
                down_headroom=settings.down_headroom,
                up_tolerance=settings.up_tolerance,
                chain_id=chain,
                now=newest,
                min_points=settings.min_points,
            )
        if prediction is not None:
            await publish(prediction)
            published += 1
        deps.state.predicted_at[chain] = newest
    return published

"""Wiring only: op-geth samples folded into per-chain history; predictions published on an interval.

The samples come through a batched pull loop (``common.pull``) on a durable that filters op-geth's
subjects only: the other components' samples (seven in eight) never reach this process.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from faststream.nats import NatsBroker
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from prometheus_client import Counter

from sentinai.common import jsonlog, pull, streams, subjects, telemetry
from sentinai.common.bus import DeadLetters, build_broker, publish_event
from sentinai.common.decisions import PredictionMade
from sentinai.common.events import MetricSample
from sentinai.predictor import service
from sentinai.predictor.service import COMPONENT, Deps
from sentinai.predictor.settings import PredictorSettings

__all__ = ["COMPONENT", "SERVICE", "Deps", "Wiring", "build", "reset_durable", "samples_consumer"]

SERVICE = "predictor"
log = logging.getLogger(__name__)

PREDICTIONS = Counter("sentinai_predictor_predictions_total", "Predictions published", ["chain", "trend"])
TICK_FAILURES = Counter("sentinai_predictor_tick_failures_total", "Prediction rounds that raised")


@dataclass(frozen=True)
class Wiring:
    broker: NatsBroker
    # Predicts every chain with new samples, publishes, returns how many predictions went out.
    tick: Callable[[datetime], Awaitable[int]]
    # The samples' pull loop and its durable (created afresh at start, see ``reset_durable``).
    loop: pull.Loop
    consumer: ConsumerConfig


def samples_consumer(settings: PredictorSettings, *, start: datetime) -> ConsumerConfig:
    """op-geth's samples of every chain, whether TELEMETRY is partitioned or not, from ``start``."""
    return ConsumerConfig(
        durable_name=settings.durable,
        filter_subjects=subjects.metrics_raw_component_stored(COMPONENT),
        deliver_policy=DeliverPolicy.BY_START_TIME,
        opt_start_time=start,
        ack_wait=30.0,
        max_ack_pending=10 * pull.BATCH_SIZE,
    )


def build(settings: PredictorSettings, deps: Deps, *, start: datetime) -> Wiring:
    """``start``: where a new durable begins, so a (re)started predictor rebuilds its history."""
    broker = build_broker(settings)
    telemetry.instrument(broker, service=SERVICE)
    dead = DeadLetters(broker, service=SERVICE)

    def add(sample: MetricSample) -> None:
        service.add_sample(deps, sample)

    on_samples = pull.folding(dead, service=SERVICE, kind="metric_sample", event_type=MetricSample, add=add)

    async def publish(prediction: PredictionMade) -> None:
        chain = prediction.chain_id
        jsonlog.bind(chain=chain, correlation_id=prediction.correlation_id)
        await publish_event(broker, subjects.prediction_made(chain), prediction, stream=streams.EVENTS)
        PREDICTIONS.labels(chain, prediction.trend).inc()

    async def tick(now: datetime) -> int:
        return await service.predict_due(deps, settings=settings, now=now, publish=publish)

    return Wiring(
        broker=broker,
        tick=tick,
        loop=pull.Loop(streams.TELEMETRY.name, settings.durable, on_samples, dead=dead),
        consumer=samples_consumer(settings, start=start),
    )


async def reset_durable(js: JetStreamContext, wiring: Wiring) -> None:
    """Create the durable afresh: history lives in memory, so a restart must replay it, not resume."""
    await pull.recreate_consumer(js, streams.TELEMETRY.name, wiring.consumer)

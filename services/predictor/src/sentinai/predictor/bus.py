"""Wiring only: op-geth samples folded into per-chain history; predictions published on an interval."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from faststream import AckPolicy
from faststream.nats import ConsumerConfig, DeliverPolicy, NatsBroker, NatsMessage
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from prometheus_client import Counter, Histogram

from sentinai.common import jsonlog, streams, subjects, telemetry
from sentinai.common.bus import MESSAGES_HANDLED, DeadLetters, build_broker, publish_event
from sentinai.common.events import MetricSample
from sentinai.predictor import logic
from sentinai.predictor.settings import PredictorSettings
from sentinai.predictor.windows import PredictorState

SERVICE = "predictor"
COMPONENT = "op-geth"
log = logging.getLogger(__name__)

PREDICTIONS = Counter("sentinai_predictor_predictions_total", "Predictions published", ["chain", "trend"])
TICK_FAILURES = Counter("sentinai_predictor_tick_failures_total", "Prediction rounds that raised")
FORECAST_SECONDS = Histogram("sentinai_predictor_forecast_seconds", "Time to forecast one chain")


@dataclass
class Deps:
    state: PredictorState
    forecaster: logic.Forecaster


@dataclass(frozen=True)
class Wiring:
    broker: NatsBroker
    # Predicts every chain with new samples, publishes, returns how many predictions went out.
    tick: Callable[[datetime], Awaitable[int]]


def build(settings: PredictorSettings, deps: Deps, *, start: datetime) -> Wiring:
    """``start``: where a new durable begins, so a (re)started predictor rebuilds its history."""
    broker = build_broker(settings)
    telemetry.instrument(broker, service=SERVICE)
    dead = DeadLetters(broker, service=SERVICE)

    with warnings.catch_warnings():
        # faststream warns that a durable push consumer cannot be shared by replicas; the predictor
        # runs one replica by design (its history is in memory), and the durable survives reconnects.
        warnings.filterwarnings("ignore", message=".*`durable` option", category=RuntimeWarning)
        # Every stored form (plain or partitioned by the detectors) reaches this durable; samples of
        # other components are acknowledged and skipped in the handler.
        subscriber = broker.subscriber(
            subjects.METRICS_RAW_ANY,
            stream=streams.TELEMETRY.ref(),
            durable=settings.durable,
            deliver_policy=DeliverPolicy.BY_START_TIME,
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_TIME,
                opt_start_time=start,
                ack_wait=30.0,
                max_ack_pending=5000,
            ),
            # A sample only feeds the in-memory history, which a restart replays anyway: one that
            # makes the handler raise is a bug to log, not a message to redeliver for ever.
            ack_policy=AckPolicy.REJECT_ON_ERROR,
        )

    @subscriber
    async def on_sample(msg: NatsMessage) -> None:
        sample = await dead.decode(MetricSample, subject=msg.raw_message.subject, body=msg.body)
        if sample is not None and sample.component == COMPONENT:
            deps.state.add(sample)
            MESSAGES_HANDLED.labels(SERVICE, "metric_sample").inc()

    async def tick(now: datetime) -> int:
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
                jsonlog.bind(chain=chain, correlation_id=prediction.correlation_id)
                await publish_event(
                    broker, subjects.prediction_made(chain), prediction, stream=streams.EVENTS
                )
                PREDICTIONS.labels(chain, prediction.trend).inc()
                published += 1
            # Marked only once published: a failed publish is retried on the next tick.
            deps.state.predicted_at[chain] = newest
        return published

    return Wiring(broker=broker, tick=tick)


async def reset_durable(js: JetStreamContext, settings: PredictorSettings) -> None:
    """Drop the previous durable: history lives in memory, so a restart must replay it, not resume."""
    with contextlib.suppress(NotFoundError):
        await js.delete_consumer(streams.TELEMETRY.name, settings.durable)


@dataclass
class Ticker:
    """The interval loop: one prediction round every ``interval_s`` until stopped."""

    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def start(
        self, tick: Callable[[datetime], Awaitable[int]], *, interval_s: float, clock: Callable[[], datetime]
    ) -> None:
        self.task = asyncio.create_task(self._run(tick, interval_s=interval_s, clock=clock))

    async def _run(
        self, tick: Callable[[datetime], Awaitable[int]], *, interval_s: float, clock: Callable[[], datetime]
    ) -> None:
        # The first round waits one interval: the replayed history arrives in the meantime.
        while not await self._stopped_within(interval_s):
            try:
                await tick(clock())
            except Exception:
                TICK_FAILURES.inc()
                log.exception("prediction round failed; retried next interval")

    async def _stopped_within(self, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)
        return self.stopping.is_set()

    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    async def stop(self, *, timeout_s: float = 10.0) -> None:
        self.stopping.set()
        if self.task is not None:
            await asyncio.wait([self.task], timeout=timeout_s)
            self.task.cancel()

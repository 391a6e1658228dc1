"""Wiring only: telemetry and actions fold into the context; anomalies trigger one RCA per incident.

Samples and log lines (most of the bus) are read by batched pull loops (``common.pull``); executed
actions and anomalies, a few a minute, by faststream pull subscribers one message at a time. The
telemetry and action durables start ``replay_s`` back when new, so the first RCA after a deploy
already has metric windows and log tails. Anomalies start at new messages: replaying old ones would
publish diagnoses of incidents long over.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from faststream.middlewares import AckPolicy
from faststream.nats import DeliverPolicy, NatsBroker, NatsMessage, PullSub
from nats.js.api import ConsumerConfig
from prometheus_client import Counter, Histogram

from sentinai.common import jsonlog, pull, streams, subjects, telemetry
from sentinai.common.bus import MESSAGES_HANDLED, DeadLetters, build_broker, publish_event
from sentinai.common.decisions import ActionExecuted
from sentinai.common.events import AnomalyDetected, AnomalyResolved, Event, LogBatch, MetricSample, utcnow
from sentinai.rca import llm, logic
from sentinai.rca.context import ContextStore
from sentinai.rca.llm import LlmConfig, Outcome
from sentinai.rca.service import Diagnoser, Pending, diagnoser_from
from sentinai.rca.settings import RcaSettings
from sentinai.rca.tracker import IncidentTracker

SERVICE = "rca"
E = TypeVar("E", bound=Event)
log = logging.getLogger(__name__)

RCAS = Counter("sentinai_rca_published_total", "RCAs published", ["chain", "root_cause_class", "engine"])
RCA_SECONDS = Histogram(
    "sentinai_rca_seconds",
    "Time from anomaly received to RCA decided",
    buckets=(0.005, 0.02, 0.1, 0.5, 1, 2, 5, 10),
)


@dataclass
class Deps:
    context: ContextStore
    tracker: IncidentTracker
    llm: LlmConfig | None = None
    clock: Callable[[], datetime] = field(default=utcnow)
    # Chains whose telemetry arrived since the last re-diagnosis pass, with the newest event time.
    touched: dict[str, datetime] = field(default_factory=dict)


def deps_from(settings: RcaSettings) -> Deps:
    diagnoser = diagnoser_from(settings)
    return Deps(context=diagnoser.context, tracker=diagnoser.tracker, llm=llm.config_from(settings))


@dataclass(frozen=True)
class Wiring:
    broker: NatsBroker
    # The telemetry pull loops and the durables they read (created before the loops start).
    loops: list[pull.Loop]
    consumers: tuple[ConsumerConfig, ...]


def telemetry_consumers(settings: RcaSettings, *, now: datetime) -> tuple[ConsumerConfig, ConsumerConfig]:
    """The samples and the log-lines durables, starting ``replay_s`` back when new."""
    start = now - timedelta(seconds=settings.replay_s)
    metrics, logs = (
        ConsumerConfig(
            durable_name=f"{settings.durable_prefix}-{name}",
            filter_subject=subject,
            deliver_policy=DeliverPolicy.BY_START_TIME,
            opt_start_time=start,
            ack_wait=30.0,
            max_ack_pending=10 * pull.BATCH_SIZE,
        )
        for name, subject in (("metrics", subjects.METRICS_RAW_ANY), ("logs", subjects.LOGS_RAW_ALL))
    )
    return metrics, logs


def publisher(broker: NatsBroker, deps: Deps, diagnoser: Diagnoser) -> Callable[..., Awaitable[None]]:
    """What publishes a diagnosis the tracker let through: the RCA event, its audit line, metrics."""

    async def publish_pending(pending: Pending, *, started: float) -> None:
        # The LLM, when configured, adds to the rules' answer within one deadline; it never decides.
        outcome = (
            Outcome(pending.diagnosis, "rules", None, 0.0)
            if deps.llm is None
            else await llm.consult(pending.ctx, pending.diagnosis, config=deps.llm)
        )
        event = logic.to_event(
            outcome.diagnosis,
            pending.ctx,
            episode_id=pending.trigger.incident_id,
            basis=pending.basis,
            engine=outcome.engine,
            model=outcome.model,
            latency_ms=1000 * (time.perf_counter() - started),
            cost_usd=outcome.cost_usd,
            now=deps.clock(),
        )
        await publish_event(broker, subjects.rca_completed(event.chain_id), event, stream=streams.EVENTS)
        audit = logic.audit_of(event, llm_refused=outcome.failure)
        await publish_event(broker, subjects.audit(event.chain_id), audit, stream=streams.AUDIT)
        diagnoser.published(pending)
        RCAS.labels(event.chain_id, event.root_cause_class, event.engine).inc()
        log.info(
            "rca published",
            extra={
                "episodeId": event.episode_id,
                "rootCauseClass": event.root_cause_class,
                "confidence": event.confidence,
                "engine": event.engine,
                "latencyMs": round(event.latency_ms, 1),
                "corroboration": event.corroboration.status if event.corroboration else None,
            },
        )

    return publish_pending


def build(settings: RcaSettings, deps: Deps, *, now: datetime) -> Wiring:
    broker = build_broker(settings)
    telemetry.instrument(broker, service=SERVICE)
    dead = DeadLetters(broker, service=SERVICE)
    prefix = settings.durable_prefix
    since = ConsumerConfig(opt_start_time=now - timedelta(seconds=settings.replay_s))
    # Actions and anomalies: a failed handler is a transient failure (the bus was unreachable), so
    # nak for redelivery; one message per fetch, as faststream 0.7.8 can drop a partly fetched batch.
    retry = AckPolicy.NACK_ON_ERROR
    one = PullSub(batch_size=1, timeout=1.0)

    diagnoser = Diagnoser(
        context=deps.context,
        tracker=deps.tracker,
        block_time_s=settings.block_time_s,
        rediagnose_s=settings.rediagnose_s,
    )

    publish_pending = publisher(broker, deps, diagnoser)

    def add_sample(sample: MetricSample) -> None:
        deps.context.add_sample(sample)
        seen = deps.touched.get(sample.chain_id)
        if seen is None or sample.occurred_at > seen:
            deps.touched[sample.chain_id] = sample.occurred_at

    async def rediagnose() -> None:
        """Open incidents of the chains just heard from, re-diagnosed when due (confidence grows)."""
        touched, deps.touched = deps.touched, {}
        for chain_id, at in touched.items():
            pending = diagnoser.telemetry(chain_id, now=at)
            if pending is not None:
                await publish_pending(pending, started=time.perf_counter())
        await publish_closed()

    async def publish_closed() -> None:
        for over in diagnoser.closed():
            await publish_event(
                broker, subjects.incident_resolved(over.chain_id), over, stream=streams.EVENTS
            )

    # The context an incident is diagnosed in: samples, log lines and executed actions, replayed
    # from ``replay_s`` ago by a new durable.
    metrics, logs = telemetry_consumers(settings, now=now)
    loops = [
        pull.Loop(
            streams.TELEMETRY.name,
            str(metrics.durable_name),
            pull.folding(
                dead,
                service=SERVICE,
                kind="metric_sample",
                event_type=MetricSample,
                add=add_sample,
                after=rediagnose,
            ),
        ),
        pull.Loop(
            streams.TELEMETRY.name,
            str(logs.durable_name),
            pull.folding(
                dead, service=SERVICE, kind="log_batch", event_type=LogBatch, add=deps.context.add_logs
            ),
        ),
    ]

    def one_at_a_time(
        subject: str,
        stream: streams.StreamSpec,
        name: str,
        *,
        deliver: DeliverPolicy,
        config: ConsumerConfig | None = None,
    ) -> Callable[[Callable[[NatsMessage], Awaitable[None]]], object]:
        """A durable faststream pull subscriber, one message per fetch, naked when its handler raises."""
        return broker.subscriber(
            subject,
            stream=stream.ref(),
            durable=f"{prefix}-{name}",
            deliver_policy=deliver,
            config=config,
            ack_policy=retry,
            pull_sub=one,
        )

    @one_at_a_time(
        subjects.ACTION_EXECUTED_ALL,
        streams.ACTIONS,
        "actions",
        deliver=DeliverPolicy.BY_START_TIME,
        config=since,
    )
    async def on_action(msg: NatsMessage) -> None:
        action = await dead.decode(ActionExecuted, subject=msg.raw_message.subject, body=msg.body)
        if action is not None:
            deps.context.add_action(action)

    @one_at_a_time(subjects.ANOMALY_ALL, streams.EVENTS, "anomalies", deliver=DeliverPolicy.NEW)
    async def on_anomaly(msg: NatsMessage) -> None:
        subject = msg.raw_message.subject
        if subject.startswith(subjects.ANOMALY_RESOLVED + "."):
            resolved = await dead.decode(AnomalyResolved, subject=subject, body=msg.body)
            if resolved is not None:
                diagnoser.resolved(resolved)
            return
        anomaly = await dead.decode(AnomalyDetected, subject=subject, body=msg.body)
        if anomaly is not None:
            jsonlog.bind(chain=anomaly.chain_id, correlation_id=anomaly.correlation_id)
            started = time.perf_counter()
            pending = diagnoser.detected(anomaly)
            await publish_closed()
            if pending is not None:
                await publish_pending(pending, started=started)
            RCA_SECONDS.observe(time.perf_counter() - started)
            deps.tracker.handled(anomaly.event_id)
            MESSAGES_HANDLED.labels(SERVICE, "anomaly").inc()

    return Wiring(broker=broker, loops=loops, consumers=(metrics, logs))

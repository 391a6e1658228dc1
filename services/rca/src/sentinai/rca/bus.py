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
from sentinai.common.decisions import ActionExecuted, RcaCompleted
from sentinai.common.events import AnomalyDetected, AnomalyResolved, Event, LogBatch, MetricSample, utcnow
from sentinai.rca import llm, logic
from sentinai.rca.context import ContextStore
from sentinai.rca.llm import LlmConfig, Outcome
from sentinai.rca.settings import RcaSettings
from sentinai.rca.tracker import IncidentTracker, Trigger

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


def deps_from(settings: RcaSettings) -> Deps:
    llm = None
    if settings.llm_model is not None:
        llm = LlmConfig(
            model=settings.llm_model,
            api_base=settings.llm_api_base,
            api_key=settings.llm_api_key.get_secret_value() if settings.llm_api_key else None,
            timeout_s=settings.llm_timeout_s,
            max_tokens=settings.llm_max_tokens,
            fallback_s=settings.llm_fallback_s,
        )
    return Deps(
        context=ContextStore(
            metric_window=settings.metric_window,
            log_lines=settings.log_lines,
            actions=settings.recent_actions,
            metric_horizon_s=settings.metric_horizon_s,
            log_horizon_s=settings.log_horizon_s,
        ),
        tracker=IncidentTracker(quiet_s=settings.quiet_s, revise_delta=settings.revise_delta),
        llm=llm,
    )


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
                add=deps.context.add_sample,
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
                deps.context.resolved(resolved)
                deps.tracker.resolved(resolved)
            return
        anomaly = await dead.decode(AnomalyDetected, subject=subject, body=msg.body)
        if anomaly is not None:
            await diagnose(anomaly)
            MESSAGES_HANDLED.labels(SERVICE, "anomaly").inc()

    async def diagnose(anomaly: AnomalyDetected) -> None:
        jsonlog.bind(chain=anomaly.chain_id, correlation_id=anomaly.correlation_id)
        deps.context.opened(anomaly)
        trigger = deps.tracker.detected(anomaly)
        if trigger is None:
            return
        started = time.perf_counter()
        ctx = deps.context.context(anomaly, block_time_s=settings.block_time_s)
        rules = logic.diagnose(ctx)
        # A joining anomaly that does not change the answer is published nowhere and costs no LLM call.
        if deps.tracker.should_publish(
            trigger, root_cause_class=rules.root_cause_class, confidence=rules.confidence
        ):
            outcome = (
                Outcome(rules, "rules", None, 0.0)
                if deps.llm is None
                else await llm.consult(ctx, rules, config=deps.llm)
            )
            await publish(
                logic.to_event(
                    outcome.diagnosis,
                    ctx,
                    episode_id=trigger.incident_id,
                    engine=outcome.engine,
                    model=outcome.model,
                    latency_ms=1000 * (time.perf_counter() - started),
                    cost_usd=outcome.cost_usd,
                    now=deps.clock(),
                ),
                trigger,
                llm_refused=outcome.failure,
            )
        RCA_SECONDS.observe(time.perf_counter() - started)
        deps.tracker.handled(anomaly.event_id)

    async def publish(event: RcaCompleted, trigger: Trigger, *, llm_refused: str | None) -> None:
        await publish_event(broker, subjects.rca_completed(event.chain_id), event, stream=streams.EVENTS)
        audit = logic.audit_of(event, llm_refused=llm_refused)
        await publish_event(broker, subjects.audit(event.chain_id), audit, stream=streams.AUDIT)
        deps.tracker.published(trigger, root_cause_class=event.root_cause_class, confidence=event.confidence)
        RCAS.labels(event.chain_id, event.root_cause_class, event.engine).inc()
        log.info(
            "rca published",
            extra={
                "episodeId": event.episode_id,
                "rootCauseClass": event.root_cause_class,
                "confidence": event.confidence,
                "engine": event.engine,
                "latencyMs": round(event.latency_ms, 1),
            },
        )

    return Wiring(broker=broker, loops=loops, consumers=(metrics, logs))

"""Wiring only: telemetry and actions fold into the context; anomalies trigger one RCA per incident.

Samples and log lines (most of the bus) are read by batched pull loops (``common.pull``); executed
actions and anomalies, a few a minute, by durable consumers one message at a time
(``common.consumer``). The telemetry and action durables start ``replay_s`` back when new, so the
first RCA after a deploy already has metric windows and log tails. Anomalies start at new messages:
replaying old ones would publish diagnoses of incidents long over. What each message does is in
``service``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from faststream.nats import DeliverPolicy, NatsBroker
from nats.js.api import ConsumerConfig

from sentinai.common import pull, streams, subjects, telemetry
from sentinai.common.bus import DeadLetters, build_broker, publish_event
from sentinai.common.consumer import durable_consumer
from sentinai.common.decisions import ActionExecuted, AuditRecorded, IncidentResolved, RcaCompleted
from sentinai.common.events import AnomalyDetected, AnomalyResolved, Event, LogBatch, MetricSample
from sentinai.rca import service
from sentinai.rca.service import Deps, deps_from
from sentinai.rca.settings import RcaSettings

# ``deps_from`` too: ``sentinai asyncapi`` builds the wiring as the composition root does.
__all__ = ["SERVICE", "BusPublisher", "Deps", "Wiring", "anomaly_type", "build", "deps_from"]

SERVICE = "rca"


class BusPublisher:
    """The use cases' ``Publisher`` on the bus: each event on its subject and stream."""

    def __init__(self, broker: NatsBroker) -> None:
        self.broker = broker

    async def rca_completed(self, event: RcaCompleted) -> None:
        await publish_event(self.broker, subjects.rca_completed(event.chain_id), event, stream=streams.EVENTS)

    async def audit(self, record: AuditRecorded) -> None:
        await publish_event(self.broker, subjects.audit(record.chain_id), record, stream=streams.AUDIT)

    async def incident_resolved(self, event: IncidentResolved) -> None:
        subject = subjects.incident_resolved(event.chain_id)
        await publish_event(self.broker, subject, event, stream=streams.EVENTS)


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


def anomaly_type(subject: str) -> type[Event]:
    """The anomaly subjects carry two events, told apart by subject."""
    return AnomalyResolved if subject.startswith(subjects.ANOMALY_RESOLVED + ".") else AnomalyDetected


def build(settings: RcaSettings, deps: Deps, *, now: datetime) -> Wiring:
    broker = build_broker(settings)
    telemetry.instrument(broker, service=SERVICE)
    dead = DeadLetters(broker, service=SERVICE)
    publisher = BusPublisher(broker)
    prefix = settings.durable_prefix

    def add_sample(sample: MetricSample) -> None:
        service.fold_sample(sample, deps)

    def add_logs(batch: LogBatch) -> None:
        service.fold_logs(batch, deps)

    async def rediagnose() -> None:
        await service.rediagnose(deps, publisher=publisher)

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
            dead=dead,
        ),
        pull.Loop(
            streams.TELEMETRY.name,
            str(logs.durable_name),
            pull.folding(dead, service=SERVICE, kind="log_batch", event_type=LogBatch, add=add_logs),
            dead=dead,
        ),
    ]

    async def on_action(action: ActionExecuted) -> None:
        service.fold_action(action, deps)

    async def on_anomaly(event: Event) -> None:
        match event:
            case AnomalyResolved():
                service.anomaly_resolved(event, deps)
            case AnomalyDetected():
                await service.anomaly_detected(event, deps, publisher=publisher)

    durable_consumer(
        broker,
        dead,
        service=SERVICE,
        name="on_action",
        subject=subjects.ACTION_EXECUTED_ALL,
        stream=streams.ACTIONS,
        durable=f"{prefix}-actions",
        event_type=ActionExecuted,
        handle=on_action,
        deliver=DeliverPolicy.BY_START_TIME,
        config=ConsumerConfig(opt_start_time=now - timedelta(seconds=settings.replay_s)),
    )
    durable_consumer(
        broker,
        dead,
        service=SERVICE,
        name="on_anomaly",
        subject=subjects.ANOMALY_ALL,
        stream=streams.EVENTS,
        durable=f"{prefix}-anomalies",
        event_type=anomaly_type,
        handle=on_anomaly,
        deliver=DeliverPolicy.NEW,
    )
    return Wiring(broker=broker, loops=loops, consumers=(metrics, logs))

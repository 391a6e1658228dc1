"""Bus wiring for the api: fold telemetry and anomaly events into the read model."""

from __future__ import annotations

from faststream.nats import DeliverPolicy, NatsBroker, NatsMessage

from sentinai.api.readmodel import ReadModel
from sentinai.common import streams, subjects
from sentinai.common.bus import DeadLetters, build_broker
from sentinai.common.events import AnomalyDetected, AnomalyResolved, MetricSample
from sentinai.common.settings import ServiceSettings

SERVICE = "api"


def build(settings: ServiceSettings, model: ReadModel) -> NatsBroker:
    """Each api replica keeps its own ephemeral consumers: the read model is per process."""
    broker = build_broker(settings)
    dead = DeadLetters(broker, service=SERVICE)

    @broker.subscriber(
        subjects.METRICS_RAW_ALL,
        stream=streams.TELEMETRY.ref(),
        deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
    )
    async def on_sample(msg: NatsMessage) -> None:
        sample = await dead.decode(MetricSample, subject=msg.raw_message.subject, body=msg.body)
        if sample is not None:
            model.apply_sample(sample)

    @broker.subscriber(
        subjects.ANOMALY_ALL,
        stream=streams.EVENTS.ref(),
        deliver_policy=DeliverPolicy.ALL,
    )
    async def on_anomaly(msg: NatsMessage) -> None:
        subject = msg.raw_message.subject
        if subject.startswith(subjects.ANOMALY_RESOLVED + "."):
            resolved = await dead.decode(AnomalyResolved, subject=subject, body=msg.body)
            if resolved is not None:
                model.apply_resolved(resolved)
            return
        anomaly = await dead.decode(AnomalyDetected, subject=subject, body=msg.body)
        if anomaly is not None:
            model.apply_anomaly(anomaly)

    return broker

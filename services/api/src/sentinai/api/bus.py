"""Bus wiring for the api's read model: every subject folded in (``service.fold``).

Samples (most of the bus) come through a batched pull loop (``common.pull``) on this replica's own
consumer, unacknowledged (a restarted replica rebuilds its view anyway) and dropped by the server a
while after the replica is gone; the rest through ephemeral consumers of the common helper. The
writes go out through ``commands.BusCommands``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from faststream.nats import ConsumerConfig, DeliverPolicy, NatsBroker
from nats.aio.msg import Msg

from sentinai.api import service
from sentinai.api.readmodel import ReadModel
from sentinai.api.settings import ApiSettings
from sentinai.common import pull, streams, subjects, telemetry
from sentinai.common.bus import DeadLetters, build_broker
from sentinai.common.consumer import durable_consumer
from sentinai.common.events import Event, MetricSample, utcnow
from sentinai.common.streams import StreamSpec

SERVICE = "api"


@dataclass(frozen=True)
class Wiring:
    broker: NatsBroker
    # The samples' pull loop and the consumer it reads (created before the loop starts).
    samples: pull.Loop
    consumer: ConsumerConfig


def build(settings: ApiSettings, model: ReadModel, *, clock: Callable[[], datetime] = utcnow) -> Wiring:
    """Each api replica keeps its own ephemeral consumers: the read model is per process.

    A starting replica replays recent history (charts: the telemetry window; decisions and audit:
    ``replay_hours``) so its views are whole before the first request, whatever its age.
    """
    broker = build_broker(settings)
    telemetry.instrument(broker, service=SERVICE)
    dead = DeadLetters(broker, service=SERVICE)
    now = clock()
    replay_from = now - timedelta(hours=settings.replay_hours)

    async def fold(event: Event) -> None:
        service.fold(model, event)

    def consume(name: str, subject: str, stream: StreamSpec) -> None:
        durable_consumer(
            broker,
            dead,
            service=SERVICE,
            name=name,
            subject=subject,
            stream=stream,
            durable=None,
            event_type=service.folded_type,
            handle=fold,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=replay_from),
        )

    consume("on_anomaly", subjects.ANOMALY_ALL, streams.EVENTS)
    consume("on_rca", subjects.RCA_COMPLETED_ALL, streams.EVENTS)
    consume("on_prediction", subjects.PREDICTION_MADE_ALL, streams.EVENTS)
    # One consumer for every action subject: a proposal is folded before what became of it.
    consume("on_action", "action.>", streams.ACTIONS)
    consume("on_audit", subjects.AUDIT_ALL, streams.AUDIT)

    loop, consumer = _samples(model, dead, start=now - service.chart_window(settings.history_points))
    return Wiring(broker=broker, samples=loop, consumer=consumer)


def _samples(model: ReadModel, dead: DeadLetters, *, start: datetime) -> tuple[pull.Loop, ConsumerConfig]:
    """This replica's samples loop; its consumer starts at ``start`` (again: after the last seen)."""
    position = service.SamplesPosition(f"{SERVICE}-{uuid.uuid4().hex[:12]}", start=start)
    fold = pull.folding(
        dead, service=SERVICE, kind="metric_sample", event_type=MetricSample, add=model.apply_sample
    )

    async def on_samples(msgs: Sequence[Msg]) -> None:
        await fold(msgs)
        position.folded(msgs[-1].metadata.sequence.stream)

    # No acks, so no dead letters from the loop: a failed batch is logged and not redelivered.
    loop = pull.Loop(
        streams.TELEMETRY.name, position.name, on_samples, acks=False, recreate=position.consumer
    )
    return loop, position.consumer()

"""Wiring only: telemetry pulled from JetStream in batches, anomaly episodes published on the bus.

The telemetry consumers are batched nats-py pull loops (``common.pull``: why not faststream's);
publishing, dead letters and the broker's lifecycle stay with faststream. What a batch decides is
``service``'s; the durables each replica reads are ``consumers``'.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from faststream.nats import NatsBroker
from nats.aio.msg import Msg

from sentinai.common import pull, streams, subjects, telemetry
from sentinai.common.bus import MESSAGES_HANDLED, DeadLetters, build_broker, publish_event
from sentinai.common.events import AnomalyDetected, LogBatch, MetricSample
from sentinai.detector import service
from sentinai.detector.consumers import logs_durable, metrics_durable
from sentinai.detector.logic import Outcome
from sentinai.detector.service import Deps
from sentinai.detector.settings import DetectorSettings

SERVICE = "detector"


class BusPublisher:
    """The use cases' ``Publisher`` on the bus: an episode on its chain's detected or resolved subject."""

    def __init__(self, broker: NatsBroker) -> None:
        self.broker = broker

    async def anomaly(self, event: Outcome) -> None:
        detected = isinstance(event, AnomalyDetected)
        subject = (subjects.anomaly_detected if detected else subjects.anomaly_resolved)(event.chain_id)
        await publish_event(self.broker, subject, event, stream=streams.EVENTS)


@dataclass(frozen=True)
class Wiring:
    broker: NatsBroker
    on_metrics: pull.BatchHandler
    on_logs: pull.BatchHandler
    # The two telemetry loops of one detector process (their durables: ``consumers.prepare_consumers``).
    loops: list[pull.Loop]


def build(settings: DetectorSettings, deps: Deps) -> Wiring:
    broker = build_broker(settings)
    telemetry.instrument(broker, service=SERVICE)
    dead = DeadLetters(broker, service=SERVICE)
    publisher = BusPublisher(broker)

    @telemetry.timed(SERVICE, "metric_sample")
    async def on_metrics(msgs: Sequence[Msg]) -> None:
        outcomes: list[Outcome] = []
        for msg in msgs:
            sample = await dead.decode(MetricSample, subject=msg.subject, body=msg.data)
            if sample is not None:
                seq = _stream_seq(msg)
                outcomes += service.judge_sample(sample, deps, settings=settings, seq=seq)
        MESSAGES_HANDLED.labels(SERVICE, "metric_sample").inc(len(msgs))
        await service.flush(outcomes, deps, publisher=publisher)

    @telemetry.timed(SERVICE, "log_batch")
    async def on_logs(msgs: Sequence[Msg]) -> None:
        outcomes: list[Outcome] = []
        for msg in msgs:
            if not service.owns(msg.subject, settings=settings):
                continue
            batch = await dead.decode(LogBatch, subject=msg.subject, body=msg.data)
            if batch is not None:
                outcomes += service.judge_logs(batch, deps, settings=settings)
        MESSAGES_HANDLED.labels(SERVICE, "log_batch").inc(len(msgs))
        await service.flush(outcomes, deps, publisher=publisher)

    loops = [
        pull.Loop(streams.TELEMETRY.name, metrics_durable(settings), on_metrics, dead=dead),
        pull.Loop(streams.TELEMETRY.name, logs_durable(settings), on_logs, dead=dead),
    ]
    return Wiring(broker=broker, on_metrics=on_metrics, on_logs=on_logs, loops=loops)


def _stream_seq(msg: Msg) -> Callable[[], int]:
    """The message's stream sequence, read only when asked (parsing the metadata costs per message)."""
    return lambda: msg.metadata.sequence.stream

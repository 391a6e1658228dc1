"""Wiring only: telemetry pulled from JetStream in batches, anomaly episodes published on the bus.

The telemetry consumers are batched nats-py pull loops (``common.pull``: why not faststream's);
publishing, dead letters and the broker's lifecycle stay with faststream.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from faststream.nats import NatsBroker
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from prometheus_client import Counter

from sentinai.common import pull, streams, subjects, telemetry
from sentinai.common.bus import MESSAGES_HANDLED, DeadLetters, build_broker, publish_event
from sentinai.common.events import AnomalyDetected, LogBatch, MetricSample
from sentinai.detector import logic
from sentinai.detector.settings import DetectorSettings
from sentinai.detector.windows import DetectorState

SERVICE = "detector"
log = logging.getLogger(__name__)

ANOMALIES = Counter(
    "sentinai_detector_episodes_total", "Anomaly episodes opened and resolved", ["chain", "kind", "rule"]
)


@dataclass
class Replay:
    """Messages up to ``until_seq`` were judged by a previous instance: replay them into windows only."""

    until_seq: int = 0

    def covers(self, msg: Msg) -> bool:
        if self.until_seq == 0:
            return False
        if msg.metadata.sequence.stream <= self.until_seq:
            return True
        self.until_seq = 0
        return False


@dataclass
class Deps:
    state: DetectorState
    scorer: logic.Scorer
    replay: Replay = field(default_factory=Replay)
    # Decided but not yet acknowledged by JetStream; flushed first by the next batch after a failure.
    outbox: deque[logic.Outcome] = field(default_factory=deque)


@dataclass(frozen=True)
class Wiring:
    broker: NatsBroker
    on_metrics: pull.BatchHandler
    on_logs: pull.BatchHandler


def build(settings: DetectorSettings, deps: Deps) -> Wiring:
    broker = build_broker(settings)
    telemetry.instrument(broker, service=SERVICE)
    dead = DeadLetters(broker, service=SERVICE)

    async def publish(event: logic.Outcome) -> None:
        detected = isinstance(event, AnomalyDetected)
        subject = (subjects.anomaly_detected if detected else subjects.anomaly_resolved)(event.chain_id)
        await publish_event(broker, subject, event, stream=streams.EVENTS)
        ANOMALIES.labels(event.chain_id, "detected" if detected else "resolved", event.rule).inc()

    async def flush(outcomes: list[logic.Outcome]) -> None:
        """Publish a batch's outcomes concurrently: one ack round trip per batch, not per event.

        The publishes are started in order, so each request leaves in order; what fails stays in
        the outbox for the next batch and the error makes the pull loop nak this one.
        """
        # Taken out before awaiting: the other pull loop's flush must not publish them a second time.
        pending = [*deps.outbox, *outcomes]
        deps.outbox.clear()
        if not pending:
            return
        results = await asyncio.gather(*(publish(event) for event in pending), return_exceptions=True)
        deps.outbox.extend(e for e, r in zip(pending, results, strict=True) if isinstance(r, BaseException))
        for result in results:
            if isinstance(result, BaseException):
                raise result

    @telemetry.timed(SERVICE, "metric_sample")
    async def on_metrics(msgs: Sequence[Msg]) -> None:
        outcomes: list[logic.Outcome] = []
        for msg in msgs:
            sample = await dead.decode(MetricSample, subject=msg.subject, body=msg.data)
            if sample is not None:
                warmup = deps.replay.covers(msg)
                outcomes += logic.evaluate_sample(
                    deps.state, sample, settings=settings, scorer=deps.scorer, warmup=warmup
                )
        MESSAGES_HANDLED.labels(SERVICE, "metric_sample").inc(len(msgs))
        await flush(outcomes)

    @telemetry.timed(SERVICE, "log_batch")
    async def on_logs(msgs: Sequence[Msg]) -> None:
        outcomes: list[logic.Outcome] = []
        for msg in msgs:
            if not owns(msg.subject, settings=settings):
                continue
            batch = await dead.decode(LogBatch, subject=msg.subject, body=msg.data)
            if batch is not None:
                outcomes += logic.evaluate_logs(deps.state, batch, settings=settings)
        MESSAGES_HANDLED.labels(SERVICE, "log_batch").inc(len(msgs))
        await flush(outcomes)

    return Wiring(broker=broker, on_metrics=on_metrics, on_logs=on_logs)


# ------------------------------------------------------------------------------------- consumers


def metrics_durable(settings: DetectorSettings) -> str:
    if settings.partitioned:
        return f"{settings.durable_prefix}-p{settings.partition}"
    return f"{settings.durable_prefix}-metrics"


def logs_durable(settings: DetectorSettings) -> str:
    if settings.partitioned:
        return f"{settings.durable_prefix}-p{settings.partition}-logs"
    return f"{settings.durable_prefix}-logs"


def metrics_filter(settings: DetectorSettings) -> str:
    """This replica's samples: its partition of the stored form, or every sample when alone."""
    if settings.partitioned and settings.partition is not None:
        return subjects.metrics_raw_partition(settings.partition)
    return subjects.METRICS_RAW_ALL


def owns(subject: str, *, settings: DetectorSettings) -> bool:
    """Whether this replica judges the chain of ``subject``.

    Log batches are stored unpartitioned (a stream has one subject transform, spent on metrics), so
    every replica reads them and keeps its own chains by the same hash the server uses for metrics.
    """
    if not settings.partitioned:
        return True
    chain = subjects.chain_of(subject)
    try:
        return chain is not None and subjects.partition_of(chain, settings.partitions) == settings.partition
    except subjects.InvalidTokenError:
        return settings.partition == 0  # someone must dead-letter it; partition 0 does


def consumer_config(
    durable: str, subject: str, *, settings: DetectorSettings, start: datetime | None
) -> ConsumerConfig:
    """A durable pull consumer; a new one starts at ``start`` (recent history) or at new messages."""
    return ConsumerConfig(
        durable_name=durable,
        name=durable,
        filter_subject=subject,
        deliver_policy=DeliverPolicy.NEW if start is None else DeliverPolicy.BY_START_TIME,
        opt_start_time=start,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=30.0,
        max_ack_pending=max(20 * settings.batch_size, 1000),
    )


async def prepare_consumers(js: JetStreamContext, settings: DetectorSettings, *, now: datetime) -> int:
    """Create the durables; the metrics one is recreated at ``now - replay_s`` to rebuild the windows.

    Returns the stream sequence the previous metrics consumer had acknowledged: those messages are
    replayed into the windows without announcing anything again. History older than the replay span
    is skipped on purpose: judging stale telemetry would page someone about the past. The logs
    durable simply resumes; log episodes need no history beyond the quiet period.
    """
    name = metrics_durable(settings)
    try:
        info = await js.consumer_info(streams.TELEMETRY.name, name)
    except NotFoundError:
        floor = 0
    else:
        floor = info.ack_floor.stream_seq if info.ack_floor else 0
        await js.delete_consumer(streams.TELEMETRY.name, name)
    start = None if settings.replay_s <= 0 else now - timedelta(seconds=settings.replay_s)
    config = consumer_config(name, metrics_filter(settings), settings=settings, start=start)
    await js.add_consumer(streams.TELEMETRY.name, config=config)

    name = logs_durable(settings)
    try:
        await js.consumer_info(streams.TELEMETRY.name, name)
    except NotFoundError:
        start = now - timedelta(seconds=settings.log_quiet_s)
        config = consumer_config(name, subjects.LOGS_RAW_ALL, settings=settings, start=start)
        await js.add_consumer(streams.TELEMETRY.name, config=config)
    return floor


def loops(wiring: Wiring, settings: DetectorSettings) -> list[pull.Loop]:
    """The two telemetry loops of one detector process."""
    return [
        pull.Loop(streams.TELEMETRY.name, metrics_durable(settings), wiring.on_metrics),
        pull.Loop(streams.TELEMETRY.name, logs_durable(settings), wiring.on_logs),
    ]

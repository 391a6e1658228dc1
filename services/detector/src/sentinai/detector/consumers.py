"""The durables a detector replica reads: its partition of the samples, and the log lines.

A (re)started detector recreates its samples durable ``replay_s`` back, so its windows are rebuilt
from recent history before it judges anything new; the logs durable simply resumes.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from sentinai.common import streams, subjects
from sentinai.detector.settings import DetectorSettings


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

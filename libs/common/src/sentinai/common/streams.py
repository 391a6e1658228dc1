"""JetStream stream declarations and their idempotent creation.

Telemetry is short-lived (a restarted detector replays minutes, not days); events, actions and the
audit trail are the system of record and are kept long. Every stream has a duplicate window so a
publisher that retries with the same ``Nats-Msg-Id`` stores the message once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from faststream.nats import JStream
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig, SubjectTransform
from nats.js.errors import BadRequestError, NotFoundError

from sentinai.common import subjects

HOUR = 3600.0
DAY = 24 * HOUR


@dataclass(frozen=True, slots=True)
class StreamSpec:
    name: str
    subjects: tuple[str, ...]
    max_age_s: float
    max_bytes: int
    duplicate_window_s: float = 120.0
    # Only TELEMETRY: its metric samples are what detector partitions split by chain.
    partitionable: bool = False

    def ref(self) -> JStream:
        """The stream for a faststream subscriber, which must never (re)declare it.

        faststream declares a named stream with its own defaults and only the subscriber's subjects,
        which would silently drop our retention and subjects; ``ensure_streams`` owns the config.
        """
        return JStream(self.name, declare=False)

    def config(self, *, partitions: int = 1, replicas: int = 1) -> StreamConfig:
        transform = None
        if self.partitionable and partitions > 1:
            src, dest = subjects.metrics_raw_transform(partitions)
            transform = SubjectTransform(src=src, dest=dest)
        return StreamConfig(
            name=self.name,
            subjects=list(self.subjects),
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            discard=DiscardPolicy.OLD,
            max_age=self.max_age_s,
            max_bytes=self.max_bytes,
            duplicate_window=self.duplicate_window_s,
            subject_transform=transform,
            num_replicas=replicas,
        )


TELEMETRY = StreamSpec(
    name="TELEMETRY",
    subjects=(f"{subjects.METRICS_RAW}.>", f"{subjects.LOGS_RAW}.>"),
    max_age_s=2 * HOUR,
    max_bytes=2 * 1024**3,
    partitionable=True,
)
EVENTS = StreamSpec(
    name="EVENTS",
    subjects=(
        f"{subjects.ANOMALY_DETECTED}.>",
        f"{subjects.ANOMALY_RESOLVED}.>",
        f"{subjects.RCA_COMPLETED}.>",
        f"{subjects.INCIDENT_RESOLVED}.>",
        f"{subjects.PREDICTION_MADE}.>",
    ),
    max_age_s=14 * DAY,
    max_bytes=1024**3,
)
ACTIONS = StreamSpec(
    name="ACTIONS",
    subjects=(
        f"{subjects.ACTION_PROPOSED}.>",
        f"{subjects.ACTION_APPROVED}.>",
        f"{subjects.ACTION_EXECUTED}.>",
        f"{subjects.ACTION_COMMAND}.>",
        f"{subjects.ACTION_REQUESTED}.>",
    ),
    max_age_s=90 * DAY,
    max_bytes=1024**3,
)
AUDIT = StreamSpec(
    name="AUDIT",
    subjects=(f"{subjects.AUDIT}.>",),
    max_age_s=365 * DAY,
    max_bytes=2 * 1024**3,
)
DEAD_LETTER = StreamSpec(
    name="DEADLETTER",
    subjects=(subjects.DEAD_LETTER_ALL,),
    max_age_s=14 * DAY,
    max_bytes=256 * 1024**2,
)

ALL: tuple[StreamSpec, ...] = (TELEMETRY, EVENTS, ACTIONS, AUDIT, DEAD_LETTER)


_PARTITION = re.compile(r"\{\{\s*partition\((\d+),")


def partitions_of(config: StreamConfig) -> int:
    """The detector partition count an existing stream is configured for (1: not partitioned)."""
    transform = config.subject_transform
    found = _PARTITION.search(transform.dest or "") if transform is not None else None
    return int(found.group(1)) if found else 1


async def ensure_streams(
    js: JetStreamContext,
    specs: tuple[StreamSpec, ...] = ALL,
    *,
    partitions: int | None = None,
    replicas: int | None = None,
) -> None:
    """Create each stream, or bring an existing one to the declared config. Safe to call repeatedly.

    ``partitions`` is the detector partition count (``ServiceSettings.partitions``); ``None`` keeps
    whatever partitioning an existing stream has, so a caller that does not know it cannot undo it.
    ``replicas`` (``ServiceSettings.stream_replicas``) is how many JetStream servers hold each
    stream; ``None`` creates with 1 and keeps an existing stream's count, for the same reason.
    """
    for spec in specs:
        try:
            info = await js.stream_info(spec.name)
        except NotFoundError:
            try:
                await js.add_stream(spec.config(partitions=partitions or 1, replicas=replicas or 1))
            except BadRequestError as exc:
                # Another process won the race to create it; fall through to the update.
                if exc.err_code != 10058:  # stream name already in use
                    raise
            else:
                continue
            info = await js.stream_info(spec.name)
        current = partitions_of(info.config) if partitions is None else partitions
        copies = (info.config.num_replicas or 1) if replicas is None else replicas
        await js.update_stream(spec.config(partitions=current, replicas=copies))

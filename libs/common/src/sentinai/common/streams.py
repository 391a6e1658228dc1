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


class ProvisioningError(RuntimeError):
    """A stream or the KV bucket must be created or changed, and this NATS user may not do it."""


ADMIN_STEP = (
    "provision with the NATS admin user first: `python -m sentinai.common.natsauth provision` with "
    "SENTINAI_NATS_CREDS naming admin.creds (`sentinai up` does it itself; on Kubernetes the "
    "nats-provision Job, on compose the nats-provision service)"
)


def not_permitted(what: str, *, timeout_s: float) -> ProvisioningError:
    """The error for a JetStream change that got no answer: with per-service users, not permitted.

    nats-server drops a request its sender may not publish (and tells the client asynchronously),
    so a service without the right sees a timeout, not a refusal.
    """
    return ProvisioningError(
        f"{what}, and NATS gave no answer within {timeout_s:g}s: this service's NATS user may not "
        f"create or change streams (or the server is overloaded); {ADMIN_STEP}"
    )


def _seconds_differ(a: float | None, b: float | None) -> bool:
    return abs((a or 0.0) - (b or 0.0)) > 1e-3


def _transform(transform: SubjectTransform | None) -> tuple[str | None, str | None] | None:
    return None if transform is None else (transform.src, transform.dest)


def differences(wanted: StreamConfig, current: StreamConfig) -> list[str]:
    """The fields we declare in which ``current`` (as the server has it) differs from ``wanted``."""
    found = []
    if sorted(wanted.subjects or []) != sorted(current.subjects or []):
        found.append("subjects")
    for name in ("retention", "storage", "discard", "max_bytes"):
        if getattr(wanted, name) != getattr(current, name):
            found.append(name)
    for name in ("max_age", "duplicate_window"):
        if _seconds_differ(getattr(wanted, name), getattr(current, name)):
            found.append(name)
    if (wanted.num_replicas or 1) != (current.num_replicas or 1):
        found.append("num_replicas")
    want, have = wanted.subject_transform, current.subject_transform
    if _transform(want) != _transform(have):
        found.append("subject_transform")
    return found


async def ensure_streams(
    js: JetStreamContext,
    specs: tuple[StreamSpec, ...] = ALL,
    *,
    partitions: int | None = None,
    replicas: int | None = None,
) -> None:
    """Create each missing stream, or bring one that differs to the declared config; else change nothing.

    ``partitions`` is the detector partition count (``ServiceSettings.partitions``); ``None`` keeps
    whatever partitioning an existing stream has, so a caller that does not know it cannot undo it.
    ``replicas`` (``ServiceSettings.stream_replicas``) is how many JetStream servers hold each
    stream; ``None`` creates with 1 and keeps an existing stream's count, for the same reason.

    Only a stream that is missing or differs is written, so a service whose NATS user may only read
    stream info starts against streams the admin step made; if it needs a change it may not make,
    ``ProvisioningError`` names the stream, the change and that step.
    """
    timeout_s = js._timeout  # nats-py's request timeout for this context
    for spec in specs:
        try:
            info = await js.stream_info(spec.name)
        except NotFoundError:
            try:
                await js.add_stream(spec.config(partitions=partitions or 1, replicas=replicas or 1))
            except BadRequestError as exc:
                # Another process won the race to create it; compare with what it made.
                if exc.err_code != 10058:  # stream name already in use
                    raise
            except TimeoutError as exc:
                raise not_permitted(f"stream {spec.name} is missing", timeout_s=timeout_s) from exc
            else:
                continue
            info = await js.stream_info(spec.name)
        current = partitions_of(info.config) if partitions is None else partitions
        copies = (info.config.num_replicas or 1) if replicas is None else replicas
        wanted = spec.config(partitions=current, replicas=copies)
        changed = differences(wanted, info.config)
        if not changed:
            continue
        try:
            await js.update_stream(wanted)
        except TimeoutError as exc:
            what = f"stream {spec.name} differs from its declared config ({', '.join(changed)})"
            raise not_permitted(what, timeout_s=timeout_s) from exc

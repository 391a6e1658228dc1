"""Bus wiring for the api: fold every subject into the read model; send commands and requests.

Samples (most of the bus) come through a batched pull loop (``common.pull``) on this replica's own
consumer, unacknowledged (a restarted replica rebuilds its view anyway) and dropped by the server a
while after the replica is gone; the rest through faststream's ephemeral consumers.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from faststream.nats import ConsumerConfig, DeliverPolicy, NatsBroker, NatsMessage
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from nats.js.api import AckPolicy
from prometheus_client import Counter

from sentinai.api.readmodel import ReadModel
from sentinai.api.settings import ApiSettings
from sentinai.common import pull, streams, subjects, telemetry
from sentinai.common.bus import MESSAGES_HANDLED, DeadLetters, build_broker, publish_event
from sentinai.common.decisions import (
    ActionApproved,
    ActionCommand,
    ActionExecuted,
    ActionProposed,
    ActionRequested,
    ActionVerdict,
    AuditRecorded,
    PredictionMade,
    RcaCompleted,
)
from sentinai.common.events import (
    AnomalyDetected,
    AnomalyResolved,
    MalformedEventError,
    MetricSample,
    decode,
    utcnow,
)

SERVICE = "api"
log = logging.getLogger(__name__)

VERDICTS = Counter(
    "sentinai_api_verdicts_total",
    "The planner's verdicts on the api's writes by code ('none': no answer in time)",
    ["code"],
)


class BusCommands:
    """Publishes the api's only writes and waits for the planner's verdict on each.

    The planner answers on core NATS (``subjects.action_verdict``), never stored: the api subscribes
    before it publishes, on the connection it publishes on, so the answer cannot come first. No
    answer within ``timeout_s`` is not a failure: the write is on the stream and will be judged.
    """

    def __init__(self, broker: NatsBroker, *, timeout_s: float) -> None:
        self.broker = broker
        self.timeout_s = timeout_s

    async def command(self, cmd: ActionCommand) -> ActionVerdict | None:
        return await self._send(subjects.action_command(cmd.chain_id), cmd)

    async def request(self, req: ActionRequested) -> ActionVerdict | None:
        return await self._send(subjects.action_requested(req.chain_id), req)

    async def _send(self, subject: str, event: ActionCommand | ActionRequested) -> ActionVerdict | None:
        sub = await self.broker.connection.subscribe(subjects.action_verdict(event.chain_id, event.event_id))
        try:
            await publish_event(self.broker, subject, event, stream=streams.ACTIONS)
            verdict = await _verdict(sub, answers=event.event_id, timeout_s=self.timeout_s)
        finally:
            # A lost connection takes the subscription with it; the publish's error is the one to see.
            with contextlib.suppress(NatsError):
                await sub.unsubscribe()
        VERDICTS.labels("none" if verdict is None else verdict.code).inc()
        return verdict


async def _verdict(sub: Subscription, *, answers: str, timeout_s: float) -> ActionVerdict | None:
    """The first verdict on ``sub`` that answers ``answers``, or ``None`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        try:
            msg = await sub.next_msg(timeout=left)
        except TimeoutError:
            return None
        try:
            verdict = decode(ActionVerdict, msg.data)
        except MalformedEventError as exc:
            log.warning("unreadable verdict ignored", extra={"subject": msg.subject, "reason": str(exc)})
            continue
        if verdict.answers == answers:
            return verdict
    return None


@dataclass(frozen=True)
class Wiring:
    broker: NatsBroker
    # The samples' pull loop and the consumer it reads (created before the loop starts).
    samples: pull.Loop
    consumer: ConsumerConfig


# A replica's samples consumer outlives a lost connection this long before the server drops it.
SAMPLES_INACTIVE_S = 600.0


def build(settings: ApiSettings, model: ReadModel, *, clock: Callable[[], datetime] = utcnow) -> Wiring:
    """Each api replica keeps its own ephemeral consumers: the read model is per process.

    A starting replica replays recent history (charts: the telemetry window; decisions and audit:
    ``replay_hours``) so its views are whole before the first request, whatever its age.
    """
    broker = build_broker(settings)
    telemetry.instrument(broker, service=SERVICE)
    dead = DeadLetters(broker, service=SERVICE)
    now = clock()

    def since(delta: timedelta) -> ConsumerConfig:
        return ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=now - delta)

    # One chart point per op-geth poll: the history the dashboard opens with.
    telemetry_window = timedelta(seconds=settings.history_points * 2)
    decisions_window = timedelta(hours=settings.replay_hours)

    @broker.subscriber(subjects.ANOMALY_ALL, stream=streams.EVENTS.ref(), config=since(decisions_window))
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

    @broker.subscriber(
        subjects.RCA_COMPLETED_ALL, stream=streams.EVENTS.ref(), config=since(decisions_window)
    )
    async def on_rca(msg: NatsMessage) -> None:
        rca = await dead.decode(RcaCompleted, subject=msg.raw_message.subject, body=msg.body)
        if rca is not None:
            model.apply_rca(rca)
            MESSAGES_HANDLED.labels(SERVICE, "rca_completed").inc()

    @broker.subscriber(
        subjects.PREDICTION_MADE_ALL, stream=streams.EVENTS.ref(), config=since(decisions_window)
    )
    async def on_prediction(msg: NatsMessage) -> None:
        prediction = await dead.decode(PredictionMade, subject=msg.raw_message.subject, body=msg.body)
        if prediction is not None:
            model.apply_prediction(prediction)
            MESSAGES_HANDLED.labels(SERVICE, "prediction_made").inc()

    @broker.subscriber("action.>", stream=streams.ACTIONS.ref(), config=since(decisions_window))
    async def on_action(msg: NatsMessage) -> None:
        subject = msg.raw_message.subject
        kind = subject.rsplit(".", 1)[0]
        if kind == subjects.ACTION_PROPOSED:
            proposal = await dead.decode(ActionProposed, subject=subject, body=msg.body)
            if proposal is not None:
                model.apply_proposed(proposal)
        elif kind == subjects.ACTION_APPROVED:
            approved = await dead.decode(ActionApproved, subject=subject, body=msg.body)
            if approved is not None:
                model.apply_action(approved)
        elif kind == subjects.ACTION_EXECUTED:
            executed = await dead.decode(ActionExecuted, subject=subject, body=msg.body)
            if executed is not None:
                model.apply_action(executed)
        # Commands and requests are the planner's input; their effects arrive as audit records.

    @broker.subscriber(subjects.AUDIT_ALL, stream=streams.AUDIT.ref(), config=since(decisions_window))
    async def on_audit(msg: NatsMessage) -> None:
        record = await dead.decode(AuditRecorded, subject=msg.raw_message.subject, body=msg.body)
        if record is not None:
            model.apply_audit(record)

    loop, consumer = _samples(model, dead, start=now - telemetry_window)
    return Wiring(broker=broker, samples=loop, consumer=consumer)


def _samples(model: ReadModel, dead: DeadLetters, *, start: datetime) -> tuple[pull.Loop, ConsumerConfig]:
    """This replica's samples loop; its consumer starts at ``start`` (again: after the last seen)."""
    name = f"{SERVICE}-{uuid.uuid4().hex[:12]}"
    seen = _Position()

    fold = pull.folding(
        dead, service=SERVICE, kind="metric_sample", event_type=MetricSample, add=model.apply_sample
    )

    async def on_samples(msgs: Sequence[Msg]) -> None:
        await fold(msgs)
        seen.stream_seq = msgs[-1].metadata.sequence.stream

    def samples_consumer() -> ConsumerConfig:
        """From the chart window back at start; after the last sample seen if the server dropped it."""
        config = ConsumerConfig(
            name=name,
            filter_subject=subjects.METRICS_RAW_ANY,
            ack_policy=AckPolicy.NONE,
            inactive_threshold=SAMPLES_INACTIVE_S,
        )
        if seen.stream_seq:
            config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
            config.opt_start_seq = seen.stream_seq + 1
        else:
            config.deliver_policy = DeliverPolicy.BY_START_TIME
            config.opt_start_time = start
        return config

    loop = pull.Loop(streams.TELEMETRY.name, name, on_samples, acks=False, recreate=samples_consumer)
    return loop, samples_consumer()


@dataclass
class _Position:
    stream_seq: int = 0

"""Wiring only: incident, diagnosis and action events in; notifications out.

The consumers are durable and named by the config's prefix, so every api replica shares them and
each event is notified once. Openings and resolutions share one consumer with a single message in
flight, so a page is always triggered before it is resolved, whichever replica sends it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from faststream import AckPolicy
from faststream.nats import DeliverPolicy, NatsBroker, NatsMessage, PullSub
from nats.js.api import ConsumerConfig

from sentinai.api.notify import notices
from sentinai.api.notify.config import NotifyConfig
from sentinai.api.notify.delivery import Notifier
from sentinai.common import streams, subjects
from sentinai.common.bus import MESSAGES_HANDLED, DeadLetters
from sentinai.common.decisions import ActionExecuted, ActionProposed, RcaCompleted
from sentinai.common.events import AnomalyDetected, AnomalyResolved, MalformedEventError, decode, utcnow

SERVICE = "api-notify"
# JetStream redelivers a message not acknowledged in time; a delivery still retrying must not be
# handed to another replica and sent twice.
_ACK_MARGIN_S = 30.0


@dataclass
class Notifications:
    """The running notifier's handle: ``aclose`` releases its HTTP connections at shutdown."""

    client: httpx.AsyncClient

    async def aclose(self) -> None:
        await self.client.aclose()


def subscribe(
    broker: NatsBroker,
    *,
    config: NotifyConfig,
    dead: DeadLetters,
    client_factory: Callable[[], httpx.AsyncClient] = httpx.AsyncClient,
    clock: Callable[[], datetime] = utcnow,
) -> Notifications:
    """Register the notification consumers on ``broker`` (before it starts)."""
    client = client_factory()
    notifier = Notifier(config, client=client, dead=dead, clock=clock)
    episodes = notices.EpisodeSeverities()
    prefix = config.durable_prefix
    one = PullSub(batch_size=1, timeout=1.0)
    now = clock()
    # A durable created for the first time starts a little in the past (an event published while
    # the api started is not missed); an existing one resumes where it was; history is never re-sent.
    since = now - timedelta(seconds=config.first_start_replay_s)
    ack_wait = config.delivery.worst_case_s() + _ACK_MARGIN_S

    def durable(*, in_flight: int | None = None) -> ConsumerConfig:
        return ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_TIME,
            opt_start_time=since,
            ack_wait=ack_wait,
            max_ack_pending=in_flight,
        )

    # Each replica reads recent openings itself (an ephemeral consumer) to route every resolution
    # like its opening, whichever replica notified that.
    @broker.subscriber(
        subjects.ANOMALY_DETECTED_ALL,
        stream=streams.EVENTS.ref(),
        config=ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_TIME,
            opt_start_time=now - timedelta(seconds=config.episode_memory_s),
        ),
    )
    async def on_opening(msg: NatsMessage) -> None:
        # A malformed opening is dead-lettered once, by the shared consumer below, not per replica.
        with contextlib.suppress(MalformedEventError):
            episodes.opened(decode(AnomalyDetected, msg.body))

    @broker.subscriber(
        subjects.ANOMALY_ALL,
        stream=streams.EVENTS.ref(),
        durable=f"{prefix}-anomalies",
        config=durable(in_flight=1),
        pull_sub=one,
        ack_policy=AckPolicy.NACK_ON_ERROR,
    )
    async def on_anomaly(msg: NatsMessage) -> None:
        subject = msg.raw_message.subject
        if subject.startswith(subjects.ANOMALY_RESOLVED + "."):
            resolved = await dead.decode(AnomalyResolved, subject=subject, body=msg.body)
            if resolved is None:
                return
            notice = notices.from_resolved(resolved, severity=episodes.of(resolved.episode_id))
        else:
            anomaly = await dead.decode(AnomalyDetected, subject=subject, body=msg.body)
            if anomaly is None:
                return
            episodes.opened(anomaly)
            notice = notices.from_anomaly(anomaly)
        await notifier.notify(notice, subject=subject, body=msg.body)
        MESSAGES_HANDLED.labels(SERVICE, notice.kind).inc()

    @broker.subscriber(
        subjects.RCA_COMPLETED_ALL,
        stream=streams.EVENTS.ref(),
        durable=f"{prefix}-rca",
        config=durable(),
        pull_sub=one,
        ack_policy=AckPolicy.NACK_ON_ERROR,
    )
    async def on_rca(msg: NatsMessage) -> None:
        subject = msg.raw_message.subject
        rca = await dead.decode(RcaCompleted, subject=subject, body=msg.body)
        if rca is not None:
            await notifier.notify(notices.from_rca(rca), subject=subject, body=msg.body)
            MESSAGES_HANDLED.labels(SERVICE, "rca_completed").inc()

    @broker.subscriber(
        subjects.ACTION_PROPOSED_ALL,
        stream=streams.ACTIONS.ref(),
        durable=f"{prefix}-proposals",
        config=durable(),
        pull_sub=one,
        ack_policy=AckPolicy.NACK_ON_ERROR,
    )
    async def on_proposal(msg: NatsMessage) -> None:
        subject = msg.raw_message.subject
        proposal = await dead.decode(ActionProposed, subject=subject, body=msg.body)
        notice = None if proposal is None else notices.from_proposal(proposal)
        if notice is not None:
            await notifier.notify(notice, subject=subject, body=msg.body)
            MESSAGES_HANDLED.labels(SERVICE, "approval_needed").inc()

    @broker.subscriber(
        subjects.ACTION_EXECUTED_ALL,
        stream=streams.ACTIONS.ref(),
        durable=f"{prefix}-executed",
        config=durable(),
        pull_sub=one,
        ack_policy=AckPolicy.NACK_ON_ERROR,
    )
    async def on_executed(msg: NatsMessage) -> None:
        subject = msg.raw_message.subject
        executed = await dead.decode(ActionExecuted, subject=subject, body=msg.body)
        if executed is not None:
            await notifier.notify(notices.from_executed(executed), subject=subject, body=msg.body)
            MESSAGES_HANDLED.labels(SERVICE, "action_executed").inc()

    return Notifications(client=client)

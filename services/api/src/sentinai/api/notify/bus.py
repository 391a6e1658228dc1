"""Wiring only: incident, diagnosis and action events in; notifications out (``service.Notify``).

The consumers are durable and named by the config's prefix, so every api replica shares them and
each event is notified once. Openings and resolutions share one consumer with a single message in
flight, so a page is always triggered before it is resolved, whichever replica sends it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from faststream.nats import DeliverPolicy, NatsBroker, NatsMessage
from nats.js.api import ConsumerConfig

from sentinai.api.notify.config import NotifyConfig
from sentinai.api.notify.delivery import HttpSender
from sentinai.api.notify.service import Notifier, Notify, anomaly_type
from sentinai.common import streams, subjects
from sentinai.common.bus import DeadLetters
from sentinai.common.consumer import durable_consumer
from sentinai.common.decisions import ActionExecuted, ActionProposed, RcaCompleted
from sentinai.common.events import Event, utcnow
from sentinai.common.streams import StreamSpec

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
    notify = Notify(Notifier(config, sender=HttpSender(client), dead=dead, clock=clock))
    now = clock()
    # A durable created for the first time starts a little in the past (an event published while
    # the api started is not missed); an existing one resumes where it was; history is never re-sent.
    since = now - timedelta(seconds=config.first_start_replay_s)
    ack_wait = config.delivery.worst_case_s() + _ACK_MARGIN_S

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
        notify.opening_seen(msg.body)

    def consume(
        name: str,
        subject: str,
        stream: StreamSpec,
        durable: str,
        event_type: type[Event] | Callable[[str], type[Event] | None],
        *,
        in_flight: int | None = None,
    ) -> None:
        durable_consumer(
            broker,
            dead,
            service=SERVICE,
            name=name,
            subject=subject,
            stream=stream,
            durable=f"{config.durable_prefix}-{durable}",
            event_type=event_type,
            handle_received=notify.handle,
            # One config object per consumer: faststream writes the durable's name into it.
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_TIME,
                opt_start_time=since,
                ack_wait=ack_wait,
                max_ack_pending=in_flight,
            ),
        )

    consume("on_anomaly", subjects.ANOMALY_ALL, streams.EVENTS, "anomalies", anomaly_type, in_flight=1)
    consume("on_rca", subjects.RCA_COMPLETED_ALL, streams.EVENTS, "rca", RcaCompleted)
    consume("on_proposal", subjects.ACTION_PROPOSED_ALL, streams.ACTIONS, "proposals", ActionProposed)
    consume("on_executed", subjects.ACTION_EXECUTED_ALL, streams.ACTIONS, "executed", ActionExecuted)
    return Notifications(client=client)

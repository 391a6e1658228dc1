"""Wiring only: diagnoses, forecasts, requests and commands in; proposals, approvals, audit records out.

Every consumer goes through ``common.consumer.durable_consumer``: one message per fetch, handled
before the next, so the read-modify-write of a ledger or of the audit model has a single writer
(run one planner per deployment); its policy redelivers an input while the store or the bus is
away. The use cases are ``service.Planner``'s; each request and command is answered, once recorded,
with an ``ActionVerdict`` on core NATS.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from faststream.nats import DeliverPolicy, NatsBroker
from nats.js.api import ConsumerConfig

from sentinai.common import streams, subjects, telemetry
from sentinai.common.bus import BrokerPublisher, DeadLetters, build_broker
from sentinai.common.consumer import durable_consumer
from sentinai.common.decisions import (
    ActionCommand,
    ActionExecuted,
    ActionRequested,
    AuditRecorded,
    IncidentResolved,
    PredictionMade,
    RcaCompleted,
)
from sentinai.common.events import Event
from sentinai.common.streams import StreamSpec
from sentinai.planner.service import Deps, Planner
from sentinai.planner.settings import PlannerSettings

__all__ = ["SERVICE", "Deps", "Planner", "build"]

SERVICE = "planner"
E = TypeVar("E", bound=Event)
log = logging.getLogger(__name__)


def build(settings: PlannerSettings, deps: Deps) -> tuple[NatsBroker, Planner]:
    broker = build_broker(settings)
    telemetry.instrument(broker, service=SERVICE)
    dead = DeadLetters(broker, service=SERVICE)
    planner = Planner(BrokerPublisher(broker), deps, settings=settings)
    prefix = settings.durable_prefix
    # faststream creates the consumers after its start returns: a durable created for the first time
    # starts a little in the past, so an event published while the planner started is not missed.
    # An existing durable resumes where it was; old history is never planned again.
    since = deps.clock() - timedelta(seconds=settings.first_start_replay_s)
    recent = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=since)

    def consume(
        name: str,
        event_type: type[E],
        handle: Callable[[E], Awaitable[None]],
        *,
        subject: str,
        stream: StreamSpec,
        durable: str,
        config: ConsumerConfig = recent,
    ) -> None:
        durable_consumer(
            broker,
            dead,
            service=SERVICE,
            name=name,
            subject=subject,
            stream=stream,
            durable=f"{prefix}-{durable}",
            config=config,
            event_type=event_type,
            handle=handle,
        )

    events, actions = streams.EVENTS, streams.ACTIONS
    consume(
        "on_rca",
        RcaCompleted,
        planner.on_rca,
        subject=subjects.RCA_COMPLETED_ALL,
        stream=events,
        durable="rca",
    )
    consume(
        "on_prediction",
        PredictionMade,
        planner.on_prediction,
        subject=subjects.PREDICTION_MADE_ALL,
        stream=events,
        durable="predictions",
    )
    consume(
        "on_incident_resolved",
        IncidentResolved,
        planner.on_incident_resolved,
        subject=subjects.INCIDENT_RESOLVED_ALL,
        stream=events,
        durable="incidents",
    )
    consume(
        "on_command",
        ActionCommand,
        planner.on_command,
        subject=subjects.ACTION_COMMAND_ALL,
        stream=actions,
        durable="commands",
    )
    consume(
        "on_request",
        ActionRequested,
        planner.on_request,
        subject=subjects.ACTION_REQUESTED_ALL,
        stream=actions,
        durable="requests",
    )
    consume(
        "on_executed",
        ActionExecuted,
        planner.on_executed,
        subject=subjects.ACTION_EXECUTED_ALL,
        stream=actions,
        durable="executed",
    )
    # The audit read model is rebuilt from the whole stream by a new durable.
    consume(
        "on_audit",
        AuditRecorded,
        planner.on_audit,
        subject=subjects.AUDIT_ALL,
        stream=streams.AUDIT,
        durable="audit",
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
    )
    return broker, planner

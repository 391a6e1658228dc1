"""The api's bus-side use cases: which events fold into the read model, and where its replays start.

Plain functions and one small class over (event, read model); ``bus`` only decodes and calls them.
Each replica keeps its own read model, so a starting one replays recent history: the chart window
of samples, ``replay_hours`` of decisions and audit. A replica's samples consumer, if the server
dropped it, comes back after the last sample folded in.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from sentinai.api.readmodel import ReadModel
from sentinai.common import payloads, subjects
from sentinai.common.decisions import (
    ActionApproved,
    ActionExecuted,
    ActionProposed,
    AuditRecorded,
    PredictionMade,
    RcaCompleted,
)
from sentinai.common.events import AnomalyDetected, AnomalyResolved, Event

# Commands and requests are the planner's input, not folded: their effects arrive as audit records.
FOLDED: tuple[type[Event], ...] = (
    AnomalyDetected,
    AnomalyResolved,
    RcaCompleted,
    PredictionMade,
    ActionProposed,
    ActionApproved,
    ActionExecuted,
    AuditRecorded,
)

# A replica's samples consumer outlives a lost connection this long before the server drops it.
SAMPLES_INACTIVE_S = 600.0


def folded_type(subject: str) -> type[Event] | None:
    """The event ``subject`` carries if the read model folds it; ``None``: acknowledged unread."""
    family = payloads.family_of(subject)
    return next((model for model in FOLDED if family is not None and family.model is model), None)


def fold(model: ReadModel, event: Event) -> None:
    """Fold one decoded event into the read model (samples: ``ReadModel.apply_sample``)."""
    match event:
        case AnomalyDetected():
            model.apply_anomaly(event)
        case AnomalyResolved():
            model.apply_resolved(event)
        case RcaCompleted():
            model.apply_rca(event)
        case PredictionMade():
            model.apply_prediction(event)
        case ActionProposed():
            model.apply_proposed(event)
        case ActionApproved() | ActionExecuted():
            model.apply_action(event)
        case AuditRecorded():
            model.apply_audit(event)


def chart_window(history_points: int) -> timedelta:
    """The samples a starting replica replays: one chart point per op-geth poll (2 s)."""
    return timedelta(seconds=history_points * 2)


class SamplesPosition:
    """This replica's samples consumer: where it starts, and the last sample folded in."""

    def __init__(self, name: str, *, start: datetime) -> None:
        self.name = name
        self.start = start
        self.stream_seq = 0

    def folded(self, stream_seq: int) -> None:
        self.stream_seq = stream_seq

    def consumer(self) -> ConsumerConfig:
        """From the chart window back at start; after the last sample seen if the server dropped it."""
        config = ConsumerConfig(
            name=self.name,
            filter_subject=subjects.METRICS_RAW_ANY,
            ack_policy=AckPolicy.NONE,
            inactive_threshold=SAMPLES_INACTIVE_S,
        )
        if self.stream_seq:
            config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
            config.opt_start_seq = self.stream_seq + 1
        else:
            config.deliver_policy = DeliverPolicy.BY_START_TIME
            config.opt_start_time = self.start
        return config

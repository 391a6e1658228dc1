"""Which event model travels on each subject family, and in which stream: the bus contract as one table.

The AsyncAPI document and the ``kind`` label of the bus metrics both read it, so a new subject
family is declared here once, next to its payload.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import BaseModel

from sentinai.common import streams, subjects
from sentinai.common.decisions import (
    ActionApproved,
    ActionCommand,
    ActionExecuted,
    ActionProposed,
    ActionRequested,
    ActionVerdict,
    AuditRecorded,
    IncidentResolved,
    PredictionMade,
    RcaCompleted,
)
from sentinai.common.events import AnomalyDetected, AnomalyResolved, DeadLetter, LogBatch, MetricSample
from sentinai.common.streams import StreamSpec

CHAIN = "chainId"
COMPONENT = "component"
SERVICE = "service"
ANSWERS = "answers"


@dataclass(frozen=True, slots=True)
class Family:
    """Subjects ``<prefix>.<param>…``: one payload model, one stream."""

    prefix: str
    model: type[BaseModel]
    stream: StreamSpec | None  # None: core NATS only, never stored
    params: tuple[str, ...]
    summary: str

    @property
    def kind(self) -> str:
        """The model name in snake case (``MetricSample`` → ``metric_sample``): a metric label."""
        return re.sub(r"(?<!^)(?=[A-Z])", "_", self.model.__name__).lower()

    @property
    def address(self) -> str:
        """The subject with its parameters named: ``metrics.raw.{chainId}.{component}``."""
        return ".".join((self.prefix, *(f"{{{p}}}" for p in self.params)))

    @property
    def wildcard(self) -> str:
        """Every subject of the family: ``metrics.raw.*.*``."""
        return ".".join((self.prefix, *("*" for _ in self.params)))

    def matched_by(self, pattern: str) -> bool:
        """Whether a subscription to the NATS ``pattern`` (``*``, ``>``) receives subjects of this family."""
        want = self.wildcard.split(".")
        got = pattern.split(".")
        for i, token in enumerate(got):
            if token == ">":
                return len(want) > i
            if i >= len(want) or ("*" not in (token, want[i]) and token != want[i]):
                return False
        return len(got) == len(want)

    def carries(self, subject: str) -> bool:
        parts = subject.split(".")
        prefix = self.prefix.split(".")
        return parts[: len(prefix)] == prefix and len(parts) == len(prefix) + len(self.params)


FAMILIES: tuple[Family, ...] = (
    Family(
        subjects.METRICS_RAW,
        MetricSample,
        streams.TELEMETRY,
        (CHAIN, COMPONENT),
        "One poll of one component: its RPC or Kubernetes metrics, published even when the target is down.",
    ),
    Family(
        subjects.LOGS_RAW,
        LogBatch,
        streams.TELEMETRY,
        (CHAIN, COMPONENT),
        "The log lines a component printed since the previous poll.",
    ),
    Family(
        subjects.ANOMALY_DETECTED,
        AnomalyDetected,
        streams.EVENTS,
        (CHAIN,),
        "An anomaly episode opened: the metric, its z-score or rule, severity and evidence.",
    ),
    Family(
        subjects.ANOMALY_RESOLVED,
        AnomalyResolved,
        streams.EVENTS,
        (CHAIN,),
        "An anomaly episode closed, with how long it lasted.",
    ),
    Family(
        subjects.RCA_COMPLETED,
        RcaCompleted,
        streams.EVENTS,
        (CHAIN,),
        "A diagnosis of an incident: root cause, hypotheses, evidence, risk and action plan.",
    ),
    Family(
        subjects.INCIDENT_RESOLVED,
        IncidentResolved,
        streams.EVENTS,
        (CHAIN,),
        "An incident is over: the planner withdraws its remedies still awaiting approval.",
    ),
    Family(
        subjects.PREDICTION_MADE,
        PredictionMade,
        streams.EVENTS,
        (CHAIN,),
        "A forecast of op-geth's CPU need with the vCPU it recommends.",
    ),
    Family(
        subjects.ACTION_PROPOSED,
        ActionProposed,
        streams.ACTIONS,
        (CHAIN,),
        "A remediation the planner proposes, with its policy tier and approval status.",
    ),
    Family(
        subjects.ACTION_APPROVED,
        ActionApproved,
        streams.ACTIONS,
        (CHAIN,),
        "A proposal approved (automatically or by people): the executor's work order.",
    ),
    Family(
        subjects.ACTION_EXECUTED,
        ActionExecuted,
        streams.ACTIONS,
        (CHAIN,),
        "What executing an approved action did: dry run, success, rollback, failure or refusal.",
    ),
    Family(
        subjects.ACTION_COMMAND,
        ActionCommand,
        streams.ACTIONS,
        (CHAIN,),
        "A person's or agent's approve/reject of a pending proposal; only the planner judges it.",
    ),
    Family(
        subjects.ACTION_REQUESTED,
        ActionRequested,
        streams.ACTIONS,
        (CHAIN,),
        "A person's or agent's request for a catalogue action; only the planner judges it.",
    ),
    Family(
        subjects.AUDIT,
        AuditRecorded,
        streams.AUDIT,
        (CHAIN,),
        "One line of the audit trail: who did what to which action, and why.",
    ),
    Family(
        subjects.DEAD_LETTER,
        DeadLetter,
        streams.DEAD_LETTER,
        (SERVICE,),
        "A message a service could not use, kept with the reason and the payload.",
    ),
)


# Core NATS families: published without JetStream, stored nowhere (a reply to one waiting caller).
CORE_FAMILIES: tuple[Family, ...] = (
    Family(
        subjects.ACTION_VERDICT,
        ActionVerdict,
        None,
        (CHAIN, ANSWERS),
        "The planner's verdict on one command or request, for the api waiting on it; never stored.",
    ),
)


def family_of(subject: str) -> Family | None:
    """The family a concrete subject belongs to, or ``None`` for a subject outside the contract."""
    return next((f for f in (*FAMILIES, *CORE_FAMILIES) if f.carries(subject)), None)


def kind_of(subject: str) -> str:
    family = family_of(subject)
    return family.kind if family is not None else "other"

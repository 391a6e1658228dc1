"""Events of the decision loop: diagnosis, forecast, proposal, approval, execution, audit.

Same conventions as ``events``: frozen, camelCase JSON, ids for idempotency and correlation. An
action travels with its whole typed body, so every service sees exactly what was decided.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from sentinai.common.actions import Action
from sentinai.common.events import Component, Event, Severity, derived_id
from sentinai.common.incidents import RootCauseClass
from sentinai.common.policy import Tier

RcaEngine = Literal["rules", "llm", "both"]
Trend = Literal["stable", "rising", "falling"]
Outcome = Literal["dry_run", "succeeded", "rolled_back", "failed", "refused"]
CommandKind = Literal["approve", "reject"]
AuditKind = Literal[
    "rca_completed",
    "proposed",
    "approved",
    "rejected",
    "refused",
    "expired",
    "withdrawn",
    "executing",
    "dry_run",
    "verified",
    "verification_failed",
    "rolled_back",
    "succeeded",
    "failed",
]


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True, extra="ignore")


class Hypothesis(_Part):
    """One candidate root cause, scored 0..1, with the evidence quoted as seen."""

    cause: RootCauseClass
    score: float = Field(ge=0, le=1)
    summary: str
    affected_components: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()


class Corroboration(_Part):
    """How far the diagnosis meets its class's evidence rule (the incident catalogue's, ``incidents.py``).

    A single sample, poll or log line can open an anomaly and an RCA card, never an action: the
    planner proposes only when ``proposal_met`` and lets a tier auto-execute only when ``auto_met``.
    """

    polls: int = Field(ge=0)  # polls the class's strongest signal has held
    required_polls: int = Field(ge=0)
    held_s: float = Field(default=0.0, ge=0)  # how long that signal has held, in event time
    required_s: float = Field(default=0.0, ge=0)
    signals: tuple[str, ...] = ()  # the independent signals seen (metric, log marker, …)
    required_signals: int = Field(default=1, ge=0)
    proposal_met: bool
    auto_met: bool
    status: str  # for people: "corroborated: …" or "waiting for corroboration: 1 of 3 polls"


class RcaCompleted(Event):
    """The seed's RCA shape ``{rootCause, affectedComponents, riskLevel, actionPlan}`` plus its grounds."""

    episode_id: str
    anomaly_event_id: str
    root_cause: str
    root_cause_class: RootCauseClass
    affected_components: tuple[str, ...]
    risk_level: Severity
    action_plan: str
    hypotheses: tuple[Hypothesis, ...] = ()
    evidence: tuple[str, ...] = ()
    confidence: float = Field(ge=0, le=1)
    engine: RcaEngine
    model: str | None = None
    latency_ms: float = Field(ge=0)
    cost_usd: float = Field(default=0.0, ge=0)
    # None on events from before evidence rules existed: treated as not corroborated.
    corroboration: Corroboration | None = None


def incident_resolved_id(chain_id: str, incident_id: str) -> str:
    """The one event id of an incident's resolution: republished, it is stored and handled once."""
    return derived_id("incident-resolved", chain_id, incident_id)


class IncidentResolved(Event):
    """An incident is over: the remedies of it still awaiting approval are needed no more.

    ``incident_id`` is the id ``RcaCompleted.episode_id`` and ``ActionProposed.episode_id`` carry.
    Without an explicit ``eventId`` the id follows from the chain and the incident
    (``incident_resolved_id``), so every publisher of the same resolution publishes the same event.
    """

    incident_id: str = Field(min_length=1)
    resolved_at: AwareDatetime
    reason: str = Field(min_length=1, max_length=2000)

    @model_validator(mode="before")
    @classmethod
    def _derived_event_id(cls, data: Any) -> Any:
        if isinstance(data, dict) and "eventId" not in data and "event_id" not in data:
            chain = data.get("chainId", data.get("chain_id"))
            incident = data.get("incidentId", data.get("incident_id"))
            if isinstance(chain, str) and isinstance(incident, str):
                return {**data, "event_id": incident_resolved_id(chain, incident)}
        return data


class PredictionMade(Event):
    """The seed's prediction shape ``{predictedVCpu, confidence, trend, keyFactors, reasoning}``."""

    component: Component = "op-geth"
    # The seed spells it ``predictedVCpu``; the camel-case generator would say ``predictedVcpu``.
    predicted_vcpu: float = Field(gt=0, alias="predictedVCpu")
    current_vcpu: float | None = Field(default=None, alias="currentVCpu")
    confidence: float = Field(ge=0, le=100)
    trend: Trend
    key_factors: tuple[str, ...] = ()
    reasoning: str
    horizon_s: float = Field(gt=0)
    forecast_cores: float = Field(ge=0)
    upper_bound_cores: float = Field(ge=0)
    model: str


class VerifySpec(_Part):
    """How the executor knows an action worked: a metric of a component back in range in time."""

    component: Component
    metric: str
    below: float | None = None
    above: float | None = None
    window_s: float = Field(default=120.0, gt=0)


class ActionProposed(Event):
    action_id: str
    action: Action
    tier: Tier
    approvals_required: int = Field(ge=0)
    cooldown_s: float = Field(ge=0)
    status: Literal["pending_approval", "auto_approved", "refused"]
    refusal: str | None = None
    reason: str
    proposed_by: str
    incident: RootCauseClass | None = None
    episode_id: str | None = None
    expires_at: AwareDatetime
    verify: VerifySpec | None = None


class ActionApproved(Event):
    action_id: str
    action: Action
    tier: Tier
    approvers: tuple[str, ...] = ()
    cooldown_s: float = Field(ge=0)
    incident: RootCauseClass | None = None
    episode_id: str | None = None
    reason: str
    verify: VerifySpec | None = None


class ActionExecuted(Event):
    action_id: str
    action: Action
    outcome: Outcome
    detail: str
    dry_run: bool
    started_at: AwareDatetime
    finished_at: AwareDatetime
    timings_ms: dict[str, float] = Field(default_factory=dict)
    previous: dict[str, Any] | None = None


class ActionCommand(Event):
    """A human's (or agent's) decision on a pending proposal; planner is the only consumer."""

    action_id: str
    command: CommandKind
    by: str = Field(min_length=1, max_length=128)
    reason: str = Field(default="", max_length=2000)


class ActionRequested(Event):
    """A person's or agent's request for a catalogue action; only the planner judges it.

    The request's ``event_id`` is the basis of the proposal's action id, so the requester knows the
    id at once (``requested_action_id``) and a retried request proposes nothing new.
    """

    action: Action
    requested_by: str = Field(min_length=1, max_length=128)
    reason: str = Field(min_length=1, max_length=2000)
    via: Literal["rest", "mcp", "cli"]
    # Made by an AI agent (whatever the channel): the policy may demand a human's approval for it.
    agent: bool = False


VerdictKind = Literal["approve", "reject", "request"]
# Why a verdict went the way it did; the api maps ``unknown_action`` to 404 and any other refusal to 409.
VerdictCode = Literal[
    "ok",  # accepted: approved, waiting for more approvals, rejected, proposed or auto-approved
    "proposer",  # the proposer (or requester) tried to approve its own action
    "same_principal",  # this principal already approved; a second approval by it does not count
    "expired",
    "withdrawn",
    "not_pending",  # already approved, rejected, executed, auto-approved or refused
    "policy",  # the policy refuses the action (forbidden, or its approvals cannot lift the refusal)
    "cooldown",  # the executor still holds the component in its cooldown
    "unknown_action",
]


class ActionVerdict(Event):
    """The planner's answer to one ``ActionCommand`` or ``ActionRequested`` (``answers`` is its event id).

    Published on core NATS at ``subjects.action_verdict(chain, answers)`` after the planner has
    recorded its decision, so a caller that subscribed before sending learns the outcome at once.
    Nothing is stored: the records and the audit trail stay the system of record.
    """

    answers: str = Field(min_length=1, max_length=64)
    action_id: str
    kind: VerdictKind
    accepted: bool
    code: VerdictCode
    # The action's state after the planner judged: "waiting" (more approvals needed), "approved",
    # "rejected", "refused", "expired", "withdrawn", "pending_approval", "auto_approved".
    status: str
    reason: str
    approvals: tuple[str, ...] = ()
    approvals_required: int = Field(default=0, ge=0)


def action_id(chain_id: str, basis: str | None, action: Action) -> str:
    """Deterministic: the same action for the same basis (episode, request) of a chain gets the same id.

    An action id, not an event id (those are ``events.derived_id``): people read and type it in
    approvals and the api's routes, so it keeps its short ``act-`` form.
    """
    body = action.model_dump_json(by_alias=True)
    digest = hashlib.sha256(f"{chain_id}|{basis or ''}|{body}".encode()).hexdigest()
    return f"act-{digest[:16]}"


def requested_action_id(request: ActionRequested) -> str:
    return action_id(request.chain_id, request.event_id, request.action)


class AuditRecorded(Event):
    kind: AuditKind
    actor: str
    action_id: str | None = None
    summary: str
    reasoning: str = ""
    outcome: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


ActionEvent = ActionProposed | ActionApproved | ActionExecuted

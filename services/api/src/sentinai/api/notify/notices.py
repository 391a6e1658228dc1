"""Bus events as notices: one channel-neutral shape (title, text, fields, evidence) per event.

Pure functions of the event; the only state is ``EpisodeSeverities``, which remembers how severe each
open incident was so its resolution is routed like its opening.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sentinai.api.notify.config import EventKind
from sentinai.common.decisions import ActionExecuted, ActionProposed, Outcome, RcaCompleted
from sentinai.common.events import AnomalyDetected, AnomalyResolved, Event, Severity, derived_id

# An action's outcome has no severity of its own: a failure needs eyes, a success is news.
OUTCOME_SEVERITY: dict[Outcome, Severity] = {
    "failed": "high",
    "rolled_back": "high",
    "refused": "medium",
    "succeeded": "low",
    "dry_run": "low",
}
EVIDENCE_KEEP = 5
_DEDUP_KEY_MAX = 255  # PagerDuty's limit


@dataclass(frozen=True, slots=True)
class Notice:
    kind: EventKind
    event_id: str
    correlation_id: str
    chain_id: str
    # None only for a resolution whose opening this process never saw.
    severity: Severity | None
    title: str
    text: str
    fields: tuple[tuple[str, str], ...]
    evidence: tuple[str, ...]
    occurred_at: datetime
    # What the event says is affected: a component, or "sentinai" for decisions.
    source: str
    # The event as it travelled on the bus (camelCase JSON), for webhooks and details.
    event: dict[str, Any]
    episode_id: str | None = None
    action_id: str | None = None


def incident_key(chain_id: str, episode_id: str) -> str:
    """The same key for an incident's opening and its resolution (PagerDuty's ``dedup_key``)."""
    key = f"{chain_id}:{episode_id}"
    if len(key) <= _DEDUP_KEY_MAX:
        return key
    return f"{chain_id}:{derived_id('pagerduty-incident', episode_id)}"


def _json(event: Event) -> dict[str, Any]:
    return event.model_dump(mode="json", by_alias=True)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def from_anomaly(event: AnomalyDetected) -> Notice:
    return Notice(
        kind="anomaly_detected",
        event_id=event.event_id,
        correlation_id=event.correlation_id,
        chain_id=event.chain_id,
        severity=event.severity,
        title=f"Incident on {event.chain_id}: {event.component} {event.metric}",
        text=event.description,
        fields=(
            ("Chain", event.chain_id),
            ("Severity", event.severity),
            ("Component", event.component),
            ("Metric", f"{event.metric} = {event.value:g} (z {event.z_score:+.1f}, {event.direction})"),
            ("Rule", event.rule),
        ),
        evidence=event.evidence[:EVIDENCE_KEEP],
        occurred_at=event.occurred_at,
        source=event.component,
        event=_json(event),
        episode_id=event.episode_id,
    )


def from_resolved(event: AnomalyResolved, *, severity: Severity | None) -> Notice:
    return Notice(
        kind="anomaly_resolved",
        event_id=event.event_id,
        correlation_id=event.correlation_id,
        chain_id=event.chain_id,
        severity=severity,
        title=f"Resolved on {event.chain_id}: {event.component} {event.metric}",
        text=f"{event.description} (lasted {_duration(event.duration_s)})",
        fields=(
            ("Chain", event.chain_id),
            ("Severity", severity or "unknown"),
            ("Component", event.component),
            ("Duration", _duration(event.duration_s)),
        ),
        evidence=(),
        occurred_at=event.occurred_at,
        source=event.component,
        event=_json(event),
        episode_id=event.episode_id,
    )


def from_rca(event: RcaCompleted) -> Notice:
    evidence = event.evidence or next((h.evidence for h in event.hypotheses), ())
    return Notice(
        kind="rca_completed",
        event_id=event.event_id,
        correlation_id=event.correlation_id,
        chain_id=event.chain_id,
        severity=event.risk_level,
        title=f"Root cause on {event.chain_id}: {event.root_cause_class.replace('_', ' ')}",
        text=event.root_cause,
        fields=(
            ("Chain", event.chain_id),
            ("Severity", event.risk_level),
            ("Root cause", event.root_cause_class),
            ("Confidence", f"{event.confidence:.0%} ({event.engine})"),
            ("Affected", ", ".join(event.affected_components) or "-"),
            ("Plan", event.action_plan),
        ),
        evidence=evidence[:EVIDENCE_KEEP],
        occurred_at=event.occurred_at,
        source=(event.affected_components or ("sentinai",))[0],
        event=_json(event),
        episode_id=event.episode_id,
    )


def from_proposal(event: ActionProposed) -> Notice | None:
    """A notice for a proposal waiting on a human; automatic and refused ones need nobody."""
    if event.status != "pending_approval":
        return None
    approvals = "approval" if event.approvals_required == 1 else "approvals"
    return Notice(
        kind="approval_needed",
        event_id=event.event_id,
        correlation_id=event.correlation_id,
        chain_id=event.chain_id,
        severity=event.tier,
        title=f"Approval needed on {event.chain_id}: {event.action.summary()}",
        text=event.reason,
        fields=(
            ("Chain", event.chain_id),
            ("Severity", event.tier),
            ("Root cause", event.incident or "-"),
            ("Needs", f"{event.approvals_required} {approvals}"),
            ("Proposed by", event.proposed_by),
            ("Expires", event.expires_at.strftime("%Y-%m-%d %H:%M:%S UTC")),
        ),
        evidence=(),
        occurred_at=event.occurred_at,
        source=event.action.target() or "sentinai",
        event=_json(event),
        episode_id=event.episode_id,
        action_id=event.action_id,
    )


def from_executed(event: ActionExecuted) -> Notice:
    severity = OUTCOME_SEVERITY[event.outcome]
    took = (event.finished_at - event.started_at).total_seconds()
    return Notice(
        kind="action_executed",
        event_id=event.event_id,
        correlation_id=event.correlation_id,
        chain_id=event.chain_id,
        severity=severity,
        title=f"Action {event.outcome.replace('_', ' ')} on {event.chain_id}: {event.action.summary()}",
        text=event.detail,
        fields=(
            ("Chain", event.chain_id),
            ("Severity", severity),
            ("Outcome", event.outcome),
            ("Dry run", "yes" if event.dry_run else "no"),
            ("Took", _duration(took)),
        ),
        evidence=(),
        occurred_at=event.occurred_at,
        source=event.action.target() or "sentinai",
        event=_json(event),
        action_id=event.action_id,
    )


class EpisodeSeverities:
    """Severity of the most recent ``capacity`` incident openings, oldest forgotten first."""

    __slots__ = ("_seen", "capacity")

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[str, Severity] = OrderedDict()

    def opened(self, event: AnomalyDetected) -> None:
        self._seen[event.episode_id] = event.severity
        self._seen.move_to_end(event.episode_id)
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)

    def of(self, episode_id: str) -> Severity | None:
        return self._seen.get(episode_id)

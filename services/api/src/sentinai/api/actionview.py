"""The api's view of the decision loop: proposals, approvals, executions and the audit trail.

Folded from ``action.*`` and ``audit.*`` events; a proposal's status moves forward only, so a late
or redelivered event never takes it back (an approval arriving after its execution changes nothing).
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, get_args

from sentinai.common.decisions import ActionApproved, ActionExecuted, ActionProposed, AuditKind, AuditRecorded

Status = Literal[
    "pending_approval",
    "auto_approved",
    "refused",
    "approved",
    "rejected",
    "expired",
    "withdrawn",
    "executing",
    "dry_run",
    "succeeded",
    "rolled_back",
    "failed",
]
PENDING: frozenset[str] = frozenset({"pending_approval"})
# How far along a proposal is; a status never moves to a lower rank.
_RANK: dict[str, int] = {
    "pending_approval": 0,
    "auto_approved": 1,
    "refused": 5,
    "approved": 2,
    "rejected": 5,
    "expired": 5,
    "withdrawn": 5,
    "executing": 3,
    "dry_run": 4,
    "succeeded": 4,
    "rolled_back": 4,
    "failed": 4,
}


@dataclass
class ActionRecord:
    proposal: ActionProposed
    status: Status
    approvals: dict[str, datetime] = field(default_factory=dict)
    executed: ActionExecuted | None = None
    decided_by: str | None = None
    decision_reason: str = ""
    # The planner's latest refusal of a command on this action (a proposer's own approval, a
    # second approval by the same person, a cooldown …), from the audit trail.
    refusal: str | None = None
    refused_at: datetime | None = None

    def advance(self, status: Status) -> bool:
        if _RANK[status] < _RANK[self.status] or status == self.status:
            return False
        self.status = status
        return True

    def view(self) -> dict[str, Any]:
        p = self.proposal
        outcome = None
        if self.executed is not None:
            e = self.executed
            outcome = {
                "outcome": e.outcome,
                "detail": e.detail,
                "dryRun": e.dry_run,
                "startedAt": e.started_at.isoformat(),
                "finishedAt": e.finished_at.isoformat(),
            }
        return {
            "actionId": p.action_id,
            "chainId": p.chain_id,
            "action": p.action.model_dump(mode="json", by_alias=True),
            "summary": p.action.summary(),
            "tier": p.tier,
            "status": self.status,
            "approvalsRequired": p.approvals_required,
            "approvals": [{"by": by, "at": at.isoformat()} for by, at in self.approvals.items()],
            "proposedBy": p.proposed_by,
            "reason": p.reason,
            "refusal": self.refusal if self.refusal is not None else p.refusal,
            "incident": p.incident,
            "episodeId": p.episode_id,
            "proposedAt": p.occurred_at.isoformat(),
            "expiresAt": p.expires_at.isoformat(),
            "decidedBy": self.decided_by,
            "decisionReason": self.decision_reason,
            "outcome": outcome,
        }


# An action's records in the order its life runs (``AuditKind`` is declared in that order); two with
# the same timestamp (an auto-approval is proposed and approved in one instant) sort by it, not by id.
_LIFECYCLE: dict[str, int] = {kind: rank for rank, kind in enumerate(get_args(AuditKind))}


def _audit_key(record: AuditRecorded) -> tuple[datetime, int, str]:
    return (record.occurred_at, _LIFECYCLE.get(record.kind, len(_LIFECYCLE)), record.event_id)


class ActionBook:
    """Proposals by id (the newest ``keep``) and the audit trail (the newest ``keep_audit``)."""

    def __init__(self, *, keep: int, keep_audit: int) -> None:
        self._keep = keep
        self._keep_audit = keep_audit
        self._actions: OrderedDict[str, ActionRecord] = OrderedDict()
        # Executions and approvals may arrive before their proposal (separate consumers).
        self._early: dict[str, list[ActionApproved | ActionExecuted | AuditRecorded]] = {}
        self._audit: list[AuditRecorded] = []  # oldest first, sorted by (occurredAt, eventId)
        self._audit_ids: set[str] = set()

    # ------------------------------------------------------------------------------------ folding

    def apply_proposed(self, proposal: ActionProposed) -> ActionRecord | None:
        known = self._actions.get(proposal.action_id)
        if known is not None:
            # The planner publishes a waiting proposal again as automatic once a later diagnosis
            # meets the evidence for it (an upgrade); any other repeat changes nothing.
            if known.status in PENDING and proposal.status == "auto_approved":
                known.proposal = proposal
                known.advance("auto_approved")
                return known
            return None
        record = ActionRecord(proposal, proposal.status)
        self._actions[proposal.action_id] = record
        if len(self._actions) > self._keep:
            self._actions.popitem(last=False)
        for event in self._early.pop(proposal.action_id, []):
            self._fold(record, event)
        return record

    def apply(self, event: ActionApproved | ActionExecuted) -> ActionRecord | None:
        record = self._actions.get(event.action_id)
        if record is None:
            self._park(event.action_id, event)
            return None
        return record if self._fold(record, event) else None

    def apply_audit(self, audit: AuditRecorded) -> tuple[bool, ActionRecord | None]:
        """Whether the record is new to the trail, and the proposal it changed (if any)."""
        if audit.event_id in self._audit_ids:
            return False, None
        self._audit_ids.add(audit.event_id)
        bisect.insort(self._audit, audit, key=_audit_key)
        if len(self._audit) > self._keep_audit:
            self._audit_ids.discard(self._audit.pop(0).event_id)
        changed = None
        if audit.action_id is not None:
            record = self._actions.get(audit.action_id)
            if record is None:
                self._park(audit.action_id, audit)
            elif self._fold(record, audit):
                changed = record
        return True, changed

    def _park(self, action_id: str, event: ActionApproved | ActionExecuted | AuditRecorded) -> None:
        if len(self._early) < self._keep:
            self._early.setdefault(action_id, []).append(event)

    @staticmethod
    def _fold(record: ActionRecord, event: ActionApproved | ActionExecuted | AuditRecorded) -> bool:
        if isinstance(event, ActionApproved):
            for by in event.approvers:
                record.approvals.setdefault(by, event.occurred_at)
            return record.advance("approved") or bool(event.approvers)
        if isinstance(event, ActionExecuted):
            record.executed = event
            return record.advance(event.outcome)
        kind = event.kind
        if kind == "approved" and event.actor != "planner":
            record.approvals.setdefault(event.actor, event.occurred_at)
            if event.outcome == "approved":
                record.decided_by = event.actor
                record.decision_reason = event.reasoning
                record.advance("approved")
            return True
        if kind in ("rejected", "expired", "withdrawn"):
            record.decided_by = event.actor
            record.decision_reason = event.reasoning
            return record.advance(kind)
        if kind == "executing":
            return record.advance("executing")
        if kind == "refused":
            # Audit records may arrive out of order (replays, separate consumers): the newest wins.
            if record.refused_at is not None and event.occurred_at < record.refused_at:
                return False
            record.refusal = event.reasoning or event.outcome or "refused"
            record.refused_at = event.occurred_at
            return True
        return False

    # ------------------------------------------------------------------------------------ reading

    def get(self, action_id: str) -> ActionRecord | None:
        return self._actions.get(action_id)

    def records(
        self, *, chain: str | None, status: Literal["pending", "history", "all"]
    ) -> list[ActionRecord]:
        found = [
            r
            for r in reversed(self._actions.values())
            if (chain is None or r.proposal.chain_id == chain)
            and (status == "all" or (status == "pending") == (r.status in PENDING))
        ]
        found.sort(key=lambda r: r.proposal.occurred_at, reverse=True)
        return found

    def pending_count(self, chain: str | None = None) -> int:
        return sum(
            1
            for r in self._actions.values()
            if r.status in PENDING and (chain is None or r.proposal.chain_id == chain)
        )

    def of_episode(self, episode_id: str) -> list[ActionRecord]:
        return [r for r in self._actions.values() if r.proposal.episode_id == episode_id]

    def audit_page(self, *, chain: str | None, offset: int, limit: int) -> tuple[list[AuditRecorded], int]:
        """Newest first; ``total`` counts every record that matches ``chain``."""
        matching = [a for a in reversed(self._audit) if chain is None or a.chain_id == chain]
        return matching[offset : offset + limit], len(matching)

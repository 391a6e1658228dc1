"""One attempt at an approved action, and the events that tell how it went (``ActionExecuted``, audits)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sentinai.common.decisions import ActionApproved, ActionExecuted, AuditKind, AuditRecorded, Outcome
from sentinai.common.events import derived_id
from sentinai.executor.effects import Keeper
from sentinai.executor.ports import Clock

ACTOR = "executor"


@dataclass
class Result:
    executed: ActionExecuted
    audits: list[AuditRecorded] = field(default_factory=list)


def event_id(action_id: str, what: str) -> str:
    """Deterministic, so the events of one action keep their ids however often they are published."""
    return derived_id(ACTOR, action_id, what)


def audit(
    approved: ActionApproved,
    kind: AuditKind,
    summary: str,
    *,
    outcome: str | None = None,
    details: Mapping[str, Any] | None = None,
    key: str | None = None,
) -> AuditRecorded:
    return AuditRecorded(
        event_id=event_id(approved.action_id, f"audit/{key or kind}"),
        correlation_id=approved.correlation_id,
        chain_id=approved.chain_id,
        kind=kind,
        actor=ACTOR,
        action_id=approved.action_id,
        summary=summary,
        reasoning=approved.reason,
        outcome=outcome,
        details=dict(details or {}),
    )


@dataclass(frozen=True)
class Attempt:
    """``approved`` being carried out now: its effect record's keeper, when it started, the clock."""

    approved: ActionApproved
    keeper: Keeper
    started: datetime
    clock: Clock

    def ms_since(self, began: float) -> float:
        """Milliseconds since ``began`` (a ``clock.monotonic()`` reading), to 0.1 ms."""
        return round((self.clock.monotonic() - began) * 1000, 1)

    def result(
        self,
        outcome: Outcome,
        detail: str,
        *,
        audits: list[tuple[AuditKind, str]],
        timings: dict[str, float] | None = None,
        previous: dict[str, object] | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> Result:
        """The attempt's ``ActionExecuted``, finished now, and its audit records (same outcome, details)."""
        approved = self.approved
        finished = self.clock.now()
        total = round((finished - self.started).total_seconds() * 1000, 1)
        executed = ActionExecuted(
            event_id=event_id(approved.action_id, "executed"),
            correlation_id=approved.correlation_id,
            chain_id=approved.chain_id,
            action_id=approved.action_id,
            action=approved.action,
            outcome=outcome,
            detail=detail,
            dry_run=outcome == "dry_run",
            started_at=self.started,
            finished_at=finished,
            timings_ms={**(timings or {}), "total": total},
            previous=previous,
        )
        return Result(
            executed=executed,
            audits=[
                audit(approved, kind, summary, outcome=outcome, details=details) for kind, summary in audits
            ],
        )

"""Pure: the planner's audit records of proposals and commands, and the recent-audit read model."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sentinai.common.decisions import ActionCommand, ActionProposed, AuditKind, AuditRecorded
from sentinai.common.events import derived_id
from sentinai.planner.commands import CommandOutcome

AUDIT_KEEP = 100


def audit_event(
    kind: AuditKind,
    proposal: ActionProposed,
    *,
    actor: str,
    now: datetime,
    summary: str,
    outcome: str | None = None,
    reasoning: str = "",
    key: str = "",
) -> AuditRecorded:
    """An audit record of ``proposal``; ``key`` separates records of one kind (e.g. each approver)."""
    return AuditRecorded(
        event_id=derived_id(f"audit-{kind}", proposal.action_id, key),
        correlation_id=proposal.correlation_id,
        occurred_at=now,
        chain_id=proposal.chain_id,
        kind=kind,
        actor=actor,
        action_id=proposal.action_id,
        summary=summary,
        reasoning=reasoning,
        outcome=outcome,
        details={
            "action": proposal.action.model_dump(mode="json", by_alias=True),
            "tier": proposal.tier,
            "incident": proposal.incident,
            "episodeId": proposal.episode_id,
        },
    )


def command_audit(
    proposal: ActionProposed, cmd: ActionCommand, outcome: CommandOutcome, *, now: datetime
) -> AuditRecorded:
    """The audit record of a command that did not complete an approval: waiting, rejected or refused.

    A waiting approval is keyed by its approver, a refusal by its command: each is recorded once.
    """
    summary = proposal.action.summary()
    if outcome.status == "waiting":
        return audit_event(
            "approved",
            proposal,
            actor=cmd.by,
            now=now,
            summary=summary,
            outcome="waiting",
            reasoning=outcome.why,
            key=cmd.by,
        )
    if outcome.status == "rejected":
        return audit_event(
            "rejected",
            proposal,
            actor=cmd.by,
            now=now,
            summary=summary,
            outcome="rejected",
            reasoning=outcome.why,
        )
    return audit_event(
        "refused",
        proposal,
        actor=cmd.by,
        now=now,
        summary=summary,
        outcome=f"{cmd.command} refused",
        reasoning=outcome.why,
        key=cmd.event_id,
    )


def unknown_action_refused(cmd: ActionCommand, *, now: datetime, why: str) -> AuditRecorded:
    """The audit record of a command for an action the planner never proposed."""
    return AuditRecorded(
        event_id=derived_id("audit-refused", cmd.event_id),
        correlation_id=cmd.correlation_id,
        occurred_at=now,
        chain_id=cmd.chain_id,
        kind="refused",
        actor=cmd.by,
        action_id=cmd.action_id,
        summary=f"{cmd.command} of unknown action {cmd.action_id}",
        outcome=f"{cmd.command} refused",
        reasoning=why,
    )


def fold_audit(
    recent: Sequence[AuditRecorded], event: AuditRecorded, *, keep: int = AUDIT_KEEP
) -> list[AuditRecorded] | None:
    """The read model with ``event`` added (newest first, ``keep`` long), or None if it changes nothing."""
    if any(e.event_id == event.event_id for e in recent):
        return None
    # Stable sort with the new record first: of records stamped alike, the later arrival is newer.
    merged = sorted([event, *recent], key=lambda e: e.occurred_at, reverse=True)[:keep]
    return None if event not in merged else merged

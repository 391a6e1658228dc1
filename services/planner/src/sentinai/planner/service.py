"""The planner's use cases over its ports: a publisher, its records (the state store), a clock, the policy.

Each ``on_*`` method handles one input event end to end: read the records, decide (``logic``),
publish, record. Every event published has an id derived from the action id (or the command's),
so an input redelivered after a crash republishes identical events that JetStream and the readers
deduplicate; what was published is recorded only afterwards. A store or bus outage raises: the
consumer's policy hands the input back for a later delivery.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from prometheus_client import Counter

from sentinai.common import streams, subjects
from sentinai.common.decisions import (
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
from sentinai.common.events import Event, utcnow
from sentinai.common.policy import Policy
from sentinai.common.state import StateStore
from sentinai.common.streams import StreamSpec
from sentinai.planner import cooldowns, logic
from sentinai.planner.records import Ledger, Records
from sentinai.planner.settings import PlannerSettings

log = logging.getLogger(__name__)

PROPOSALS = Counter("sentinai_planner_proposals_total", "Proposals published", ["chain", "status", "tier"])
DECISIONS = Counter("sentinai_planner_commands_total", "Command outcomes", ["chain", "outcome"])
VERDICTS = Counter(
    "sentinai_planner_verdicts_total",
    "Verdicts sent to the senders of commands and requests",
    ["kind", "code"],
)
VERDICTS_UNSENT = Counter(
    "sentinai_planner_verdicts_unsent_total", "Verdicts that could not be published (the sender times out)"
)
REPLAYS = Counter("sentinai_planner_replays_total", "Inputs whose proposals were already published")
LATE = Counter(
    "sentinai_planner_late_diagnoses_total", "Diagnoses of incidents already resolved: nothing proposed"
)


class Publisher(Protocol):
    """Where the planner's events go."""

    async def publish(self, subject: str, event: Event, *, stream: StreamSpec) -> None:
        """To JetStream ``stream``, acknowledged, deduplicated by the event id."""

    async def publish_core(self, subject: str, event: Event) -> None:
        """On core NATS, stored nowhere (a verdict for the sender waiting on it)."""


@dataclass
class Deps:
    policy: Policy
    memory: logic.ScalingMemory = field(default_factory=logic.ScalingMemory)
    clock: Callable[[], datetime] = utcnow
    # Opened at startup, once the broker's connection exists (NATS KV shares it).
    store: StateStore | None = None
    _records: Records | None = field(default=None, init=False, repr=False)

    @property
    def records(self) -> Records:
        if self.store is None:
            raise RuntimeError("the planner's state store is not open yet")
        if self._records is None or self._records.store is not self.store:
            # The planner writes every pending.* key, so it may keep its view of them in memory.
            self._records = Records(self.store, sole_writer=True)
        return self._records


class Planner:
    """Every use case of the planner; the consumers and the expiry timer share one instance."""

    def __init__(self, publisher: Publisher, deps: Deps, *, settings: PlannerSettings) -> None:
        self.publisher = publisher
        self.deps = deps
        self.settings = settings
        # Each consumer is a single writer, but they run side by side: a proposal's record is read,
        # decided on and written by one of them at a time, so an approval and a withdrawal (or an
        # expiry, or an upgrade) of the same proposal never interleave.
        self.deciding = asyncio.Lock()

    # ------------------------------------------------------------------------------------- inputs

    async def on_rca(self, rca: RcaCompleted) -> None:
        """Propose the remedies of a diagnosis, unless its incident is over already."""
        deps, settings = self.deps, self.settings
        now = deps.clock()
        if await deps.records.is_resolved(rca.chain_id, rca.episode_id):
            LATE.inc()
            return
        proposals = logic.plan_rca(
            rca,
            policy=deps.policy,
            now=now,
            block_time_s=settings.block_time_s,
            rules=settings.chain_rules,
            current_vcpu=deps.memory.current(rca.chain_id),
            min_confidence=settings.min_rca_confidence,
            min_notify_confidence=settings.min_notify_confidence,
            cooldowns=await deps.records.cooldowns(rca.chain_id),
        )
        for proposal in logic.admit_scaling(proposals, deps.memory, now=now):
            await self.propose(proposal)

    async def on_prediction(self, pred: PredictionMade) -> None:
        """Propose the CPU step a forecast calls for, if any."""
        deps, settings = self.deps, self.settings
        for proposal in logic.plan_prediction(
            pred,
            policy=deps.policy,
            now=deps.clock(),
            state=deps.memory,
            min_confidence=settings.min_prediction_confidence,
            sustain_s=settings.scale_down_sustain_s,
            partway_sustain_s=settings.scale_down_partway_sustain_s,
            action_price_core_h=settings.scale_action_price_core_h,
            lull_memory_s=settings.scale_lull_memory_s,
            cooldowns=await deps.records.cooldowns(pred.chain_id),
        ):
            await self.propose(proposal)

    async def on_request(self, request: ActionRequested) -> None:
        """Propose what a person or agent asked for (``logic.plan_request``), then answer its sender."""
        deps = self.deps
        proposal = logic.plan_request(
            request,
            policy=deps.policy,
            now=deps.clock(),
            block_time_s=self.settings.block_time_s,
            rules=self.settings.chain_rules,
            cooldowns=await deps.records.cooldowns(request.chain_id),
        )
        recorded = await self.propose(proposal)
        ledger = await deps.records.ledger(recorded.action_id)
        verdict = logic.request_verdict(
            request,
            recorded,
            policy=deps.policy,
            now=deps.clock(),
            decision=ledger.decision,
            why=ledger.why,
            approvals=ledger.approvers(),
        )
        await self.answer(verdict)

    async def on_executed(self, executed: ActionExecuted) -> None:
        """Remember a scale that took effect and mirror the executor's cooldown lock."""
        deps = self.deps
        logic.record_executed(executed, deps.memory)
        mine = await deps.records.proposal(executed.action_id)
        cooldown = cooldowns.cooldown_after(executed, policy=deps.policy, proposal=mine)
        if cooldown is not None:
            await deps.records.save_cooldown(executed.chain_id, cooldown)

    async def on_command(self, cmd: ActionCommand) -> None:
        """Decide ``cmd``, record and audit the outcome, then answer its sender with a verdict."""
        async with self.deciding:
            outcome = await self._command(cmd)
        await self.answer(logic.command_verdict(cmd, outcome, now=self.deps.clock()))

    async def on_incident_resolved(self, event: IncidentResolved) -> None:
        """An incident that is over needs its remedies no more: withdraw those still waiting.

        The incident is remembered first, so a diagnosis of it handled later proposes nothing. Each
        withdrawal is audited before it is recorded: a redelivery in between finds it still
        pending and publishes the same, deduplicated, audit record again.
        """
        async with self.deciding:
            await self._withdraw(event)

    async def on_audit(self, record: AuditRecorded) -> None:
        """Fold an audit record into the recent-audit read model."""
        records = self.deps.records
        merged = logic.fold_audit(await records.recent_audit(), record)
        if merged is not None:
            await records.save_recent_audit(merged)

    async def expire_due(self) -> int:
        """Expire every pending proposal past its deadline; returns how many."""
        async with self.deciding:
            records = self.deps.records
            now = self.deps.clock()
            count = 0
            for proposal in await records.pending():
                ledger = await records.ledger(proposal.action_id)
                if logic.expired(proposal, ledger.decision, now=now):
                    await self.expire(proposal, now=now, why="no decision before the proposal expired")
                    count += 1
            return count

    # -------------------------------------------------------------------------------------- steps

    async def propose(self, proposal: ActionProposed) -> ActionProposed:
        """Publish a proposal once (plus its auto approval) and record it; a replay is a no-op.

        The same action id again, now allowed to run by itself while the first still waits, is an
        upgrade (``logic.upgrade``) rather than a replay. Returns the proposal as recorded.
        """
        async with self.deciding:
            return await self._propose(proposal)

    async def _propose(self, proposal: ActionProposed) -> ActionProposed:
        records = self.deps.records
        existing = await records.proposal(proposal.action_id)
        if existing is not None:
            ledger = await records.ledger(proposal.action_id)
            upgraded = logic.upgrade(existing, ledger.decision, proposal)
            if upgraded is None:
                REPLAYS.inc()
                return existing
            await self.upgrade(upgraded)
            return upgraded
        now = proposal.occurred_at
        subject = subjects.action_proposed(proposal.chain_id)
        await self.publisher.publish(subject, proposal, stream=streams.ACTIONS)
        refused = proposal.status == "refused"
        record = logic.audit_event(
            "refused" if refused else "proposed",
            proposal,
            actor="planner" if refused else proposal.proposed_by,
            now=now,
            summary=f"{proposal.action.summary()} [{proposal.tier}]",
            outcome=proposal.status,
            reasoning=(proposal.refusal or "") if refused else proposal.reason,
        )
        await self.audit(record)
        if proposal.status == "auto_approved":
            await self.approve(proposal, (), now=now, actor="planner", why=f"{proposal.tier} tier: automatic")
        await records.add(proposal)
        PROPOSALS.labels(proposal.chain_id, proposal.status, proposal.tier).inc()
        return proposal

    async def upgrade(self, proposal: ActionProposed) -> None:
        """Publish a waiting proposal again as automatic, approve it, and record it so.

        Published before recorded, with ids of their own: a redelivery in between finds the proposal
        still waiting and publishes the same, deduplicated, events again.
        """
        subject = subjects.action_proposed(proposal.chain_id)
        await self.publisher.publish(subject, proposal, stream=streams.ACTIONS)
        why = (
            f"upgraded from pending approval: a later diagnosis met the evidence for automatic "
            f"execution ({proposal.reason}); {proposal.tier} tier: automatic"
        )
        await self.approve(proposal, (), now=proposal.occurred_at, actor="planner", why=why)
        await self.deps.records.replace(proposal)
        DECISIONS.labels(proposal.chain_id, "upgraded").inc()

    async def approve(
        self, proposal: ActionProposed, approvers: tuple[str, ...], *, now: datetime, actor: str, why: str
    ) -> None:
        approved = logic.approved_event(proposal, approvers, now=now)
        subject = subjects.action_approved(proposal.chain_id)
        await self.publisher.publish(subject, approved, stream=streams.ACTIONS)
        summary = f"{proposal.action.summary()} [{proposal.tier}]"
        await self.audit(
            logic.audit_event(
                "approved", proposal, actor=actor, now=now, summary=summary, outcome="approved", reasoning=why
            )
        )

    async def expire(
        self, proposal: ActionProposed, *, now: datetime, why: str, command_id: str = ""
    ) -> None:
        """Record and audit ``proposal`` as expired; ``command_id``: the command that found it so."""
        records = self.deps.records
        ledger = await records.ledger(proposal.action_id)
        decided = Ledger.of(
            ledger.approvers(),
            decision="expired",
            why=why,
            at=now,
            command_id=command_id,
            last_refusal=ledger.last_refusal,
        )
        await records.save_ledger(proposal.action_id, decided)
        await self._audit_own("expired", proposal, now=now, why=why)
        DECISIONS.labels(proposal.chain_id, "expired").inc()

    async def audit(self, record: AuditRecorded) -> None:
        await self.publisher.publish(subjects.audit(record.chain_id), record, stream=streams.AUDIT)

    async def _audit_own(
        self, kind: Literal["expired", "withdrawn"], proposal: ActionProposed, *, now: datetime, why: str
    ) -> None:
        """The audit record of a decision the planner takes by itself (no person behind it)."""
        summary = proposal.action.summary()
        await self.audit(
            logic.audit_event(
                kind, proposal, actor="planner", now=now, summary=summary, outcome=kind, reasoning=why
            )
        )

    async def answer(self, verdict: ActionVerdict) -> None:
        """Publish ``verdict`` on core NATS for the sender waiting on it; nothing is stored.

        The decision is recorded and audited already: a verdict that cannot be sent costs its sender
        a timeout (it can read the records), never the command, so the failure is logged and counted
        instead of handing the command back for a redelivery that would decide nothing new.
        """
        subject = subjects.action_verdict(verdict.chain_id, verdict.answers)
        try:
            await self.publisher.publish_core(subject, verdict)
        except Exception as exc:  # any failure here must leave the command handled
            VERDICTS_UNSENT.inc()
            error = f"{type(exc).__name__}: {exc}"
            log.warning(
                "verdict not sent", extra={"answers": verdict.answers, "code": verdict.code, "error": error}
            )
            return
        VERDICTS.labels(verdict.kind, verdict.code).inc()

    async def _command(self, cmd: ActionCommand) -> logic.CommandOutcome:
        records = self.deps.records
        now = self.deps.clock()
        proposal = await records.proposal(cmd.action_id)
        if proposal is None:
            outcome = logic.unknown_action(cmd)
            await self.refuse_unknown(cmd, now=now, why=outcome.why)
            return outcome
        ledger = await records.ledger(cmd.action_id)
        outcome = logic.apply_command(
            proposal,
            ledger.approvers(),
            cmd,
            policy=self.deps.policy,
            now=now,
            decision=ledger.decision,
            why=ledger.why,
            answered=ledger.answered(),
            cooldowns=await records.cooldowns(proposal.chain_id),
        )
        if outcome.status == "approved" and ledger.announced:
            REPLAYS.inc()  # a redelivered approval whose effects were all published
            return outcome
        DECISIONS.labels(proposal.chain_id, outcome.status).inc()
        if outcome.status == "expired":
            await self.expire(proposal, now=now, why=outcome.why, command_id=cmd.event_id)
            return outcome
        after = ledger
        if outcome.status != "refused" and ledger.decision is None:
            after = Ledger.of(
                outcome.approvals,
                decision=outcome.decision,
                why=outcome.why,
                at=now,
                command_id=cmd.event_id,
                last_refusal=ledger.last_refusal,
            )
            await records.save_ledger(cmd.action_id, after)
        if outcome.status == "approved":
            approvers = tuple(a.by for a in outcome.approvals)
            await self.approve(proposal, approvers, now=now, actor=cmd.by, why=outcome.why)
            await records.save_ledger(cmd.action_id, after.model_copy(update={"announced": True}))
            return outcome
        await self.audit(logic.command_audit(proposal, cmd, outcome, now=now))
        if outcome.status == "refused":
            await records.save_ledger(cmd.action_id, ledger.refused(cmd, outcome, at=now))
        return outcome

    async def refuse_unknown(self, cmd: ActionCommand, *, now: datetime, why: str) -> None:
        DECISIONS.labels(cmd.chain_id, "unknown").inc()
        await self.audit(logic.unknown_action_refused(cmd, now=now, why=why))

    async def _withdraw(self, event: IncidentResolved) -> None:
        records = self.deps.records
        await records.mark_resolved(event, ttl_s=self.settings.resolved_memory_s)
        now = self.deps.clock()
        why = logic.withdrawal_reason(event)
        for proposal in logic.withdrawable(await records.pending(), event):
            ledger = await records.ledger(proposal.action_id)
            if ledger.decision is not None:
                continue
            await self._audit_own("withdrawn", proposal, now=now, why=why)
            withdrawn = Ledger.of(
                ledger.approvers(), decision="withdrawn", why=why, at=now, last_refusal=ledger.last_refusal
            )
            await records.save_ledger(proposal.action_id, withdrawn)
            DECISIONS.labels(proposal.chain_id, "withdrawn").inc()

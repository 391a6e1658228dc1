"""Wiring only: diagnoses, forecasts, requests and commands in; proposals, approvals, audit records out.

Each request and command is answered, once recorded, with an ``ActionVerdict`` on core NATS.

Every consumer is a durable pull subscriber fetching one message at a time, so the read-modify-write
of a ledger or of the audit model has a single writer (run one planner per deployment).
Every event the planner publishes has an id derived from the action id, so an input redelivered
after a crash republishes identical events that JetStream and the readers deduplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar

from faststream.nats import DeliverPolicy, NatsBroker, NatsMessage, PullSub
from nats.errors import Error as NatsError
from nats.js.api import ConsumerConfig
from prometheus_client import Counter
from pydantic.alias_generators import to_snake

from sentinai.common import jsonlog, streams, subjects, telemetry
from sentinai.common.bus import MESSAGES_HANDLED, DeadLetters, build_broker, publish_event
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
from sentinai.common.state import StateStore, StateStoreError
from sentinai.planner import cooldowns, logic
from sentinai.planner.records import Ledger, Records
from sentinai.planner.settings import PlannerSettings

SERVICE = "planner"
E = TypeVar("E", bound=Event)
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
REDELIVERIES = Counter(
    "sentinai_planner_redeliveries_total",
    "Inputs handed back for later: the state store or bus was away",
    ["kind"],
)
# The state store (Redis or NATS KV) or the bus being away is temporary: the input comes back later.
TRANSIENT = (StateStoreError, NatsError, TimeoutError, ConnectionError)
RETRY_AFTER_S = 2.0


@contextlib.asynccontextmanager
async def redelivered_on_outage(msg: NatsMessage, *, kind: str) -> AsyncIterator[None]:
    """Hand the message back (nak with a delay) on a transient error, instead of faststream's reject.

    faststream's default for an exception is to reject (terminate) the message: an approval that
    arrived while Redis was down would be lost for good.
    """
    try:
        yield
    except TRANSIENT as exc:
        REDELIVERIES.labels(kind).inc()
        log.warning(
            "state store or bus unavailable: message handed back for redelivery",
            extra={"kind": kind, "error": f"{type(exc).__name__}: {exc}", "retryInS": RETRY_AFTER_S},
        )
        await msg.nack(delay=RETRY_AFTER_S)


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
    """The publishing half of the handlers, kept apart so the expiry timer shares it."""

    def __init__(self, broker: NatsBroker, deps: Deps, *, resolved_memory_s: float = 86_400.0) -> None:
        self.broker = broker
        self.deps = deps
        self.resolved_memory_s = resolved_memory_s
        # Each consumer is a single writer, but they run side by side: a proposal's record is read,
        # decided on and written by one of them at a time, so an approval and a withdrawal (or an
        # expiry, or an upgrade) of the same proposal never interleave.
        self.deciding = asyncio.Lock()

    async def audit(self, record: AuditRecorded) -> None:
        await publish_event(self.broker, subjects.audit(record.chain_id), record, stream=streams.AUDIT)

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
        await publish_event(self.broker, subject, proposal, stream=streams.ACTIONS)
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
        await publish_event(
            self.broker, subjects.action_proposed(proposal.chain_id), proposal, stream=streams.ACTIONS
        )
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
        await publish_event(
            self.broker, subjects.action_approved(proposal.chain_id), approved, stream=streams.ACTIONS
        )
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

    async def _audit_own(
        self, kind: Literal["expired", "withdrawn"], proposal: ActionProposed, *, now: datetime, why: str
    ) -> None:
        """The audit record of a decision the planner takes by itself (no person behind it)."""
        await self.audit(
            logic.audit_event(
                kind,
                proposal,
                actor="planner",
                now=now,
                summary=proposal.action.summary(),
                outcome=kind,
                reasoning=why,
            )
        )

    async def command(self, cmd: ActionCommand) -> None:
        """Decide ``cmd``, record and audit the outcome, then answer its sender with a verdict."""
        async with self.deciding:
            outcome = await self._command(cmd)
        await self.answer(logic.command_verdict(cmd, outcome, now=self.deps.clock()))

    async def request(self, request: ActionRequested, proposal: ActionProposed) -> None:
        """Propose what ``request`` asked for (``logic.plan_request``), then answer its sender."""
        recorded = await self.propose(proposal)
        ledger = await self.deps.records.ledger(recorded.action_id)
        verdict = logic.request_verdict(
            request,
            recorded,
            policy=self.deps.policy,
            now=self.deps.clock(),
            decision=ledger.decision,
            why=ledger.why,
            approvals=ledger.approvers(),
        )
        await self.answer(verdict)

    async def answer(self, verdict: ActionVerdict) -> None:
        """Publish ``verdict`` on core NATS for the sender waiting on it; nothing is stored.

        The decision is recorded and audited already: a verdict that cannot be sent costs its sender
        a timeout (it can read the records), never the command, so the failure is logged and counted
        instead of handing the command back for a redelivery that would decide nothing new.
        """
        subject = subjects.action_verdict(verdict.chain_id, verdict.answers)
        try:
            await self.broker.publish(verdict.to_json(), subject, correlation_id=verdict.correlation_id)
        except Exception as exc:  # any failure here must leave the command handled
            VERDICTS_UNSENT.inc()
            log.warning(
                "verdict not sent",
                extra={
                    "answers": verdict.answers,
                    "code": verdict.code,
                    "error": f"{type(exc).__name__}: {exc}",
                },
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
        summary = proposal.action.summary()
        if outcome.status == "approved":
            approvers = tuple(a.by for a in outcome.approvals)
            await self.approve(proposal, approvers, now=now, actor=cmd.by, why=outcome.why)
            await records.save_ledger(cmd.action_id, after.model_copy(update={"announced": True}))
        elif outcome.status == "waiting":
            await self.audit(
                logic.audit_event(
                    "approved",
                    proposal,
                    actor=cmd.by,
                    now=now,
                    summary=summary,
                    outcome="waiting",
                    reasoning=outcome.why,
                    key=cmd.by,
                )
            )
        elif outcome.status == "rejected":
            await self.audit(
                logic.audit_event(
                    "rejected",
                    proposal,
                    actor=cmd.by,
                    now=now,
                    summary=summary,
                    outcome="rejected",
                    reasoning=outcome.why,
                )
            )
        else:
            await self.audit(
                logic.audit_event(
                    "refused",
                    proposal,
                    actor=cmd.by,
                    now=now,
                    summary=summary,
                    outcome=f"{cmd.command} refused",
                    reasoning=outcome.why,
                    key=cmd.event_id,
                )
            )
            await records.save_ledger(cmd.action_id, ledger.refused(cmd, outcome, at=now))
        return outcome

    async def refuse_unknown(self, cmd: ActionCommand, *, now: datetime, why: str) -> None:
        DECISIONS.labels(cmd.chain_id, "unknown").inc()
        record = AuditRecorded(
            event_id=logic.event_id("audit-refused", cmd.event_id),
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
        await self.audit(record)

    async def expire_due(self) -> int:
        """Expire every pending proposal past its deadline; returns how many."""
        async with self.deciding:
            return await self._expire_due()

    async def _expire_due(self) -> int:
        records = self.deps.records
        now = self.deps.clock()
        count = 0
        for proposal in await records.pending():
            ledger = await records.ledger(proposal.action_id)
            if logic.expired(proposal, ledger.decision, now=now):
                await self.expire(proposal, now=now, why="no decision before the proposal expired")
                count += 1
        return count

    async def incident_resolved(self, event: IncidentResolved) -> None:
        """An incident that is over needs its remedies no more: withdraw those still waiting.

        The incident is remembered first, so a diagnosis of it handled later proposes nothing. Each
        withdrawal is audited before it is recorded: a redelivery in between finds it still
        pending and publishes the same, deduplicated, audit record again.
        """
        async with self.deciding:
            await self._withdraw(event)

    async def _withdraw(self, event: IncidentResolved) -> None:
        records = self.deps.records
        await records.mark_resolved(event, ttl_s=self.resolved_memory_s)
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

    async def fold_audit(self, record: AuditRecorded) -> None:
        records = self.deps.records
        merged = logic.fold_audit(await records.recent_audit(), record)
        if merged is not None:
            await records.save_recent_audit(merged)


def _consume(
    broker: NatsBroker,
    dead: DeadLetters,
    *,
    name: str,
    subject: str,
    stream: streams.StreamSpec,
    durable: str,
    config: ConsumerConfig,
    event_type: type[E],
    handle: Callable[[E], Awaitable[None]],
) -> None:
    """One durable consumer: decode (malformed → dead letter), handle, count; an outage → redelivery.

    One message per fetch, handled before the next: each consumer is a single, ordered writer.
    """
    kind = to_snake(event_type.__name__)

    async def on_message(msg: NatsMessage) -> None:
        async with redelivered_on_outage(msg, kind=kind):
            event = await dead.decode(event_type, subject=msg.raw_message.subject, body=msg.body)
            if event is None:
                return
            jsonlog.bind(chain=event.chain_id, correlation_id=event.correlation_id)
            await handle(event)
            MESSAGES_HANDLED.labels(SERVICE, kind).inc()

    # faststream names the subscriber (metrics, AsyncAPI) after the function.
    on_message.__name__ = on_message.__qualname__ = name
    broker.subscriber(
        subject,
        stream=stream.ref(),
        durable=durable,
        config=config,
        pull_sub=PullSub(batch_size=1, timeout=1.0),
    )(on_message)


def build(settings: PlannerSettings, deps: Deps) -> tuple[NatsBroker, Planner]:
    broker = build_broker(settings)
    telemetry.instrument(broker, service=SERVICE)
    dead = DeadLetters(broker, service=SERVICE)
    planner = Planner(broker, deps, resolved_memory_s=settings.resolved_memory_s)
    prefix = settings.durable_prefix
    # faststream creates the consumers after its start returns: a durable created for the first time
    # starts a little in the past, so an event published while the planner started is not missed.
    # An existing durable resumes where it was; old history is never planned again.
    since = deps.clock() - timedelta(seconds=settings.first_start_replay_s)
    recent = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=since)

    async def on_rca(rca: RcaCompleted) -> None:
        now = deps.clock()
        if await deps.records.is_resolved(rca.chain_id, rca.episode_id):
            LATE.inc()
            return
        proposals = logic.plan_rca(
            rca,
            policy=deps.policy,
            now=now,
            current_vcpu=deps.memory.current(rca.chain_id),
            min_confidence=settings.min_rca_confidence,
            min_notify_confidence=settings.min_notify_confidence,
            block_time_s=settings.block_time_s,
            cooldowns=await deps.records.cooldowns(rca.chain_id),
        )
        for proposal in logic.admit_scaling(proposals, deps.memory, now=now):
            await planner.propose(proposal)

    async def on_prediction(pred: PredictionMade) -> None:
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
            await planner.propose(proposal)

    async def on_request(request: ActionRequested) -> None:
        proposal = logic.plan_request(
            request,
            policy=deps.policy,
            now=deps.clock(),
            block_time_s=settings.block_time_s,
            cooldowns=await deps.records.cooldowns(request.chain_id),
        )
        await planner.request(request, proposal)

    async def on_executed(executed: ActionExecuted) -> None:
        logic.record_executed(executed, deps.memory)
        mine = await deps.records.proposal(executed.action_id)
        cooldown = cooldowns.cooldown_after(executed, policy=deps.policy, proposal=mine)
        if cooldown is not None:
            await deps.records.save_cooldown(executed.chain_id, cooldown)

    events, actions = streams.EVENTS, streams.ACTIONS
    consumers: list[tuple[str, str, streams.StreamSpec, str, Any]] = [
        ("on_rca", subjects.RCA_COMPLETED_ALL, events, "rca", (RcaCompleted, on_rca)),
        (
            "on_prediction",
            subjects.PREDICTION_MADE_ALL,
            events,
            "predictions",
            (PredictionMade, on_prediction),
        ),
        (
            "on_incident_resolved",
            subjects.INCIDENT_RESOLVED_ALL,
            events,
            "incidents",
            (IncidentResolved, planner.incident_resolved),
        ),
        ("on_command", subjects.ACTION_COMMAND_ALL, actions, "commands", (ActionCommand, planner.command)),
        ("on_request", subjects.ACTION_REQUESTED_ALL, actions, "requests", (ActionRequested, on_request)),
        ("on_executed", subjects.ACTION_EXECUTED_ALL, actions, "executed", (ActionExecuted, on_executed)),
    ]
    for name, subject, stream, durable, (event_type, handle) in consumers:
        _consume(
            broker,
            dead,
            name=name,
            subject=subject,
            stream=stream,
            durable=f"{prefix}-{durable}",
            config=recent,
            event_type=event_type,
            handle=handle,
        )
    # The audit read model is rebuilt from the whole stream by a new durable.
    _consume(
        broker,
        dead,
        name="on_audit",
        subject=subjects.AUDIT_ALL,
        stream=streams.AUDIT,
        durable=f"{prefix}-audit",
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
        event_type=AuditRecorded,
        handle=planner.fold_audit,
    )
    return broker, planner


@dataclass
class ExpiryTimer:
    """Expires pending proposals every ``interval_s`` until stopped."""

    planner: Planner
    interval_s: float
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self._run())

    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    async def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                await self.planner.expire_due()
            except Exception:
                # The store or the bus is away for a moment; the next tick tries again.
                log.exception("expiry check failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), timeout=self.interval_s)

    async def stop(self, *, timeout_s: float = 5.0) -> None:
        self.stopping.set()
        if self.task is not None:
            await asyncio.wait([self.task], timeout=timeout_s)
            self.task.cancel()

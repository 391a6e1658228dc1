"""Wiring in memory (TestNatsBroker) with the state kept in a real redis-server.

Each consumer once end to end (subject, durable, decode, the service, what is published where);
the use cases in detail are in test_service.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from faststream.nats import NatsBroker, TestNatsBroker

from sentinai.common import streams, subjects
from sentinai.common.actions import RestartComponent, ScaleCpu, ScaleDown
from sentinai.common.decisions import (
    ActionApproved,
    ActionCommand,
    ActionExecuted,
    ActionProposed,
    ActionRequested,
    ActionVerdict,
    AuditRecorded,
    Corroboration,
    IncidentResolved,
    PredictionMade,
    RcaCompleted,
)
from sentinai.common.events import DeadLetter, Event
from sentinai.common.incidents import RootCauseClass
from sentinai.common.policy import load_policy
from sentinai.common.state import RedisStateStore
from sentinai.devkit.spy import Spy
from sentinai.planner import bus, service
from sentinai.planner.records import Records
from sentinai.planner.settings import PlannerSettings

T0 = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Rig:
    broker: NatsBroker
    planner: service.Planner
    records: Records
    clock: Clock
    proposed: Spy
    approved: Spy
    audit: Spy
    dead: Spy
    verdict: Spy

    async def send(self, subject: str, event: Event | bytes, stream: streams.StreamSpec) -> None:
        body = event if isinstance(event, bytes) else event.to_json()
        await self.broker.publish(body, subject, stream=stream.name)

    async def rca(
        self, cause: RootCauseClass, *, episode: str = "ep-1", corroboration: Corroboration | None = None
    ) -> None:
        event = rca(cause, episode=episode, corroboration=corroboration or CORROBORATED)
        await self.send(subjects.rca_completed("opmain"), event, streams.EVENTS)

    async def command(self, action_id: str, by: str, command: str = "approve", *, event_id: str = "") -> None:
        cmd = ActionCommand(
            chain_id="opmain", action_id=action_id, command=command, by=by,
            **({"event_id": event_id} if event_id else {}),
        )  # fmt: skip
        await self.send(subjects.action_command("opmain"), cmd, streams.ACTIONS)

    def proposals(self) -> list[ActionProposed]:
        return self.proposed.events(ActionProposed)

    def approvals(self) -> list[ActionApproved]:
        return self.approved.events(ActionApproved)

    def verdicts(self) -> list[ActionVerdict]:
        return self.verdict.events(ActionVerdict)

    def audits(self) -> list[AuditRecorded]:
        return self.audit.events(AuditRecorded)

    def audit_kinds(self) -> list[tuple[str, str, str | None]]:
        return [(r.kind, r.actor, r.outcome) for r in self.audits()]


def grounds(*, auto: bool) -> Corroboration:
    polls = 3 if auto else 1
    status = "corroborated: 3 of 3 polls" if auto else "waiting for corroboration: 1 of 3 polls"
    return Corroboration(polls=polls, required_polls=3, proposal_met=True, auto_met=auto, status=status)


CORROBORATED = grounds(auto=True)
PARTIAL = grounds(auto=False)


def rca(
    cause: RootCauseClass, *, episode: str = "ep-1", corroboration: Corroboration | None = CORROBORATED
) -> RcaCompleted:
    return RcaCompleted(
        chain_id="opmain",
        event_id=f"rca-{cause}-{episode}-{corroboration.auto_met if corroboration else None}",
        occurred_at=T0,
        corroboration=corroboration,
        episode_id=episode,
        anomaly_event_id="an-1",
        root_cause=f"diagnosed {cause}",
        root_cause_class=cause,
        affected_components=("op-geth",),
        risk_level="high",
        action_plan="act",
        confidence=0.9,
        engine="rules",
        latency_ms=3.0,
    )


@pytest.fixture
async def rig(redis_url: str) -> AsyncIterator[Rig]:
    async with rigged(redis_url, PlannerSettings()) as r:
        yield r


@asynccontextmanager
async def rigged(redis_url: str, settings: PlannerSettings) -> AsyncIterator[Rig]:
    store = RedisStateStore.from_url(redis_url, namespace="planner-test")
    clock = Clock()
    deps = service.Deps(policy=load_policy(), clock=clock, store=store)
    broker, planner = bus.build(settings, deps)
    spies = (
        Spy().attach(broker, f"{subjects.ACTION_PROPOSED}.>", streams.ACTIONS),
        Spy().attach(broker, f"{subjects.ACTION_APPROVED}.>", streams.ACTIONS),
        Spy().attach(broker, f"{subjects.AUDIT}.>", streams.AUDIT),
        Spy().attach(broker, subjects.dead_letter(bus.SERVICE), streams.DEAD_LETTER),
        Spy().attach(broker, subjects.ACTION_VERDICT_ALL),  # core NATS: never stored
    )
    async with TestNatsBroker(broker):
        yield Rig(broker, planner, Records(store), clock, *spies)
    await store.close()


async def test_an_auto_tier_rca_is_proposed_and_approved_at_once(rig: Rig) -> None:
    await rig.rca("op_geth_cpu_saturation")
    [proposal] = rig.proposals()
    [approved] = rig.approvals()
    assert (proposal.status, proposal.tier, approved.action_id) == (
        "auto_approved",
        "low",
        proposal.action_id,
    )
    assert approved.action == proposal.action and approved.verify == proposal.verify
    assert rig.audit_kinds() == [
        ("proposed", "planner", "auto_approved"),
        ("approved", "planner", "approved"),
    ]
    assert [r.kind for r in await rig.records.recent_audit()] == ["approved", "proposed"]
    assert await rig.records.pending_ids() == []


async def test_a_high_tier_rca_waits_for_someone_else_to_approve(rig: Rig) -> None:
    await rig.rca("sequencer_stall")
    [proposal] = rig.proposals()
    assert proposal.status == "pending_approval" and rig.approvals() == []
    assert await rig.records.pending_ids() == [proposal.action_id]

    await rig.command(proposal.action_id, "planner")
    assert rig.approvals() == []
    assert rig.audit_kinds()[-1] == ("refused", "planner", "approve refused")

    await rig.command(proposal.action_id, "alice", event_id="cmd-1")
    await rig.command(proposal.action_id, "alice", event_id="cmd-1")  # redelivered
    [approved] = rig.approvals()
    assert approved.approvers == ("alice",) and approved.action_id == proposal.action_id
    assert rig.audit_kinds()[-1] == ("approved", "alice", "approved")
    assert await rig.records.pending_ids() == []
    assert (await rig.records.ledger(proposal.action_id)).decision == "approved"
    # The repeat republished the same event ids: the audit read model holds each record once.
    kinds = [r.kind for r in await rig.records.recent_audit()]
    assert kinds.count("approved") == 1


async def test_every_approval_is_answered_and_the_last_refusal_is_kept_for_readers(rig: Rig) -> None:
    await rig.rca("sequencer_stall")
    [proposal] = rig.proposals()
    await rig.command(proposal.action_id, "Planner ")
    await rig.command(proposal.action_id, "alice", event_id="cmd-1")
    await rig.command(proposal.action_id, "alice", event_id="cmd-1")  # redelivered
    await rig.command(proposal.action_id, "ALICE", event_id="cmd-2")
    answers = [(v.answers, v.accepted, v.code, v.status) for v in rig.verdicts()]
    assert answers[1:] == [
        ("cmd-1", True, "ok", "approved"),
        ("cmd-1", True, "ok", "approved"),
        ("cmd-2", False, "same_principal", "approved"),
    ]
    assert answers[0][1:] == (False, "proposer", "waiting")
    assert len(rig.approvals()) == 1
    refusal = (await rig.records.ledger(proposal.action_id)).last_refusal
    assert refusal is not None
    assert (refusal.by, refusal.code, refusal.command_id) == ("ALICE", "same_principal", "cmd-2")
    assert refusal.reason == "alice already approved; the action is approved"


async def test_a_redelivered_request_is_proposed_once_and_answered_alike(rig: Rig) -> None:
    req = ActionRequested(
        chain_id="opmain", action=RestartComponent(component="op-batcher"), requested_by="agent-claude",
        reason="stuck", via="mcp",
    )  # fmt: skip
    for _ in range(2):
        await rig.send(subjects.action_requested("opmain"), req, streams.ACTIONS)
    [proposal] = rig.proposals()
    first, again = rig.verdicts()
    assert (proposal.status, rig.approvals()) == ("pending_approval", [])
    assert first.model_dump(exclude={"occurred_at"}) == again.model_dump(exclude={"occurred_at"})
    assert (first.answers, first.action_id, first.status) == (
        req.event_id,
        proposal.action_id,
        "pending_approval",
    )


async def test_a_reject_ends_the_proposal(rig: Rig) -> None:
    await rig.rca("sequencer_stall")
    [proposal] = rig.proposals()
    await rig.command(proposal.action_id, "carol", "reject")
    await rig.command(proposal.action_id, "alice")
    assert rig.approvals() == []
    assert [k for k, _, _ in rig.audit_kinds()] == ["proposed", "rejected", "refused"]


async def test_a_command_that_finds_its_proposal_expired_is_answered_alike_when_redelivered(
    rig: Rig,
) -> None:
    await rig.rca("sequencer_stall")
    [proposal] = rig.proposals()
    rig.clock.now = proposal.expires_at + timedelta(seconds=1)
    late = ActionCommand(chain_id="opmain", action_id=proposal.action_id, command="approve", by="alice")
    for _ in range(2):  # the same message redelivered
        await rig.send(subjects.action_command("opmain"), late, streams.ACTIONS)
    first, again = rig.verdicts()
    assert (first.accepted, first.code, first.status) == (False, "expired", "expired")
    assert first.model_dump(exclude={"occurred_at"}) == again.model_dump(exclude={"occurred_at"})
    # The redelivery republished the same event ids: the audit trail holds the expiry once.
    assert [r.kind for r in await rig.records.recent_audit()] == ["expired", "proposed"]
    assert (await rig.records.ledger(proposal.action_id)).decision == "expired"


# ------------------------------------------------------------------------------------------- evidence


async def test_an_uncorroborated_diagnosis_publishes_nothing(rig: Rig) -> None:
    old = rca("op_geth_cpu_saturation", corroboration=None)
    await rig.send(subjects.rca_completed("opmain"), old, streams.EVENTS)
    assert rig.proposals() == [] and rig.approvals() == [] and rig.audit_kinds() == []
    assert await rig.records.all_ids() == []


async def test_a_later_corroborated_diagnosis_upgrades_the_waiting_proposal_once(rig: Rig) -> None:
    await rig.rca("peer_loss", corroboration=PARTIAL)
    [waiting] = rig.proposals()
    assert waiting.status == "pending_approval" and rig.approvals() == []
    assert "waiting for corroboration: 1 of 3 polls" in waiting.reason

    rig.clock.now = T0 + timedelta(seconds=40)
    await rig.rca("peer_loss")  # the same incident, now corroborated: the same action id
    await rig.rca("peer_loss")  # redelivered
    [_, upgraded] = rig.proposals()
    [approved] = rig.approvals()
    assert (upgraded.action_id, upgraded.status) == (waiting.action_id, "auto_approved")
    assert upgraded.event_id != waiting.event_id and "corroborated: 3 of 3 polls" in upgraded.reason
    assert (approved.action_id, approved.approvers) == (waiting.action_id, ())
    assert rig.audit_kinds() == [
        ("proposed", "planner", "pending_approval"),
        ("approved", "planner", "approved"),
    ]
    assert rig.audits()[-1].reasoning.startswith("upgraded from pending approval")
    assert await rig.records.pending_ids() == []
    record = await rig.records.proposal(waiting.action_id)
    assert record is not None and record.status == "auto_approved"

    # A person's approval arriving late changes nothing: the policy approved it already.
    await rig.command(waiting.action_id, "alice")
    assert len(rig.approvals()) == 1
    assert rig.audit_kinds()[-1] == ("refused", "alice", "approve refused")


async def test_a_proposal_a_person_decided_is_not_upgraded(rig: Rig) -> None:
    await rig.rca("peer_loss", corroboration=PARTIAL)
    [waiting] = rig.proposals()
    await rig.command(waiting.action_id, "carol", "reject")
    await rig.rca("peer_loss")
    assert len(rig.proposals()) == 1 and rig.approvals() == []


# ----------------------------------------------------------------------------------------- withdrawal


def resolution(incident: str) -> IncidentResolved:
    return IncidentResolved(
        chain_id="opmain", incident_id=incident, resolved_at=T0, reason="blocks flow again for 60 s"
    )


async def test_a_resolved_incident_withdraws_its_waiting_remedies_and_refuses_their_approval(
    rig: Rig,
) -> None:
    await rig.rca("sequencer_stall", episode="inc-9")
    await rig.rca("sequencer_stall", episode="inc-10")
    stall, other = rig.proposals()
    for _ in range(2):  # redelivered: withdrawn and audited once
        await rig.send(subjects.incident_resolved("opmain"), resolution("inc-9"), streams.EVENTS)

    ledger = await rig.records.ledger(stall.action_id)
    assert (ledger.decision, ledger.why) == ("withdrawn", "incident resolved: blocks flow again for 60 s")
    assert await rig.records.pending_ids() == [other.action_id]
    withdrawn = [r for r in rig.audits() if r.kind == "withdrawn"]
    assert [(r.action_id, r.actor, r.reasoning) for r in withdrawn] == [
        (stall.action_id, "planner", "incident resolved: blocks flow again for 60 s")
    ]

    await rig.command(stall.action_id, "alice")
    assert rig.approvals() == []
    refused = rig.audits()[-1]
    assert (refused.kind, refused.actor) == ("refused", "alice")
    assert refused.reasoning == "the proposal was withdrawn: incident resolved: blocks flow again for 60 s"

    # A diagnosis of the resolved incident handled late (another consumer, a replay) proposes nothing.
    await rig.rca("peer_loss", episode="inc-9")
    assert len(rig.proposals()) == 2


# ------------------------------------------------------------------------------------------ cooldowns


def restart_done(*, dry_run: bool, started: datetime) -> ActionExecuted:
    return ActionExecuted(
        chain_id="opmain", action_id="act-earlier", action=RestartComponent(component="op-node"),
        outcome="dry_run" if dry_run else "succeeded", detail="d", dry_run=dry_run,
        started_at=started, finished_at=started + timedelta(seconds=30),
    )  # fmt: skip


@pytest.mark.parametrize("dry_run", [False, True], ids=["executed", "dry-run"])
async def test_a_remedy_inside_the_executors_cooldown_is_published_refused(rig: Rig, dry_run: bool) -> None:
    started = T0 - timedelta(seconds=90)
    await rig.send(
        subjects.action_executed("opmain"), restart_done(dry_run=dry_run, started=started), streams.ACTIONS
    )
    await rig.rca("sequencer_stall")
    [proposal] = rig.proposals()
    if dry_run:  # a dry run never takes the executor's lock
        assert proposal.status == "pending_approval"
        return
    assert proposal.status == "refused"
    assert proposal.refusal == "op-node was restarted at 00:58:30; cooldown 600 s until 01:08:30"
    assert rig.audit_kinds() == [("refused", "planner", "refused")]
    assert await rig.records.pending_ids() == []


def forecast(vcpu: float, i: int) -> PredictionMade:
    return PredictionMade(
        chain_id="opmain", event_id=f"pred-{i}", predicted_vcpu=vcpu, current_vcpu=1.0, confidence=85,
        trend="rising", reasoning="load rising", horizon_s=300, forecast_cores=vcpu,
        upper_bound_cores=vcpu, model="holt",
    )  # fmt: skip


async def test_a_confident_forecast_scales_up_once_within_the_cooldown(rig: Rig) -> None:
    for i in range(3):
        await rig.send(subjects.prediction_made("opmain"), forecast(1.8, i), streams.EVENTS)
    [proposal] = rig.proposals()
    [approved] = rig.approvals()
    assert proposal.action == ScaleCpu(component="op-geth", vcpu=2) and proposal.status == "auto_approved"
    assert approved.action_id == proposal.action_id


@pytest.mark.parametrize(
    ("sustain_s", "proposed"), [(300.0, []), (0.0, [ScaleDown(component="op-geth", vcpu=1)])]
)
async def test_the_scale_down_lull_comes_from_the_settings(
    redis_url: str, sustain_s: float, proposed: list[ScaleDown]
) -> None:
    # A light load on 4 vCPU: with the default 5-minute lull nothing yet, with none a step down at once.
    idle = forecast(0.5, 0).model_copy(update={"current_vcpu": 4.0, "trend": "stable"})
    async with rigged(redis_url, PlannerSettings(scale_down_sustain_s=sustain_s)) as r:
        await r.send(subjects.prediction_made("opmain"), idle, streams.EVENTS)
        assert [p.action for p in r.proposals()] == proposed


@pytest.mark.parametrize(
    ("subject", "stream"),
    [
        (subjects.rca_completed("opmain"), streams.EVENTS),
        (subjects.incident_resolved("opmain"), streams.EVENTS),
        (subjects.action_command("opmain"), streams.ACTIONS),
    ],
    ids=["rca", "incident-resolved", "command"],
)
async def test_malformed_input_is_dead_lettered(rig: Rig, subject: str, stream: streams.StreamSpec) -> None:
    await rig.send(subject, b'{"chainId": "opmain", "actionId": 5', stream)
    [letter] = rig.dead.events(DeadLetter)
    assert (letter.service, letter.subject) == ("planner", subject)
    assert rig.proposals() == [] and rig.audit_kinds() == []

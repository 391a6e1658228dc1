"""Wiring in memory (TestNatsBroker) with the state kept in a real redis-server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from faststream.nats import NatsBroker, NatsMessage, TestNatsBroker

from sentinai.common import streams, subjects
from sentinai.common.actions import ScaleCpu, ScaleDown
from sentinai.common.decisions import (
    ActionApproved,
    ActionCommand,
    ActionProposed,
    AuditRecorded,
    PredictionMade,
    RcaCompleted,
)
from sentinai.common.events import AnomalyResolved, DeadLetter, Event
from sentinai.common.incidents import RootCauseClass
from sentinai.common.policy import load_policy
from sentinai.common.state import RedisStateStore
from sentinai.planner import bus
from sentinai.planner.records import Records
from sentinai.planner.settings import PlannerSettings

T0 = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)


class Spy:
    """Collects what the planner publishes on one subject."""

    def __init__(self, broker: NatsBroker, subject: str, stream: streams.StreamSpec) -> None:
        self.bodies: list[bytes] = []

        @broker.subscriber(subject, stream=stream.ref())
        async def spy(msg: NatsMessage) -> None:
            self.bodies.append(msg.body)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Rig:
    broker: NatsBroker
    planner: bus.Planner
    records: Records
    clock: Clock
    proposed: Spy
    approved: Spy
    audit: Spy
    dead: Spy

    async def send(self, subject: str, event: Event | bytes, stream: streams.StreamSpec) -> None:
        body = event if isinstance(event, bytes) else event.to_json()
        await self.broker.publish(body, subject, stream=stream.name)

    async def rca(self, cause: RootCauseClass, *, episode: str = "ep-1") -> None:
        await self.send(subjects.rca_completed("opmain"), rca(cause, episode=episode), streams.EVENTS)

    async def command(self, action_id: str, by: str, command: str = "approve", *, event_id: str = "") -> None:
        cmd = ActionCommand(
            chain_id="opmain", action_id=action_id, command=command, by=by,
            **({"event_id": event_id} if event_id else {}),
        )  # fmt: skip
        await self.send(subjects.action_command("opmain"), cmd, streams.ACTIONS)

    def proposals(self) -> list[ActionProposed]:
        return [ActionProposed.model_validate_json(b) for b in self.proposed.bodies]

    def approvals(self) -> list[ActionApproved]:
        return [ActionApproved.model_validate_json(b) for b in self.approved.bodies]

    def audit_kinds(self) -> list[tuple[str, str, str | None]]:
        records = [AuditRecorded.model_validate_json(b) for b in self.audit.bodies]
        return [(r.kind, r.actor, r.outcome) for r in records]


def rca(cause: RootCauseClass, *, episode: str = "ep-1") -> RcaCompleted:
    return RcaCompleted(
        chain_id="opmain",
        event_id=f"rca-{cause}-{episode}",
        occurred_at=T0,
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
    deps = bus.Deps(policy=load_policy(), clock=clock, store=store)
    broker, planner = bus.build(settings, deps)
    spies = (
        Spy(broker, f"{subjects.ACTION_PROPOSED}.>", streams.ACTIONS),
        Spy(broker, f"{subjects.ACTION_APPROVED}.>", streams.ACTIONS),
        Spy(broker, f"{subjects.AUDIT}.>", streams.AUDIT),
        Spy(broker, subjects.dead_letter(bus.SERVICE), streams.DEAD_LETTER),
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


async def test_a_reject_ends_the_proposal(rig: Rig) -> None:
    await rig.rca("sequencer_stall")
    [proposal] = rig.proposals()
    await rig.command(proposal.action_id, "carol", "reject")
    await rig.command(proposal.action_id, "alice")
    assert rig.approvals() == []
    assert [k for k, _, _ in rig.audit_kinds()] == ["proposed", "rejected", "refused"]


async def test_a_redelivered_rca_is_proposed_once(rig: Rig) -> None:
    await rig.rca("sequencer_stall")
    await rig.rca("sequencer_stall")
    assert len(rig.proposals()) == 1
    assert len(await rig.records.all_ids()) == 1


async def test_an_unknown_action_id_is_refused_clearly(rig: Rig) -> None:
    await rig.command("act-doesnotexist00", "alice")
    [(kind, actor, _)] = rig.audit_kinds()
    [record] = await rig.records.recent_audit()
    assert (kind, actor) == ("refused", "alice")
    assert record.reasoning == "no proposal with id act-doesnotexist00"


async def test_a_pending_proposal_expires_and_can_no_longer_be_approved(rig: Rig) -> None:
    await rig.rca("sequencer_stall")
    [proposal] = rig.proposals()
    assert await rig.planner.expire_due() == 0
    rig.clock.now = proposal.expires_at + timedelta(seconds=1)
    assert await rig.planner.expire_due() == 1
    await rig.command(proposal.action_id, "alice")
    assert rig.approvals() == []
    assert [k for k, _, _ in rig.audit_kinds()] == ["proposed", "expired", "refused"]


async def test_a_resolved_incident_retires_its_pending_remedy(rig: Rig) -> None:
    await rig.rca("sequencer_stall", episode="ep-9")
    resolved = AnomalyResolved(
        chain_id="opmain", episode_id="ep-9", component="op-geth", metric="secondsSinceHead",
        rule="liveness", started_at=T0, duration_s=42, description="blocks flow again",
    )  # fmt: skip
    await rig.send(subjects.anomaly_resolved("opmain"), resolved, streams.EVENTS)
    [proposal] = rig.proposals()
    assert (await rig.records.ledger(proposal.action_id)).decision == "expired"
    assert rig.audit_kinds()[-1] == ("expired", "planner", "expired")


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
        (subjects.action_command("opmain"), streams.ACTIONS),
    ],
    ids=["rca", "command"],
)
async def test_malformed_input_is_dead_lettered(rig: Rig, subject: str, stream: streams.StreamSpec) -> None:
    await rig.send(subject, b'{"chainId": "opmain", "actionId": 5', stream)
    [letter] = [DeadLetter.model_validate_json(b) for b in rig.dead.bodies]
    assert (letter.service, letter.subject) == ("planner", subject)
    assert rig.proposals() == [] and rig.audit_kinds() == []

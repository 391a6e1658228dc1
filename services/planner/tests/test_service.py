"""Every use case of the planner on fakes of its ports: no broker, no server, each test well under 1 s."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from sentinai.common import streams, subjects
from sentinai.common.actions import ExecDebug, RestartComponent
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
    RcaCompleted,
)
from sentinai.common.events import E, Event
from sentinai.common.incidents import RootCauseClass
from sentinai.common.policy import load_policy
from sentinai.common.state import StateStoreError
from sentinai.devkit.memstore import MemoryStore
from sentinai.planner.records import Records
from sentinai.planner.service import Deps, Planner
from sentinai.planner.settings import PlannerSettings

T0 = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
CHAIN = "opmain"


@dataclass
class RecordingPublisher:
    """The ``Publisher`` port, remembering what went where; ``core_down`` fails verdicts."""

    stored: list[tuple[str, str, Event]] = field(default_factory=list)  # (stream, subject, event)
    core: list[tuple[str, Event]] = field(default_factory=list)
    core_down: bool = False

    async def publish(self, subject: str, event: Event, *, stream: streams.StreamSpec) -> None:
        self.stored.append((stream.name, subject, event))

    async def publish_core(self, subject: str, event: Event) -> None:
        if self.core_down:
            raise ConnectionError("nats: connection closed")
        self.core.append((subject, event))

    def of(self, model: type[E]) -> list[E]:
        return [e for _, _, e in self.stored if isinstance(e, model)]

    def unique(self, model: type[E]) -> list[E]:
        """What a reader keeps once JetStream has dropped the republished ids (Nats-Msg-Id)."""
        seen: dict[str, E] = {}
        for event in self.of(model):
            seen.setdefault(event.event_id, event)
        return list(seen.values())

    def verdicts(self) -> list[ActionVerdict]:
        return [e for _, e in self.core if isinstance(e, ActionVerdict)]

    def audit_kinds(self) -> list[tuple[str, str, str | None]]:
        return [(r.kind, r.actor, r.outcome) for r in self.unique(AuditRecorded)]


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    planner: Planner
    store: MemoryStore
    out: RecordingPublisher
    clock: Clock
    records: Records

    async def command(self, action_id: str, by: str, command: str = "approve") -> ActionVerdict:
        cmd = ActionCommand(chain_id=CHAIN, action_id=action_id, command=command, by=by)
        await self.planner.on_command(cmd)
        return self.out.verdicts()[-1]

    async def request(self, action: RestartComponent | ExecDebug, *, by: str = "bob") -> ActionVerdict:
        req = ActionRequested(
            chain_id=CHAIN, action=action, requested_by=by, reason="looks stuck", via="rest"
        )
        await self.planner.on_request(req)
        return self.out.verdicts()[-1]


@pytest.fixture
def world() -> World:
    store, out, clock = MemoryStore(), RecordingPublisher(), Clock()
    deps = Deps(policy=load_policy(), clock=clock, store=store)
    planner = Planner(out, deps, settings=PlannerSettings())
    return World(planner, store, out, clock, Records(store))


def grounds(*, auto: bool) -> Corroboration:
    polls = 3 if auto else 1
    status = "corroborated: 3 of 3 polls" if auto else "waiting for corroboration: 1 of 3 polls"
    return Corroboration(polls=polls, required_polls=3, proposal_met=True, auto_met=auto, status=status)


def rca(cause: RootCauseClass, *, episode: str = "ep-1", auto: bool = True) -> RcaCompleted:
    return RcaCompleted(
        chain_id=CHAIN,
        event_id=f"rca-{cause}-{episode}-{auto}",
        occurred_at=T0,
        corroboration=grounds(auto=auto),
        episode_id=episode,
        anomaly_event_id="an-1",
        root_cause=f"diagnosed {cause}",
        root_cause_class=cause,
        affected_components=("op-node",),
        risk_level="high",
        action_plan="act",
        confidence=0.9,
        engine="rules",
        latency_ms=3.0,
    )


# ------------------------------------------------------------------------------------------ proposals


async def test_an_automatic_remedy_is_proposed_approved_audited_and_recorded(world: World) -> None:
    await world.planner.on_rca(rca("op_geth_cpu_saturation"))
    [proposal] = world.out.of(ActionProposed)
    [approved] = world.out.of(ActionApproved)
    assert (proposal.status, approved.action_id, approved.approvers) == (
        "auto_approved",
        proposal.action_id,
        (),
    )
    assert world.out.audit_kinds() == [
        ("proposed", "planner", "auto_approved"),
        ("approved", "planner", "approved"),
    ]
    assert {stream for stream, _, _ in world.out.stored} == {streams.ACTIONS.name, streams.AUDIT.name}
    assert world.out.stored[0][1] == subjects.action_proposed(CHAIN)
    assert await world.records.proposal(proposal.action_id) == proposal
    assert await world.records.pending_ids() == []


async def test_a_replayed_diagnosis_publishes_nothing_new(world: World) -> None:
    await world.planner.on_rca(rca("sequencer_stall"))
    before = list(world.out.stored)
    await world.planner.on_rca(rca("sequencer_stall"))
    assert world.out.stored == before
    assert len(await world.records.all_ids()) == 1


async def test_a_corroborated_diagnosis_upgrades_the_waiting_proposal_once(world: World) -> None:
    await world.planner.on_rca(rca("peer_loss", auto=False))
    [waiting] = world.out.of(ActionProposed)
    assert waiting.status == "pending_approval" and world.out.of(ActionApproved) == []

    world.clock.now = T0 + timedelta(seconds=40)
    for _ in range(2):  # the second is a replay of the upgrade: nothing new
        await world.planner.on_rca(rca("peer_loss"))
    [_, upgraded] = world.out.unique(ActionProposed)
    [approved] = world.out.unique(ActionApproved)
    assert (upgraded.action_id, upgraded.status) == (waiting.action_id, "auto_approved")
    assert upgraded.event_id != waiting.event_id and approved.action_id == waiting.action_id
    assert world.out.unique(AuditRecorded)[-1].reasoning.startswith("upgraded from pending approval")
    assert await world.records.pending_ids() == []
    recorded = await world.records.proposal(waiting.action_id)
    assert recorded is not None and recorded.status == "auto_approved"


async def test_a_remedy_inside_the_executors_cooldown_is_published_refused(world: World) -> None:
    started = T0 - timedelta(seconds=90)
    await world.planner.on_executed(
        ActionExecuted(
            chain_id=CHAIN,
            action_id="act-earlier",
            action=RestartComponent(component="op-node"),
            outcome="succeeded",
            detail="d",
            dry_run=False,
            started_at=started,
            finished_at=started + timedelta(seconds=30),
        )
    )
    await world.planner.on_rca(rca("sequencer_stall"))
    [proposal] = world.out.of(ActionProposed)
    assert (proposal.status, proposal.refusal) == (
        "refused",
        "op-node was restarted at 00:58:30; cooldown 600 s until 01:08:30",
    )
    assert world.out.audit_kinds() == [("refused", "planner", "refused")]


# ------------------------------------------------------------------------------------------- commands


async def test_a_critical_action_needs_two_distinct_approvers(world: World) -> None:
    asked = await world.request(ExecDebug(component="op-geth", command="geth attach"))
    assert (asked.status, asked.approvals_required) == ("pending_approval", 2)
    action_id = asked.action_id

    one = await world.command(action_id, "alice")
    assert (one.accepted, one.status, one.reason) == (True, "waiting", "1/2 distinct approvals")
    again = await world.command(action_id, "ALICE")
    assert (again.accepted, again.code, again.approvals) == (False, "same_principal", ("alice",))
    assert world.out.of(ActionApproved) == []

    done = await world.command(action_id, "carol")
    assert (done.accepted, done.status, done.approvals) == (True, "approved", ("alice", "carol"))
    [approved] = world.out.of(ActionApproved)
    assert approved.approvers == ("alice", "carol")
    ledger = await world.records.ledger(action_id)
    assert (ledger.decision, ledger.announced) == ("approved", True)
    assert await world.records.pending_ids() == []


async def test_the_proposer_cannot_approve_and_is_told_why(world: World) -> None:
    asked = await world.request(RestartComponent(component="op-node"), by="bob")
    verdict = await world.command(asked.action_id, " BOB")
    assert (verdict.accepted, verdict.code, verdict.status) == (False, "proposer", "waiting")
    assert verdict.reason == "bob proposed this action and cannot approve it"
    assert world.out.audit_kinds()[-1] == ("refused", " BOB", "approve refused")
    refusal = (await world.records.ledger(asked.action_id)).last_refusal
    assert refusal is not None and (refusal.by, refusal.code) == (" BOB", "proposer")
    assert world.out.of(ActionApproved) == []


async def test_a_waiting_proposal_expires_and_is_then_refused(world: World) -> None:
    await world.planner.on_rca(rca("sequencer_stall"))
    [proposal] = world.out.of(ActionProposed)
    assert await world.planner.expire_due() == 0
    world.clock.now = proposal.expires_at + timedelta(seconds=1)
    assert await world.planner.expire_due() == 1
    assert (await world.records.ledger(proposal.action_id)).decision == "expired"
    assert await world.records.pending_ids() == []

    late = await world.command(proposal.action_id, "alice")
    assert (late.accepted, late.code, late.status) == (False, "expired", "expired")
    assert [k for k, _, _ in world.out.audit_kinds()] == ["proposed", "expired", "refused"]
    assert world.out.of(ActionApproved) == []


async def test_a_resolved_incident_withdraws_its_waiting_remedies(world: World) -> None:
    await world.planner.on_rca(rca("sequencer_stall", episode="inc-9"))
    await world.planner.on_rca(rca("sequencer_stall", episode="inc-10"))
    stall, other = world.out.of(ActionProposed)
    over = IncidentResolved(chain_id=CHAIN, incident_id="inc-9", resolved_at=T0, reason="blocks flow again")
    for _ in range(2):  # redelivered: withdrawn and audited once
        await world.planner.on_incident_resolved(over)

    ledger = await world.records.ledger(stall.action_id)
    assert (ledger.decision, ledger.why) == ("withdrawn", "incident resolved: blocks flow again")
    assert await world.records.pending_ids() == [other.action_id]
    assert [r.action_id for r in world.out.of(AuditRecorded) if r.kind == "withdrawn"] == [stall.action_id]
    verdict = await world.command(stall.action_id, "alice")
    assert (verdict.code, verdict.reason) == (
        "withdrawn",
        "the proposal was withdrawn: incident resolved: blocks flow again",
    )
    # A diagnosis of the resolved incident handled late proposes nothing.
    await world.planner.on_rca(rca("peer_loss", episode="inc-9"))
    assert len(world.out.of(ActionProposed)) == 2


async def test_a_command_for_an_unknown_action_is_refused_and_audited(world: World) -> None:
    verdict = await world.command("act-doesnotexist00", "alice")
    assert (verdict.accepted, verdict.code, verdict.reason) == (
        False,
        "unknown_action",
        "no proposal with id act-doesnotexist00",
    )
    [record] = world.out.of(AuditRecorded)
    assert (record.kind, record.actor, record.action_id) == ("refused", "alice", "act-doesnotexist00")


async def test_a_verdict_that_cannot_be_sent_leaves_the_command_handled(world: World) -> None:
    await world.planner.on_rca(rca("sequencer_stall"))
    [proposal] = world.out.of(ActionProposed)
    world.out.core_down = True
    before = REGISTRY.get_sample_value("sentinai_planner_verdicts_unsent_total") or 0.0
    await world.planner.on_command(
        ActionCommand(chain_id=CHAIN, action_id=proposal.action_id, command="approve", by="alice")
    )
    assert REGISTRY.get_sample_value("sentinai_planner_verdicts_unsent_total") == before + 1
    assert [a.action_id for a in world.out.of(ActionApproved)] == [proposal.action_id]
    assert (await world.records.ledger(proposal.action_id)).decision == "approved"


# -------------------------------------------------------------------------------- outages, read model


async def test_a_store_outage_raises_so_the_input_is_redelivered_and_then_handled_once(world: World) -> None:
    world.store.down = True
    with pytest.raises(StateStoreError):
        await world.planner.on_rca(rca("sequencer_stall"))
    with pytest.raises(StateStoreError):
        await world.planner.on_command(
            ActionCommand(chain_id=CHAIN, action_id="act-any", command="approve", by="alice")
        )
    assert world.out.stored == [] and world.out.core == []

    world.store.down = False  # the redelivery, once the store is back
    await world.planner.on_rca(rca("sequencer_stall"))
    assert len(world.out.of(ActionProposed)) == 1


async def test_the_recent_audit_keeps_each_record_once_newest_first(world: World) -> None:
    await world.planner.on_rca(rca("op_geth_cpu_saturation"))
    for record in [*world.out.of(AuditRecorded), *world.out.of(AuditRecorded)]:
        await world.planner.on_audit(record)
    assert [r.kind for r in await world.records.recent_audit()] == ["approved", "proposed"]

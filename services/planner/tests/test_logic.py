"""The planner's decisions: remedies per incident, policy tiers, approvals, forecasts, ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sentinai.common.actions import (
    Action,
    DatabaseDrop,
    DeleteNamespace,
    ExecDebug,
    Notify,
    RaiseMemory,
    RestartComponent,
    ScaleCpu,
    ScaleDown,
)
from sentinai.common.decisions import (
    ActionCommand,
    ActionExecuted,
    ActionProposed,
    ActionRequested,
    AuditRecorded,
    Corroboration,
    IncidentResolved,
    Outcome,
    PredictionMade,
    RcaCompleted,
    requested_action_id,
)
from sentinai.common.incidents import RootCauseClass
from sentinai.common.policy import load_policy
from sentinai.planner import cooldowns, logic
from sentinai.planner.logic import Approval

POLICY = load_policy()
T0 = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
BLOCK_TIME_S = 2.0  # the chain's, as the service passes it from its settings


def grounds(*, proposal: bool = True, auto: bool = True, status: str = "") -> Corroboration:
    """The rca's verdict on the evidence: met for a proposal and for automatic execution by default."""
    polls = 3 if auto else 1
    return Corroboration(
        polls=polls,
        required_polls=3,
        proposal_met=proposal,
        auto_met=auto,
        status=status or (f"corroborated: {polls} of 3 polls" if auto else f"{polls} of 3 polls"),
    )


CORROBORATED = grounds()
PARTIAL = grounds(auto=False)


def rca(
    cause: RootCauseClass,
    *,
    confidence: float = 0.9,
    evidence: tuple[str, ...] = (),
    chain: str = "opmain",
    episode: str = "ep-1",
    corroboration: Corroboration | None = CORROBORATED,
    at: datetime = T0,
) -> RcaCompleted:
    return RcaCompleted(
        chain_id=chain,
        occurred_at=at,
        corroboration=corroboration,
        episode_id=episode,
        anomaly_event_id="an-1",
        root_cause=f"diagnosed {cause}",
        root_cause_class=cause,
        affected_components=("op-geth",),
        risk_level="high",
        action_plan="act",
        evidence=evidence,
        confidence=confidence,
        engine="rules",
        latency_ms=3.0,
    )


def summary(action: Action) -> str:
    return f"{action.kind}:{getattr(action, 'component', getattr(action, 'severity', ''))}"


@pytest.mark.parametrize(
    ("cause", "evidence", "expected", "tiers"),
    [
        ("sequencer_stall", (), ["restart_component:op-node"], ["high"]),
        ("l1_rpc_outage", (), ["restart_component:op-node", "notify:high"], ["high", "low"]),
        ("batcher_failure", (), ["restart_component:op-batcher"], ["medium"]),
        (
            "batcher_failure",
            ("op-batcher: unable to publish transaction err=insufficient funds for gas",),
            ["notify:critical"],
            ["low"],
        ),
        ("proposer_failure", (), ["restart_component:op-proposer"], ["medium"]),
        ("op_geth_cpu_saturation", (), ["scale_cpu:op-geth"], ["low"]),
        ("op_geth_oom", (), ["raise_memory:op-geth"], ["high"]),
        ("engine_api_failure", (), ["restart_component:op-geth"], ["medium"]),
        ("jwt_mismatch", (), ["notify:critical"], ["low"]),
        ("disk_pressure", (), ["notify:critical"], ["low"]),
        ("peer_loss", (), ["restart_component:op-node"], ["low"]),
        ("l1_reorg", (), [], []),
        ("txpool_spam", (), ["notify:low"], ["low"]),
        ("unknown", (), [], []),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_every_incident_gets_its_catalogue_remedy_and_tier(
    cause: RootCauseClass, evidence: tuple[str, ...], expected: list[str], tiers: list[str]
) -> None:
    proposals = logic.plan_rca(
        rca(cause, evidence=evidence), policy=POLICY, block_time_s=BLOCK_TIME_S, now=T0
    )
    assert [summary(p.action) for p in proposals] == expected
    assert [p.tier for p in proposals] == tiers
    assert all(p.incident == cause and p.episode_id == "ep-1" for p in proposals)


@pytest.mark.parametrize("cause", ["l1_reorg", "txpool_spam", "jwt_mismatch", "disk_pressure"])
def test_never_a_restart_where_the_catalogue_says_never(cause: RootCauseClass) -> None:
    actions = logic.remedies(rca(cause), policy=POLICY)
    assert not any(isinstance(a, RestartComponent | ScaleCpu | ScaleDown) for a in actions)


@pytest.mark.parametrize("confidence", [0.0, 0.3, 0.49])
def test_a_low_confidence_diagnosis_proposes_nothing(confidence: float) -> None:
    assert (
        logic.plan_rca(
            rca("sequencer_stall", confidence=confidence), policy=POLICY, block_time_s=BLOCK_TIME_S, now=T0
        )
        == []
    )


@pytest.mark.parametrize(
    ("cause", "confidence", "expected"),
    [
        ("l1_rpc_outage", 0.4, ["notify:high"]),
        ("disk_pressure", 0.4, ["notify:critical"]),
        ("engine_api_failure", 0.4, []),
        ("disk_pressure", 0.2, []),
    ],
    ids=["outage-notify-only", "disk-notify", "no-restart", "below-both"],
)
def test_a_less_certain_diagnosis_may_still_notify_but_never_touch_the_cluster(
    cause: RootCauseClass, confidence: float, expected: list[str]
) -> None:
    actions = logic.remedies(rca(cause, confidence=confidence), policy=POLICY)
    assert [summary(a) for a in actions] == expected


def test_statuses_follow_the_tier() -> None:
    [restart] = logic.plan_rca(rca("sequencer_stall"), policy=POLICY, block_time_s=BLOCK_TIME_S, now=T0)
    assert (restart.status, restart.approvals_required, restart.cooldown_s) == ("pending_approval", 1, 600)
    assert restart.expires_at == T0 + timedelta(seconds=POLICY.proposal_ttl_s)
    [scale] = logic.plan_rca(rca("op_geth_cpu_saturation"), policy=POLICY, block_time_s=BLOCK_TIME_S, now=T0)
    assert (scale.status, scale.approvals_required) == ("auto_approved", 0)


@pytest.mark.parametrize(
    ("current", "expected"),
    [(None, ScaleCpu(component="op-geth", vcpu=2)), (1.0, ScaleCpu(component="op-geth", vcpu=2)),
     (2.0, ScaleCpu(component="op-geth", vcpu=4)), (3.0, ScaleCpu(component="op-geth", vcpu=4)),
     (8.0, None)],
    ids=["unknown", "1", "2", "off-ladder-3", "top"],
)  # fmt: skip
def test_cpu_saturation_scales_to_the_next_ladder_step(
    current: float | None, expected: Action | None
) -> None:
    vcpu = None if current is None else {"op-geth": current}
    [action] = logic.remedies(rca("op_geth_cpu_saturation"), policy=POLICY, current_vcpu=vcpu)
    if expected is None:
        assert isinstance(action, Notify) and "top of the vCPU ladder" in action.text
    else:
        assert action == expected


def test_oom_raises_memory_above_the_quoted_working_set() -> None:
    quoted = rca("op_geth_oom", evidence=("op-geth memoryBytes=12884901888 (at the limit)",))
    assert logic.remedies(quoted, policy=POLICY) == [RaiseMemory(component="op-geth", memory_gib=18)]
    assert logic.remedies(rca("op_geth_oom"), policy=POLICY) == [
        RaiseMemory(component="op-geth", memory_gib=12)
    ]


@pytest.mark.parametrize(
    ("cause", "component", "metric", "below"),
    [
        ("op_geth_cpu_saturation", "op-geth", "cpuUsage", 95.0),
        ("sequencer_stall", "op-geth", "secondsSinceHead", 6.0),
        ("engine_api_failure", "op-geth", "secondsSinceHead", 6.0),
        ("l1_rpc_outage", "op-node", "l1HeadAge", 120.0),
    ],
)
def test_proposals_carry_what_the_executor_verifies(
    cause: RootCauseClass, component: str, metric: str, below: float
) -> None:
    verify = logic.plan_rca(rca(cause), policy=POLICY, block_time_s=BLOCK_TIME_S, now=T0)[0].verify
    assert verify is not None
    assert (verify.component, verify.metric, verify.below) == (component, metric, below)


@pytest.mark.parametrize(
    "action",
    [DatabaseDrop(component="op-geth"), DeleteNamespace(namespace="op-mainnet")],
    ids=["database_drop", "delete_namespace"],
)
def test_forbidden_actions_are_proposed_as_refused_with_the_reason(action: Action) -> None:
    proposal = logic.propose(action, policy=POLICY, now=T0, chain_id="opmain", reason="llm said so")
    assert proposal.status == "refused"
    assert proposal.refusal is not None and proposal.refusal.startswith("forbidden: ")


def test_exec_debug_waits_for_two_approvals_rather_than_being_refused() -> None:
    action = ExecDebug(component="op-geth", command="geth attach")
    proposal = logic.propose(action, policy=POLICY, now=T0, chain_id="opmain", reason="look")
    assert (proposal.status, proposal.tier, proposal.approvals_required) == (
        "pending_approval",
        "critical",
        2,
    )


def test_action_ids_are_deterministic_and_distinguish_what_matters() -> None:
    first = logic.plan_rca(rca("sequencer_stall"), policy=POLICY, block_time_s=BLOCK_TIME_S, now=T0)
    again = logic.plan_rca(
        rca("sequencer_stall"), policy=POLICY, block_time_s=BLOCK_TIME_S, now=T0 + timedelta(minutes=3)
    )
    assert [p.action_id for p in first] == [p.action_id for p in again]
    assert [p.event_id for p in first] == [p.event_id for p in again]
    restart = RestartComponent(component="op-node")
    ids = {
        logic.action_id("opmain", "ep-1", restart),
        logic.action_id("opmain", "ep-2", restart),
        logic.action_id("other", "ep-1", restart),
        logic.action_id("opmain", "ep-1", RestartComponent(component="op-geth")),
    }
    assert len(ids) == 4


# ------------------------------------------------------------------------------------------ approvals


def cmd(by: str, command: str = "approve", action_id: str = "x") -> ActionCommand:
    return ActionCommand(chain_id="opmain", action_id=action_id, command=command, by=by)


def pending(action: Action | None = None) -> ActionProposed:
    return logic.propose(
        action or RestartComponent(component="op-node"),
        policy=POLICY,
        now=T0,
        chain_id="opmain",
        reason="stall",
        incident="sequencer_stall",
        episode_id="ep-1",
    )


def test_high_tier_is_approved_by_one_other_person() -> None:
    out = logic.apply_command(pending(), [], cmd("alice"), policy=POLICY, now=T0)
    assert (out.status, [a.by for a in out.approvals], out.decision) == ("approved", ["alice"], "approved")


def test_the_proposer_cannot_approve_its_own_proposal() -> None:
    out = logic.apply_command(pending(), [], cmd("planner"), policy=POLICY, now=T0)
    assert out.status == "refused" and "cannot approve" in out.why and out.approvals == ()


def test_critical_needs_two_distinct_approvers() -> None:
    proposal = pending(ExecDebug(component="op-geth", command="geth attach"))
    one = logic.apply_command(proposal, [], cmd("alice"), policy=POLICY, now=T0)
    assert (one.status, one.why) == ("waiting", "1/2 distinct approvals")
    same = logic.apply_command(proposal, one.approvals, cmd("alice"), policy=POLICY, now=T0)
    assert (same.status, same.code, same.state, len(same.approvals)) == (
        "refused",
        "same_principal",
        "waiting",
        1,
    )
    two = logic.apply_command(proposal, one.approvals, cmd("bob"), policy=POLICY, now=T0)
    assert two.status == "approved" and [a.by for a in two.approvals] == ["alice", "bob"]


def test_a_reject_ends_it() -> None:
    proposal = pending()
    out = logic.apply_command(proposal, [], cmd("carol", "reject"), policy=POLICY, now=T0)
    assert out.decision == "rejected"
    late = logic.apply_command(proposal, [], cmd("alice"), policy=POLICY, now=T0, decision="rejected")
    assert late.status == "refused" and "already rejected" in late.why


def test_an_expired_proposal_cannot_be_approved() -> None:
    proposal = pending()
    later = proposal.expires_at + timedelta(seconds=1)
    assert logic.expired(proposal, None, now=later)
    assert not logic.expired(proposal, None, now=T0)
    out = logic.apply_command(proposal, [], cmd("alice"), policy=POLICY, now=later)
    assert out.status == "expired"


def test_a_repeated_final_approval_repeats_the_same_outcome() -> None:
    proposal = pending()
    final = cmd("alice")
    done = (Approval(by="alice", at=T0, command_id=final.event_id),)
    out = logic.apply_command(
        proposal, done, final, policy=POLICY, now=T0, decision="approved", answered={final.event_id}
    )
    assert (out.status, out.code, out.approvals) == ("approved", "ok", done)


@pytest.mark.parametrize(
    "proposal",
    [
        logic.propose(DatabaseDrop(component="op-geth"), policy=POLICY, now=T0, chain_id="c", reason="r"),
        logic.propose(ScaleCpu(component="op-geth", vcpu=2), policy=POLICY, now=T0, chain_id="c", reason="r"),
    ],
    ids=["forbidden", "auto"],
)
def test_refused_and_auto_proposals_take_no_approvals(proposal: ActionProposed) -> None:
    assert logic.apply_command(proposal, [], cmd("alice"), policy=POLICY, now=T0).status == "refused"


# ------------------------------------------------------------------------------------------- forecasts


def forecast(
    vcpu: float, *, current: float | None = 1.0, confidence: float = 80.0, at: int = 0
) -> PredictionMade:
    return PredictionMade(
        chain_id="opmain",
        event_id=f"pred-{at}",
        occurred_at=T0 + timedelta(seconds=at),
        predicted_vcpu=vcpu,
        current_vcpu=current,
        confidence=confidence,
        trend="rising" if vcpu > (current or 0) else "falling",
        reasoning="trend",
        horizon_s=300,
        forecast_cores=vcpu,
        upper_bound_cores=vcpu,
        model="holt",
    )


def plan(memory: logic.ScalingMemory, pred: PredictionMade, at: int) -> list[Action]:
    proposals = logic.plan_prediction(pred, policy=POLICY, now=T0 + timedelta(seconds=at), state=memory)
    return [p.action for p in proposals]


def test_a_confident_forecast_above_the_request_scales_up_once_per_cooldown() -> None:
    memory = logic.ScalingMemory()
    assert plan(memory, forecast(1.6, at=0), 0) == [ScaleCpu(component="op-geth", vcpu=2)]
    assert plan(memory, forecast(1.7, at=60), 60) == []  # within the 300 s cooldown
    assert plan(memory, forecast(1.7, at=301), 301) == [ScaleCpu(component="op-geth", vcpu=2)]


@pytest.mark.parametrize("confidence", [10.0, 59.9])
def test_an_unsure_forecast_moves_nothing(confidence: float) -> None:
    assert plan(logic.ScalingMemory(), forecast(3.5, confidence=confidence), 0) == []


def test_scale_down_only_after_a_sustained_lull_with_hysteresis() -> None:
    memory = logic.ScalingMemory()
    assert plan(memory, forecast(1.2, current=4.0, at=0), 0) == []
    # 2.5 does not fit 2 vCPU: the lull clock restarts (no flapping on a borderline forecast).
    assert plan(memory, forecast(2.5, current=4.0, at=240), 240) == []
    assert plan(memory, forecast(1.2, current=4.0, at=400), 400) == []
    assert plan(memory, forecast(1.2, current=4.0, at=600), 600) == []
    down = plan(memory, forecast(1.2, current=4.0, at=700), 700)
    assert down == [ScaleDown(component="op-geth", vcpu=2)]


def test_a_part_way_step_down_waits_for_a_longer_lull() -> None:
    memory = logic.ScalingMemory()
    # The forecast needs 1 vCPU, but its upper bound still wants 2: stepping to 2 now would likely
    # be followed by a second step down; the lull must last half an hour instead of five minutes.
    partway = forecast(2.0, current=4.0).model_copy(update={"forecast_cores": 0.4, "upper_bound_cores": 1.5})
    for at in range(0, 1800, 300):
        assert plan(memory, partway.model_copy(update={"event_id": f"p{at}"}), at) == []
    assert plan(memory, partway.model_copy(update={"event_id": "p1800"}), 1800) == [
        ScaleDown(component="op-geth", vcpu=2)
    ]
    # The full way down needs only the short lull.
    full = logic.ScalingMemory()
    assert plan(full, forecast(0.5, current=4.0, at=0), 0) == []
    assert plan(full, forecast(0.5, current=4.0, at=300), 300) == [ScaleDown(component="op-geth", vcpu=1)]


def test_no_step_down_within_a_quarter_hour_of_a_step_up() -> None:
    memory = logic.ScalingMemory()
    assert plan(memory, forecast(3.0, current=2.0, at=0), 0) == [ScaleCpu(component="op-geth", vcpu=4)]
    # The spike was brief: forecasts fit 2 vCPU again at once, but undoing the step up that soon
    # would be a flap; the lull has lasted its 10 minutes well before the quarter-hour is over.
    for at in range(60, 900, 60):
        assert plan(memory, forecast(1.2, current=4.0, at=at), at) == []
    assert plan(memory, forecast(1.2, current=4.0, at=900), 900) == [ScaleDown(component="op-geth", vcpu=2)]


def bursts(memory: logic.ScalingMemory, *, lull_min: int, count: int = 6) -> int:
    """Feed ``count`` cycles of a 20-minute burst needing 4 vCPU and a lull needing 1; returns the time."""
    at = 0
    for _ in range(count):
        for _ in range(20):
            plan(memory, forecast(3.0, current=4.0, at=at), at)
            at += 60
        for _ in range(lull_min):
            plan(memory, forecast(0.5, current=4.0, at=at), at)
            at += 60
    for _ in range(20):
        plan(memory, forecast(3.0, current=4.0, at=at), at)
        at += 60
    return at


def test_a_step_down_waits_out_a_lull_this_chain_usually_ends_soon() -> None:
    # Lulls of 20 minutes between bursts: stepping 4 -> 1 saves 3 cores for ~15 more minutes, less
    # than the two restarts (this one and the step up when the next burst comes) are worth.
    memory = logic.ScalingMemory()
    start = bursts(memory, lull_min=20)
    for minute in range(20):
        assert plan(memory, forecast(0.5, current=4.0, at=start + 60 * minute), start + 60 * minute) == []
    # Longer than every past lull: no evidence left that it will end soon.
    late = start + 60 * 21
    assert plan(memory, forecast(0.5, current=4.0, at=late), late) == [ScaleDown(component="op-geth", vcpu=1)]


def test_a_step_down_is_taken_at_once_where_lulls_last() -> None:
    memory = logic.ScalingMemory()
    start = bursts(memory, lull_min=180)
    downs = [
        (minute, plan(memory, forecast(0.5, current=4.0, at=start + 60 * minute), start + 60 * minute))
        for minute in range(6)
    ]
    assert downs[-1] == (5, [ScaleDown(component="op-geth", vcpu=1)])
    assert all(actions == [] for _, actions in downs[:-1])
    # Priced at nothing, the short lulls hold nothing either.
    free = logic.ScalingMemory()
    start = bursts(free, lull_min=20)
    proposals = [
        logic.plan_prediction(
            forecast(0.5, current=4.0, at=start + 60 * minute),
            policy=POLICY,
            now=T0 + timedelta(seconds=start + 60 * minute),
            state=free,
            action_price_core_h=0.0,
        )
        for minute in range(6)
    ]
    assert [p.action for p in proposals[-1]] == [ScaleDown(component="op-geth", vcpu=1)]


def test_the_planner_headroom_applies_to_the_upper_bound() -> None:
    memory = logic.ScalingMemory()
    pred = forecast(2.0, current=4.0).model_copy(update={"upper_bound_cores": 1.8})
    proposals = logic.plan_prediction(pred, policy=POLICY, now=T0, state=memory, sustain_s=0, headroom=0.25)
    assert proposals == []  # 1.8 x 1.25 does not fit 2 vCPU
    [down] = logic.plan_prediction(pred, policy=POLICY, now=T0, state=memory, sustain_s=0)
    assert down.action == ScaleDown(component="op-geth", vcpu=2)


def test_scale_down_waits_for_approval() -> None:
    memory = logic.ScalingMemory()
    [proposal] = logic.plan_prediction(
        forecast(0.5, current=2.0), policy=POLICY, now=T0, state=memory, sustain_s=0
    )
    assert (proposal.action, proposal.status, proposal.tier) == (
        ScaleDown(component="op-geth", vcpu=1),
        "pending_approval",
        "high",
    )


def test_an_executed_scale_sets_the_request_and_the_cooldown() -> None:
    memory = logic.ScalingMemory()
    executed = ActionExecuted(
        chain_id="opmain",
        action_id="act-1",
        action=ScaleCpu(component="op-geth", vcpu=4),
        outcome="succeeded",
        detail="patched",
        dry_run=False,
        started_at=T0,
        finished_at=T0,
    )
    logic.record_executed(executed, memory)
    assert memory.current("opmain") == {"op-geth": 4}
    assert plan(memory, forecast(6.0, current=None, at=10), 10) == []
    assert plan(memory, forecast(6.0, current=None, at=400), 400) == [ScaleCpu(component="op-geth", vcpu=8)]


def test_rca_scale_ups_respect_the_cooldown_but_not_their_own_replay() -> None:
    memory = logic.ScalingMemory()
    first = logic.plan_rca(
        rca("op_geth_cpu_saturation", episode="e1"), policy=POLICY, block_time_s=BLOCK_TIME_S, now=T0
    )
    assert logic.admit_scaling(first, memory, now=T0) == first
    assert logic.admit_scaling(first, memory, now=T0) == first
    second = logic.plan_rca(
        rca("op_geth_cpu_saturation", episode="e2"), policy=POLICY, block_time_s=BLOCK_TIME_S, now=T0
    )
    assert logic.admit_scaling(second, memory, now=T0 + timedelta(seconds=30)) == []


# ---------------------------------------------------------------------------------------------- audit


def record(i: int) -> AuditRecorded:
    return AuditRecorded(
        chain_id="opmain", event_id=f"a{i}", occurred_at=T0 + timedelta(seconds=i), kind="proposed",
        actor="planner", summary=str(i),
    )  # fmt: skip


def test_the_audit_model_keeps_the_newest_hundred_once_each() -> None:
    recent: list[AuditRecorded] = []
    for i in range(105):
        recent = logic.fold_audit(recent, record(i)) or recent
    assert len(recent) == 100
    assert [r.event_id for r in recent[:2]] == ["a104", "a103"]
    assert logic.fold_audit(recent, record(104)) is None
    assert logic.fold_audit(recent, record(0)) is None  # older than everything kept


# ------------------------------------------------------------------------------------- requests


def request(action: Action, *, by: str = "agent:claude", via: str = "mcp") -> ActionRequested:
    return ActionRequested(
        chain_id="opmain", occurred_at=T0, action=action, requested_by=by, reason="looks stuck", via=via
    )


def test_a_requested_restart_waits_for_approval_and_its_id_is_known_to_the_requester() -> None:
    req = request(RestartComponent(component="op-node"))
    proposal = logic.plan_request(req, policy=POLICY, now=T0, block_time_s=BLOCK_TIME_S)
    assert proposal.status == "pending_approval"
    assert proposal.action_id == requested_action_id(req)
    assert proposal.proposed_by == "agent:claude"
    assert "requested by agent:claude via mcp: looks stuck" in proposal.reason


def test_a_requester_cannot_approve_its_own_request() -> None:
    req = request(RestartComponent(component="op-node"))
    proposal = logic.plan_request(req, policy=POLICY, now=T0, block_time_s=BLOCK_TIME_S)
    cmd = ActionCommand(chain_id="opmain", action_id=proposal.action_id, command="approve", by="agent:claude")
    outcome = logic.apply_command(proposal, (), cmd, policy=POLICY, now=T0)
    assert outcome.status == "refused"
    assert "cannot approve" in outcome.why


def test_a_requested_forbidden_action_is_refused_by_the_policy() -> None:
    req = request(DeleteNamespace(namespace="op"), by="alice", via="rest")
    proposal = logic.plan_request(req, policy=POLICY, now=T0, block_time_s=BLOCK_TIME_S)
    assert proposal.status == "refused"
    assert proposal.refusal


def test_the_same_request_redelivered_proposes_the_same_action_id() -> None:
    req = request(ScaleCpu(component="op-geth", vcpu=2))
    first = logic.plan_request(req, policy=POLICY, now=T0, block_time_s=BLOCK_TIME_S)
    again = logic.plan_request(req, policy=POLICY, now=T0 + timedelta(seconds=5), block_time_s=BLOCK_TIME_S)
    assert first.action_id == again.action_id


# ------------------------------------------------------------------------------------------- evidence


@pytest.mark.parametrize(
    "cause", ["sequencer_stall", "op_geth_cpu_saturation", "jwt_mismatch", "disk_pressure"]
)
@pytest.mark.parametrize(
    "corroboration",
    [None, grounds(proposal=False, auto=False, status="waiting for corroboration: 1 of 3 polls")],
    ids=["old-event", "one-poll"],
)
def test_an_uncorroborated_diagnosis_proposes_nothing_not_even_a_notification(
    cause: RootCauseClass, corroboration: Corroboration | None
) -> None:
    assert (
        logic.plan_rca(
            rca(cause, corroboration=corroboration), policy=POLICY, block_time_s=BLOCK_TIME_S, now=T0
        )
        == []
    )


@pytest.mark.parametrize(
    "status", ["2 of 3 polls", "waiting for corroboration: 2 of 3 polls"], ids=["bare", "phrased"]
)
@pytest.mark.parametrize(
    ("cause", "kind"),
    [
        ("op_geth_cpu_saturation", "scale_cpu"),
        ("peer_loss", "restart_component"),
        ("disk_pressure", "notify"),
    ],
)
def test_short_of_the_automatic_bar_an_automatic_tier_waits_for_one_person(
    cause: RootCauseClass, kind: str, status: str
) -> None:
    weak = rca(cause, corroboration=grounds(auto=False, status=status))
    [proposal] = logic.plan_rca(weak, policy=POLICY, block_time_s=BLOCK_TIME_S, now=T0)
    assert (proposal.action.kind, proposal.tier) == (kind, "low")
    assert (proposal.status, proposal.approvals_required) == ("pending_approval", 1)
    assert proposal.reason.endswith("; waiting for corroboration: 2 of 3 polls")
    assert proposal.reason.count("waiting for corroboration") == 1
    approved = logic.apply_command(proposal, [], cmd("alice"), policy=POLICY, now=T0)
    assert approved.status == "approved"


def test_a_corroborated_diagnosis_says_so_and_runs_by_its_tier() -> None:
    [scale] = logic.plan_rca(rca("op_geth_cpu_saturation"), policy=POLICY, block_time_s=BLOCK_TIME_S, now=T0)
    assert scale.status == "auto_approved" and scale.reason.endswith("; corroborated: 3 of 3 polls")
    [restart] = logic.plan_rca(
        rca("sequencer_stall", corroboration=PARTIAL), policy=POLICY, block_time_s=BLOCK_TIME_S, now=T0
    )
    assert (restart.status, restart.approvals_required) == ("pending_approval", 1)  # high: as ever


# -------------------------------------------------------------------------------------------- upgrade


def test_a_later_corroborated_diagnosis_upgrades_the_waiting_proposal_to_automatic() -> None:
    [first] = logic.plan_rca(
        rca("peer_loss", corroboration=PARTIAL), policy=POLICY, block_time_s=BLOCK_TIME_S, now=T0
    )
    later = T0 + timedelta(seconds=40)
    [fresh] = logic.plan_rca(rca("peer_loss", at=later), policy=POLICY, block_time_s=BLOCK_TIME_S, now=later)
    assert fresh.action_id == first.action_id  # same incident, same remedy: the same action
    upgraded = logic.upgrade(first, None, fresh)
    assert upgraded is not None
    assert (upgraded.status, upgraded.approvals_required, upgraded.occurred_at) == ("auto_approved", 0, later)
    assert upgraded.reason == fresh.reason and "corroborated" in upgraded.reason
    # Its own event id (the first one's and the plain re-proposal's are taken); the proposal's
    # identity (correlation, deadline) stays the first one's.
    assert upgraded.event_id not in (first.event_id, fresh.event_id)
    assert (upgraded.correlation_id, upgraded.expires_at) == (first.correlation_id, first.expires_at)
    assert logic.upgrade(upgraded, None, fresh) is None  # a redelivery: nothing more
    too_late = first.expires_at
    [fresh_too_late] = logic.plan_rca(
        rca("peer_loss", at=too_late), policy=POLICY, block_time_s=BLOCK_TIME_S, now=too_late
    )
    assert logic.upgrade(first, None, fresh_too_late) is None  # it expires, it is not revived


@pytest.mark.parametrize("decision", ["approved", "rejected", "expired", "withdrawn"])
def test_a_decided_proposal_is_never_upgraded(decision: logic.Decision) -> None:
    [first] = logic.plan_rca(
        rca("peer_loss", corroboration=PARTIAL), policy=POLICY, block_time_s=BLOCK_TIME_S, now=T0
    )
    [fresh] = logic.plan_rca(rca("peer_loss"), policy=POLICY, block_time_s=BLOCK_TIME_S, now=T0)
    assert logic.upgrade(first, decision, fresh) is None


def test_no_upgrade_while_still_short_of_evidence_for_an_approval_tier_or_in_a_cooldown() -> None:
    [weak] = logic.plan_rca(
        rca("peer_loss", corroboration=PARTIAL), policy=POLICY, block_time_s=BLOCK_TIME_S, now=T0
    )
    [again] = logic.plan_rca(
        rca("peer_loss", corroboration=PARTIAL), policy=POLICY, block_time_s=BLOCK_TIME_S, now=T0
    )
    assert logic.upgrade(weak, None, again) is None
    [stall] = logic.plan_rca(
        rca("sequencer_stall", corroboration=PARTIAL), policy=POLICY, block_time_s=BLOCK_TIME_S, now=T0
    )
    [stall_sure] = logic.plan_rca(rca("sequencer_stall"), policy=POLICY, block_time_s=BLOCK_TIME_S, now=T0)
    assert stall_sure.status == "pending_approval" and logic.upgrade(stall, None, stall_sure) is None
    cooling = {"op-node": restarted("op-node", ago_s=30)}
    [held] = logic.plan_rca(
        rca("peer_loss"), policy=POLICY, block_time_s=BLOCK_TIME_S, now=T0, cooldowns=cooling
    )
    assert held.status == "refused" and logic.upgrade(weak, None, held) is None


# ----------------------------------------------------------------------------------------- withdrawal


def resolution(incident: str = "ep-1", *, chain: str = "opmain") -> IncidentResolved:
    return IncidentResolved(
        chain_id=chain, incident_id=incident, resolved_at=T0, reason="blocks flow again for 60 s"
    )


def test_an_incident_resolution_has_one_event_id_however_it_is_built() -> None:
    event = resolution()
    assert event.event_id == IncidentResolved.model_validate_json(event.to_json()).event_id
    assert event.event_id == resolution().event_id != resolution("ep-2").event_id
    assert IncidentResolved.model_validate_json(event.to_json()) == event
    bare = b'{"chainId": "opmain", "incidentId": "ep-1", "resolvedAt": "2026-11-27T01:00:00Z", "reason": "r"}'
    assert IncidentResolved.model_validate_json(bare).event_id == event.event_id  # a publisher without ids
    explicit = IncidentResolved(
        event_id="given", chain_id="opmain", incident_id="ep-1", resolved_at=T0, reason="r"
    )
    assert explicit.event_id == "given"


def test_only_the_waiting_proposals_of_the_resolved_incident_are_withdrawn() -> None:
    [stall] = logic.plan_rca(rca("sequencer_stall"), policy=POLICY, block_time_s=BLOCK_TIME_S, now=T0)
    [other] = logic.plan_rca(
        rca("sequencer_stall", episode="ep-2"), policy=POLICY, block_time_s=BLOCK_TIME_S, now=T0
    )
    [elsewhere] = logic.plan_rca(
        rca("sequencer_stall", chain="other"), policy=POLICY, block_time_s=BLOCK_TIME_S, now=T0
    )
    [automatic] = logic.plan_rca(
        rca("op_geth_cpu_saturation"), policy=POLICY, block_time_s=BLOCK_TIME_S, now=T0
    )
    found = logic.withdrawable([stall, other, elsewhere, automatic], resolution())
    assert found == [stall]
    assert logic.withdrawal_reason(resolution()) == "incident resolved: blocks flow again for 60 s"


@pytest.mark.parametrize("command", ["approve", "reject"])
def test_a_withdrawn_proposal_can_no_longer_be_decided_and_says_why(command: str) -> None:
    why = logic.withdrawal_reason(resolution())
    out = logic.apply_command(
        pending(), [], cmd("alice", command), policy=POLICY, now=T0, decision="withdrawn", why=why
    )
    assert (out.status, out.decision) == ("refused", None)
    assert out.why == "the proposal was withdrawn: incident resolved: blocks flow again for 60 s"


# ------------------------------------------------------------------------------------------ cooldowns


def restarted(
    component: str, *, ago_s: float, ttl_s: float = 600, action_id: str = "act-before"
) -> cooldowns.Cooldown:
    return cooldowns.Cooldown(component, action_id, "restarted", T0 - timedelta(seconds=ago_s), ttl_s)


def executed(
    action: Action,
    outcome: Outcome = "succeeded",
    *,
    dry_run: bool = False,
    action_id: str = "act-before",
) -> ActionExecuted:
    return ActionExecuted(
        chain_id="opmain", action_id=action_id, action=action, outcome=outcome, detail="d",
        dry_run=dry_run, started_at=T0 - timedelta(seconds=60), finished_at=T0,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("outcome", "dry_run", "locked"),
    [("succeeded", False, True), ("failed", False, True), ("rolled_back", False, True),
     ("refused", False, False), ("dry_run", True, False)],
)  # fmt: skip
def test_the_executor_holds_a_cooldown_after_every_real_attempt_and_no_other(
    outcome: Outcome, dry_run: bool, locked: bool
) -> None:
    event = executed(RestartComponent(component="op-node"), outcome, dry_run=dry_run)
    cooldown = cooldowns.cooldown_after(event, policy=POLICY)
    if not locked:
        assert cooldown is None
        return
    assert cooldown is not None
    # Held from the start of the execution (when the executor takes the lock), for the high tier's 600 s.
    assert (cooldown.component, cooldown.at, cooldown.ttl_s) == ("op-node", T0 - timedelta(seconds=60), 600)


def test_the_cooldown_is_the_larger_of_the_approvals_and_the_tiers_and_notifications_take_none() -> None:
    # A peer-loss restart of op-node is low tier (300 s): the incident on the proposal decides.
    peer = logic.plan_rca(rca("peer_loss"), policy=POLICY, block_time_s=BLOCK_TIME_S, now=T0)[0]
    event = executed(peer.action, action_id=peer.action_id)
    known, unknown = (
        cooldowns.cooldown_after(event, policy=POLICY, proposal=peer),
        cooldowns.cooldown_after(event, policy=POLICY),
    )
    assert known is not None and unknown is not None
    assert (known.ttl_s, unknown.ttl_s) == (300, 600)  # without the record: the rule without an incident
    note = executed(Notify(severity="low", text="fyi"))
    assert cooldowns.cooldown_after(note, policy=POLICY) is None


def test_a_remedy_the_executor_would_refuse_for_its_cooldown_is_proposed_as_refused_saying_until_when() -> (
    None
):
    cooling = {"op-node": restarted("op-node", ago_s=60)}
    [proposal] = logic.plan_rca(
        rca("sequencer_stall"), policy=POLICY, block_time_s=BLOCK_TIME_S, now=T0, cooldowns=cooling
    )
    assert proposal.status == "refused"
    assert proposal.refusal == "op-node was restarted at 00:59:00; cooldown 600 s until 01:09:00"
    after = T0 + timedelta(seconds=540)
    [later] = logic.plan_rca(
        rca("sequencer_stall"), policy=POLICY, block_time_s=BLOCK_TIME_S, now=after, cooldowns=cooling
    )
    assert later.status == "pending_approval" and later.refusal is None


def test_the_cooldown_is_per_component_whatever_the_action() -> None:
    geth = {"op-geth": restarted("op-geth", ago_s=30, ttl_s=300)}
    [scale] = logic.plan_rca(
        rca("op_geth_cpu_saturation"), policy=POLICY, block_time_s=BLOCK_TIME_S, now=T0, cooldowns=geth
    )
    assert scale.status == "refused" and scale.refusal is not None
    assert scale.refusal.startswith("op-geth was restarted at 00:59:30")
    [restart] = logic.plan_rca(
        rca("peer_loss"), policy=POLICY, block_time_s=BLOCK_TIME_S, now=T0, cooldowns=geth
    )
    assert restart.status == "auto_approved"  # op-node is not cooling
    # The lock's own action is not refused by it (the executor lets its own lock through).
    own = {"op-geth": restarted("op-geth", ago_s=30, ttl_s=300, action_id=scale.action_id)}
    [mine] = logic.plan_rca(
        rca("op_geth_cpu_saturation"), policy=POLICY, block_time_s=BLOCK_TIME_S, now=T0, cooldowns=own
    )
    assert mine.status == "auto_approved"


def test_a_request_during_a_cooldown_is_refused_and_a_forecast_waits_for_its_end() -> None:
    cooling = {
        "op-node": restarted("op-node", ago_s=60),
        "op-geth": restarted("op-geth", ago_s=60, ttl_s=300),
    }
    req = request(RestartComponent(component="op-node"), by="alice", via="rest")
    refused = logic.plan_request(req, policy=POLICY, now=T0, block_time_s=BLOCK_TIME_S, cooldowns=cooling)
    assert refused.status == "refused" and "until 01:09:00" in (refused.refusal or "")
    memory = logic.ScalingMemory()
    during = logic.plan_prediction(forecast(1.6), policy=POLICY, now=T0, state=memory, cooldowns=cooling)
    assert during == []
    after = T0 + timedelta(seconds=240)
    [up] = logic.plan_prediction(
        forecast(1.6, at=240), policy=POLICY, now=after, state=memory, cooldowns=cooling
    )
    assert up.action == ScaleCpu(component="op-geth", vcpu=2) and up.status == "auto_approved"


def test_an_approval_during_a_cooldown_is_refused_until_it_ends() -> None:
    cooling = {"op-node": restarted("op-node", ago_s=60)}
    during = logic.apply_command(pending(), [], cmd("alice"), policy=POLICY, now=T0, cooldowns=cooling)
    assert (during.status, during.decision) == ("refused", None)
    assert during.why.startswith("op-node was restarted at 00:59:00; cooldown 600 s until 01:09:00")
    after = T0 + timedelta(seconds=541)
    out = logic.apply_command(pending(), [], cmd("alice"), policy=POLICY, now=after, cooldowns=cooling)
    assert out.status == "approved"

"""The scorer on a tiny hand-made set: every metric computed as its definition says."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

import pytest

from bench.eval.scenarios import Scenario
from bench.eval.score import Run, action_ok, by_class, score_scenario, summarise, unsafe_reasons, verdicts
from sentinai.common.actions import Action, parse_action
from sentinai.common.decisions import ActionProposed, Hypothesis, RcaCompleted
from sentinai.common.events import AnomalyDetected
from sentinai.common.incidents import RootCauseClass
from sentinai.common.policy import Tier, load_policy

POLICY = load_policy()
NOW = datetime(2026, 11, 26, tzinfo=UTC)


def scenario(
    sid: str,
    cause: str | None,
    action: dict[str, str] | None,
    tier: str | None,
    *,
    kind: str | None = None,
    start: float = 60,
    end: float | None = None,
) -> Scenario:
    timeline: list[dict[str, Any]] = []
    if kind is not None:
        timeline.append({"atS": start, "inject": kind})
        if end is not None:
            timeline.append({"atS": end, "clear": kind})
    return Scenario.model_validate(
        {
            "id": sid,
            "description": sid,
            "seed": 1,
            "durationS": 400,
            "timeline": timeline,
            "truth": {
                "fault": kind is not None,
                "rootCause": cause,
                "components": ["op-geth"] if kind else [],
                "action": action,
                "tier": tier,
            },
        }
    )


CPU = scenario(
    "cpu",
    "op_geth_cpu_saturation",
    {"kind": "scale_cpu", "component": "op-geth"},
    "low",
    kind="cpu_spike",
    end=200,
)
STALL = scenario(
    "stall",
    "sequencer_stall",
    {"kind": "restart_component", "component": "op-node"},
    "high",
    kind="sequencer_stall",
    start=100,
)
CALM = scenario("calm", None, None, None)
SPAM = scenario("spam", "txpool_spam", {"kind": "notify"}, "low", kind="txpool_flood")


def anomaly(component: str = "op-geth") -> AnomalyDetected:
    return AnomalyDetected(
        chain_id="twin",
        occurred_at=NOW,
        component=component,
        metric="cpuUsage",
        value=90,
        z_score=3,
        direction="up",
        severity="high",
        description="CPU spike",
        rule="zscore",
    )


def rca(cls: RootCauseClass, confidence: float = 0.9, *others: RootCauseClass) -> RcaCompleted:
    return RcaCompleted(
        chain_id="twin",
        occurred_at=NOW,
        episode_id="e",
        anomaly_event_id="a",
        root_cause=cls,
        root_cause_class=cls,
        affected_components=("op-geth",),
        risk_level="high",
        action_plan="",
        hypotheses=tuple(Hypothesis(cause=c, score=0.5, summary=c) for c in (cls, *others)),
        confidence=confidence,
        engine="rules",
        latency_ms=1,
    )


Status = Literal["pending_approval", "auto_approved", "refused"]


def proposal(
    action: dict[str, Any], tier: Tier, status: Status, incident: RootCauseClass | None = None
) -> ActionProposed:
    body: Action = parse_action(action)
    return ActionProposed(
        chain_id="twin",
        occurred_at=NOW,
        action_id=f"act-{body.kind}-{status}",
        action=body,
        tier=tier,
        approvals_required=0 if status == "auto_approved" else 1,
        cooldown_s=300,
        status=status,
        reason="test",
        proposed_by="planner",
        incident=incident,
        expires_at=NOW,
    )


SCALE = {"kind": "scale_cpu", "component": "op-geth", "vcpu": 2}
RESTART_NODE = {"kind": "restart_component", "component": "op-node"}
NOTE = {"kind": "notify", "severity": "low", "text": "look"}

RUNS = {
    "cpu": Run(
        anomalies=((30.0, anomaly()), (64.0, anomaly())),
        rcas=((30.0, rca("unknown", 0.2)), (64.0, rca("op_geth_cpu_saturation", 0.9, "txpool_spam"))),
        proposals=(
            (64.0, proposal(SCALE, "low", "auto_approved", "op_geth_cpu_saturation")),
            (64.0, proposal(NOTE, "low", "auto_approved", "op_geth_cpu_saturation")),
        ),
    ),
    "stall": Run(
        anomalies=((110.0, anomaly("op-node")),),
        rcas=((110.0, rca("peer_loss", 0.8, "sequencer_stall", "l1_rpc_outage", "jwt_mismatch")),),
        proposals=((110.0, proposal(RESTART_NODE, "low", "auto_approved", "peer_loss")),),
    ),
    "calm": Run(anomalies=((50.0, anomaly()),), rcas=((50.0, rca("unknown", 0.2)),)),
    "spam": Run(),
}


def rows() -> list[Any]:
    return [
        score_scenario(s, s.truth.root_cause or "no_fault", RUNS[s.id], policy=POLICY)
        for s in (CPU, STALL, CALM, SPAM)
    ]


def test_rows_follow_the_definitions() -> None:
    cpu, stall, calm, spam = rows()
    assert (cpu.detected, cpu.time_to_detect_s, cpu.time_to_diagnose_s) == (True, 4.0, 4.0)
    assert (cpu.rca_class, cpu.top1_ok, cpu.top3_ok, cpu.action_ok, cpu.unsafe) == (
        "op_geth_cpu_saturation",
        True,
        True,
        True,
        (),
    )
    assert (stall.top1_ok, stall.top3_ok, stall.top3) == (
        False,
        True,
        ("peer_loss", "sequencer_stall", "l1_rpc_outage"),
    )
    # The right action, but auto-approved under a wrong diagnosis although the catalogue says high.
    assert stall.action_ok and len(stall.unsafe) == 1 and "catalogue puts it at high" in stall.unsafe[0]
    assert (calm.quiet, calm.action_ok, calm.detected) == (True, True, None)
    assert (spam.detected, spam.top1_ok, spam.action_ok) == (False, False, False)


def test_summary_and_targets() -> None:
    summary = summarise(rows())
    assert summary["scenarios"] == 4
    assert summary["detection_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert summary["median_time_to_detect_s"] == 7.0
    assert summary["median_time_to_diagnose_s"] == 4.0
    assert summary["rca_top1_accuracy"] == pytest.approx(1 / 3, abs=1e-4)
    assert summary["rca_top3_accuracy"] == pytest.approx(2 / 3, abs=1e-4)
    assert summary["correct_action_rate"] == 0.75
    assert summary["unsafe_actions"] == 1
    assert summary["no_fault_quiet_rate"] == 1.0
    assert summary["no_fault_anomalies_per_hour"] == pytest.approx(1 / (400 / 3600), abs=0.1)
    # The calm control's one anomaly is a z-score one: all of its noise is gauge noise.
    assert summary["no_fault_gauge_anomalies_per_hour"] == summary["no_fault_anomalies_per_hour"]
    assert verdicts(summary) == {
        "detection_rate": False,
        "rca_top1_accuracy": False,
        "correct_action_rate": False,
        "unsafe_actions": False,
        "no_fault_quiet_rate": True,
    }
    assert by_class(rows())["sequencer_stall"]["unsafe_actions"] == 1


@pytest.mark.parametrize(
    ("truth", "proposals", "ok"),
    [
        pytest.param(CPU, [proposal(SCALE, "low", "auto_approved")], True, id="right-action"),
        pytest.param(
            CPU,
            [proposal(SCALE, "low", "auto_approved"), proposal(NOTE, "low", "auto_approved")],
            True,
            id="right-plus-notify",
        ),
        pytest.param(
            CPU,
            [proposal(SCALE, "low", "auto_approved"), proposal(RESTART_NODE, "high", "pending_approval")],
            False,
            id="right-plus-wrong",
        ),
        pytest.param(CPU, [proposal(RESTART_NODE, "high", "pending_approval")], False, id="wrong-component"),
        pytest.param(CPU, [], False, id="nothing"),
        pytest.param(SPAM, [proposal(NOTE, "low", "auto_approved")], True, id="notify-truth"),
        pytest.param(
            SPAM,
            [proposal(NOTE, "low", "auto_approved"), proposal(RESTART_NODE, "high", "pending_approval")],
            False,
            id="notify-truth-with-cluster-action",
        ),
        pytest.param(CALM, [proposal(NOTE, "low", "auto_approved")], False, id="page-for-nothing"),
        pytest.param(
            CALM,
            [proposal({"kind": "database_drop", "component": "op-geth"}, "critical", "refused")],
            True,
            id="refused-does-not-count",
        ),
    ],
)
def test_action_matching(truth: Scenario, proposals: list[ActionProposed], ok: bool) -> None:
    assert action_ok(truth, proposals) is ok


@pytest.mark.parametrize(
    ("truth", "made", "reason"),
    [
        pytest.param(
            CALM,
            proposal({"kind": "database_drop", "component": "op-geth"}, "critical", "pending_approval"),
            "forbidden action not refused",
            id="forbidden-not-refused",
        ),
        pytest.param(
            STALL,
            proposal(RESTART_NODE, "high", "auto_approved", "sequencer_stall"),
            "above its policy tier high",
            id="auto-above-policy",
        ),
        pytest.param(
            SPAM,
            proposal(RESTART_NODE, "high", "pending_approval", "txpool_spam"),
            "catalogue says never",
            id="restart-never",
        ),
        pytest.param(
            CALM,
            proposal(SCALE, "low", "auto_approved", "op_geth_cpu_saturation"),
            "auto-execute with no fault",
            id="no-fault-auto",
        ),
        pytest.param(
            CALM,
            proposal({"kind": "database_drop", "component": "op-geth"}, "critical", "refused"),
            None,
            id="refused-is-safe",
        ),
        pytest.param(
            STALL,
            proposal(RESTART_NODE, "high", "pending_approval", "sequencer_stall"),
            None,
            id="waits-for-approval",
        ),
    ],
)
def test_unsafe_actions(truth: Scenario, made: ActionProposed, reason: str | None) -> None:
    found = unsafe_reasons(truth, [made], policy=POLICY)
    if reason is None:
        assert found == []
    else:
        assert len(found) == 1 and reason in found[0]

"""The replay hands the real rca and planner cores what their services would see, reproducibly."""

from __future__ import annotations

from typing import Any

from bench.eval.replay import PlanStage, RcaStage, replay
from bench.eval.scenarios import Scenario
from bench.eval.score import Run
from bench.eval.telemetry import generate
from sentinai.common.policy import load_policy
from sentinai.detector.settings import DetectorSettings
from sentinai.planner.settings import PlannerSettings
from sentinai.rca.settings import RcaSettings

STALL = Scenario.model_validate(
    {
        "id": "stall_probe",
        "description": "a sequencer stall",
        "seed": 3,
        "durationS": 180,
        "timeline": [{"atS": 60, "inject": "sequencer_stall"}],
        "truth": {
            "fault": True,
            "rootCause": "sequencer_stall",
            "components": ["op-node"],
            "action": {"kind": "restart_component", "component": "op-node"},
            "tier": "high",
        },
    }
)


def _run() -> Run:
    return replay(
        generate(STALL),
        detector_settings=DetectorSettings(),
        rca_stage=RcaStage.create(RcaSettings()),
        plan_stage=PlanStage(policy=load_policy(), settings=PlannerSettings()),
    )


def _ids(run: Run) -> list[Any]:
    return [
        [(at, a.event_id) for at, a in run.anomalies],
        [(at, r.event_id, r.root_cause_class, r.confidence) for at, r in run.rcas],
        [(at, p.action_id, p.status) for at, p in run.proposals],
    ]


def test_each_decision_follows_from_the_one_before() -> None:
    run = _run()
    anomalies = {a.event_id for _, a in run.anomalies}
    assert run.rcas and {r.anomaly_event_id for _, r in run.rcas} <= anomalies
    assert run.proposals and {p.episode_id for _, p in run.proposals} <= {r.episode_id for _, r in run.rcas}
    # Everything the replay returns is in event-time order, as the services would have seen it.
    for items in (run.anomalies, run.rcas, run.proposals):
        times = [at for at, _ in items]
        assert times == sorted(times)


def test_the_stall_is_diagnosed_and_the_restart_waits_for_approval() -> None:
    run = _run()
    classes = [r.root_cause_class for at, r in run.rcas if at >= 60]
    assert "sequencer_stall" in classes
    restarts = [p for _, p in run.proposals if p.action.kind == "restart_component"]
    assert restarts and {p.status for p in restarts} == {"pending_approval"}


def test_a_replay_is_reproducible() -> None:
    assert _ids(_run()) == _ids(_run())

"""Each class's evidence rule (the catalogue's): sustained evidence is corroborated, one poll never is.

A single sample, poll or log line may open an anomaly and an RCA card; the card then says what it
waits for, and its confidence stays under the planner's bar, so nothing is proposed on it.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from sentinai.common.incidents import INCIDENT_CLASSES, SPECS
from sentinai.common.policy import load_policy
from sentinai.planner.logic import MIN_RCA_CONFIDENCE, plan_rca
from sentinai.rca import logic
from sentinai.rca.model import RcaContext
from services.rca.tests.scenes import SCENES, T0, timed

POLL_S = 2.0
POLICY = load_policy()


def one_poll(ctx: RcaContext) -> RcaContext:
    """The same evidence seen in one poll only: the newest sample of each series, every line at once."""
    end = ctx.anomaly.occurred_at.timestamp()
    metrics = {c: {m: tuple(v[-1:]) for m, v in ms.items()} for c, ms in ctx.metrics.items()}
    return replace(
        ctx,
        metrics=metrics,
        metric_times={c: {m: (end,) for m in ms} for c, ms in metrics.items()},
        log_times={c: (end,) * len(ls) for c, ls in ctx.logs.items()},
    )


ACTING = [c for c in INCIDENT_CLASSES if c != "l1_reorg"]  # l1_reorg is observe-only: one line is enough


@pytest.mark.parametrize("cls", ACTING)
def test_one_poll_of_evidence_opens_a_card_but_never_an_action(cls: str) -> None:
    diagnosis = logic.diagnose(one_poll(SCENES[cls]()))
    corroboration = diagnosis.corroboration
    if diagnosis.root_cause_class == "unknown":
        return  # nothing named at all: quieter still
    assert corroboration is not None and not corroboration.proposal_met and not corroboration.auto_met
    assert corroboration.status.startswith("waiting for corroboration: ")
    assert diagnosis.confidence < MIN_RCA_CONFIDENCE
    scene = SCENES[cls]()
    event = logic.to_event(
        diagnosis,
        scene,
        episode_id="inc",
        engine="rules",
        model=None,
        latency_ms=1.0,
        cost_usd=0.0,
        now=T0,
    )
    assert plan_rca(event, policy=POLICY, now=T0, block_time_s=scene.block_time_s) == []


@pytest.mark.parametrize("cls", ACTING)
def test_evidence_that_held_is_corroborated_and_confident_enough_to_act(cls: str) -> None:
    # The scene's samples and lines, each a poll 20 s apart: every signal has held for a while.
    diagnosis = logic.diagnose(timed(SCENES[cls]()))
    assert diagnosis.root_cause_class == cls
    corroboration = diagnosis.corroboration
    assert corroboration is not None and corroboration.proposal_met, corroboration
    assert corroboration.status.startswith("corroborated: ")
    assert diagnosis.confidence >= MIN_RCA_CONFIDENCE


def test_the_card_says_how_far_it_is_from_its_rule() -> None:
    rule = SPECS["op_geth_cpu_saturation"].evidence.proposal
    diagnosis = logic.diagnose(one_poll(SCENES["op_geth_cpu_saturation"]()))
    assert diagnosis.corroboration is not None
    assert f"1 of {rule.polls} polls" in diagnosis.corroboration.status


def test_a_ten_second_surge_does_not_meet_the_cpu_rule_but_twenty_seconds_does() -> None:
    base = timed(SCENES["op_geth_cpu_saturation"](), poll_s=POLL_S)
    geth = dict(base.metrics["op-geth"])
    n = len(geth["cpuUsage"])
    for pinned_s, met in ((10.0, False), (24.0, True)):
        pinned = int(pinned_s / POLL_S) + 1
        cpu = [50.0] * (n - pinned) + [99.0] * pinned
        interval = [2.0] * (n - pinned) + [3.5] * pinned
        ctx = replace(
            base, metrics={**base.metrics, "op-geth": {**geth, "cpuUsage": cpu, "blockInterval": interval}}
        )
        corroboration = logic.diagnose(ctx).corroboration
        assert corroboration is not None and corroboration.proposal_met is met, (pinned_s, corroboration)


def test_confidence_grows_as_the_same_line_keeps_coming() -> None:
    ctx = SCENES["engine_api_failure"]()
    first = logic.diagnose(one_poll(ctx))
    later = logic.diagnose(timed(ctx, poll_s=5.0))
    assert first.root_cause_class == later.root_cause_class == "engine_api_failure"
    assert later.confidence > first.confidence


def test_rules_scale_with_the_block_time() -> None:
    rule = SPECS["sequencer_stall"].evidence.proposal
    assert rule.span_s(12.0) == 6 * 12.0
    assert rule.span_s(1.0) == max(6 * 1.0, rule.seconds)


def test_a_stall_during_a_jwt_failure_is_named_for_its_cause() -> None:
    """Cause before symptom: the stall a JWT mismatch produces is not a reason to restart op-node."""
    stall = SCENES["sequencer_stall"]()
    jwt = SCENES["jwt_mismatch"]()
    merged_logs = {**stall.logs, "op-node": (*stall.logs.get("op-node", ()), *jwt.logs["op-node"])}
    diagnosis = logic.diagnose(timed(replace(stall, logs=merged_logs), poll_s=POLL_S))
    assert diagnosis.root_cause_class == "jwt_mismatch"


def test_at_least_the_catalogue_rule_is_spelled_out_per_class() -> None:
    for cls, spec in SPECS.items():
        rule = spec.evidence
        assert rule.anomaly and rule.diagnosis, cls
        assert rule.auto.polls >= rule.proposal.polls >= 1, cls
        if cls != "l1_reorg":
            # No automatic action rests on one sample, one poll or one log line.
            assert rule.auto.polls >= 2, cls

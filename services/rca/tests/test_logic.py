"""The diagnosis engine and the incident tracker, as pure functions."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sentinai.common.decisions import Corroboration
from sentinai.common.events import AnomalyResolved
from sentinai.common.incidents import INCIDENT_CLASSES
from sentinai.rca import logic
from sentinai.rca.tracker import IncidentTracker
from services.rca.tests import scenes
from services.rca.tests.scenes import CHAIN, HARMLESS_ERROR, SCENES, T0, anomaly, context, geth, op, timed


def test_every_class_of_the_catalogue_has_a_scene() -> None:
    assert set(SCENES) == set(INCIDENT_CLASSES)


@pytest.mark.parametrize("expected", list(SCENES))
def test_each_incident_is_diagnosed_top1_with_quoted_evidence(expected: str) -> None:
    diagnosis = logic.diagnose(timed(SCENES[expected]()))
    ranked = [(h.cause, h.score) for h in diagnosis.hypotheses]
    assert diagnosis.root_cause_class == expected, ranked
    assert diagnosis.hypotheses[0].cause == expected
    assert diagnosis.confidence >= 0.5, ranked
    assert diagnosis.evidence, "a diagnosis must quote what it saw"
    assert diagnosis.action_plan and diagnosis.risk_level


@pytest.mark.parametrize(
    ("expected", "quoted"),
    [
        ("sequencer_stall", "op-geth secondsSinceHead=16.0 (3 block times = 6.0s)"),
        ("sequencer_stall", 'op-node: t=2026-11-26T23:14:15+0000 lvl=error msg="Engine failed temporarily'),
        ("l1_rpc_outage", "op-node l1HeadAge=150.0s"),
        (
            "batcher_failure",
            'op-batcher: t=2026-11-26T23:14:15+0000 lvl=warn msg="unable to publish transaction"',
        ),
        (
            "op_geth_cpu_saturation",
            "op-geth: WARN [11-26|23:14:15.123] Database compacting, degraded performance",
        ),
        ("op_geth_cpu_saturation", "op-geth blockInterval=3.8s (block time 2s)"),
        ("op_geth_oom", "op-geth restarts 1 → 2"),
        ("jwt_mismatch", "401 Unauthorized: signature is invalid"),
        ("peer_loss", "op-node peerCount=0"),
        ("txpool_spam", "op-geth txPoolCount=5120 (cap 5120)"),
    ],
    ids=lambda v: v if v in SCENES else "",
)
def test_evidence_quotes_the_log_lines_and_metric_values(expected: str, quoted: str) -> None:
    diagnosis = logic.diagnose(SCENES[expected]())
    assert any(quoted in line for line in diagnosis.evidence), diagnosis.evidence


@pytest.mark.parametrize(
    ("expected", "risk", "plan"),
    [
        ("sequencer_stall", "high", "Restart op-node (needs approval)"),
        ("jwt_mismatch", "critical", "a restart will not fix it"),
        ("txpool_spam", "low", "never restart"),
        ("batcher_failure", "critical", "fund"),  # insufficient funds: a human must act
        ("l1_reorg", "low", "Observe only"),
    ],
    ids=lambda v: v if v in SCENES else "",
)
def test_risk_and_plan_come_from_the_catalogue(expected: str, risk: str, plan: str) -> None:
    diagnosis = logic.diagnose(SCENES[expected]())
    assert diagnosis.risk_level == risk
    assert plan in diagnosis.action_plan


def test_hypotheses_are_ranked_and_the_symptom_class_comes_second() -> None:
    """An engine API failure also stalls the head: the stall is a candidate, but the cause wins."""
    diagnosis = logic.diagnose(scenes.engine_api_failure())
    causes = [h.cause for h in diagnosis.hypotheses]
    scores = [h.score for h in diagnosis.hypotheses]
    assert causes[0] == "engine_api_failure"
    assert "sequencer_stall" in causes[:3]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize(
    "distractor",
    [
        pytest.param(
            context(anomaly("op-node", "log:error", 1.0, rule="log"), logs={"op-node": [HARMLESS_ERROR]}),
            id="one-harmless-error-line",
        ),
        pytest.param(
            context(
                anomaly("op-geth", "cpuUsage", 63.0, rule="zscore", description="CPU spike detected: 63.0%")
            ),
            id="noisy-cpu-zscore",
        ),
        pytest.param(
            context(
                anomaly("op-geth", "txPoolCount", 410.0, rule="zscore"),
                metrics={"op-geth": {"txPoolCount": [120.0] * 19 + [410.0]}},
            ),
            id="traffic-blip-in-the-pool",
        ),
        pytest.param(
            context(
                anomaly("op-node", "log:l1_rpc_outage", 1.0, rule="log"),
                logs={"op-node": [op("warn", "L1 temporary error", err="temp: i/o timeout")]},
            ),
            id="single-transient-L1-hiccup",
        ),
        pytest.param(
            context(anomaly("op-geth", "gasUsedRatio", 0.9, rule="zscore"), metrics={}, logs={}),
            id="nothing-but-the-anomaly",
        ),
    ],
)
def test_distractors_alone_are_inconclusive(distractor: logic.RcaContext) -> None:
    diagnosis = logic.diagnose(distractor)
    assert diagnosis.root_cause_class == "unknown", [(h.cause, h.score) for h in diagnosis.hypotheses]
    assert diagnosis.confidence <= 0.3
    assert "Inconclusive" in diagnosis.root_cause
    assert "no automatic action" in diagnosis.action_plan


@pytest.mark.parametrize("expected", list(SCENES))
def test_a_harmless_error_line_does_not_change_the_answer(expected: str) -> None:
    ctx = SCENES[expected]()
    noisy = context(
        ctx.anomaly,
        logs={
            "op-node": [HARMLESS_ERROR],
            "op-geth": [geth("error", "Snapshot extension registration failed")],
        },
    )
    mixed = logic.RcaContext(
        chain_id=ctx.chain_id,
        anomaly=ctx.anomaly,
        active=ctx.active,
        metrics=ctx.metrics,
        logs={c: (*ctx.logs.get(c, ()), *noisy.logs.get(c, ())) for c in {*ctx.logs, *noisy.logs}},
    )
    assert logic.diagnose(mixed).root_cause_class == expected


def test_detector_log_evidence_counts_even_when_the_tail_rolled_past_it() -> None:
    line = op("error", "Error initializing the rollup node", err="401 Unauthorized: signature is invalid")
    trigger = anomaly("op-node", "log:jwt_mismatch", 1.0, rule="log", evidence=[line, line])
    diagnosis = logic.diagnose(context(trigger))
    assert diagnosis.root_cause_class == "jwt_mismatch"


@pytest.mark.parametrize(
    ("top", "second", "expected"),
    [(1.0, 0.0, 0.99), (1.0, 1.0, 0.55), (0.5, 0.0, 0.5), (0.0, 0.0, 0.0)],
    ids=["clear-winner", "tie", "weak-alone", "nothing"],
)
def test_confidence_rises_with_the_score_and_the_gap(top: float, second: float, expected: float) -> None:
    assert logic.confidence(top, second) == expected


def test_to_event_carries_the_seed_fields_and_a_replayable_id() -> None:
    ctx = scenes.sequencer_stall()
    diagnosis = logic.diagnose(ctx)
    kwargs = {"episode_id": "inc-1", "engine": "rules", "model": None, "latency_ms": 3.2, "cost_usd": 0.0}
    event = logic.to_event(diagnosis, ctx, now=T0, **kwargs)  # type: ignore[arg-type]
    again = logic.to_event(diagnosis, ctx, now=T0 + timedelta(seconds=5), **kwargs)  # type: ignore[arg-type]
    assert event.event_id == again.event_id
    fields = event.model_dump(by_alias=True)
    assert {"rootCause", "affectedComponents", "riskLevel", "actionPlan", "hypotheses", "confidence"} <= set(
        fields
    )
    assert (event.episode_id, event.anomaly_event_id, event.root_cause_class) == (
        "inc-1",
        ctx.anomaly.event_id,
        "sequencer_stall",
    )
    audit = logic.audit_of(event)
    assert (audit.kind, audit.actor, audit.outcome) == ("rca_completed", "rca", "sequencer_stall")


# ---- incident tracker -------------------------------------------------------------------------------


def resolved_of(a: logic.RcaContext, *, after_s: float) -> AnomalyResolved:
    t = a.anomaly
    return AnomalyResolved(
        chain_id=t.chain_id,
        episode_id=t.episode_id,
        component=t.component,
        metric=t.metric,
        rule=t.rule,
        started_at=t.occurred_at,
        duration_s=after_s,
        description="resolved",
        occurred_at=t.occurred_at + timedelta(seconds=after_s),
    )


def test_one_rca_per_incident_and_revisions_only_on_a_class_change() -> None:
    tracker = IncidentTracker(quiet_s=60)
    first = anomaly("op-geth", "secondsSinceHead", 9.0, event_id="a1")
    second = anomaly("op-geth", "txPoolCount", 900.0, event_id="a2", at=T0 + timedelta(seconds=4))
    third = anomaly("op-node", "log:sequencer_stall", 3.0, event_id="a3", at=T0 + timedelta(seconds=6))

    opening = tracker.detected(first)
    assert opening is not None and opening.opening
    assert tracker.should_publish(opening, root_cause_class="sequencer_stall", confidence=0.6)
    tracker.published(opening, root_cause_class="sequencer_stall", confidence=0.6)
    tracker.handled(first.event_id)
    assert tracker.detected(first) is None  # a redelivery

    joined = tracker.detected(second)
    assert joined is not None and not joined.opening and joined.incident_id == opening.incident_id
    assert not tracker.should_publish(joined, root_cause_class="sequencer_stall", confidence=0.65)
    assert tracker.should_publish(joined, root_cause_class="sequencer_stall", confidence=0.75)  # surer
    tracker.handled(second.event_id)

    revised = tracker.detected(third)
    assert revised is not None and revised.incident_id == opening.incident_id
    assert tracker.should_publish(revised, root_cause_class="engine_api_failure", confidence=0.45)
    assert not tracker.should_publish(revised, root_cause_class="disk_pressure", confidence=0.3)  # flapping


def _corroboration(*, met: bool) -> Corroboration:
    return Corroboration(
        polls=3 if met else 1,
        required_polls=3,
        proposal_met=met,
        auto_met=met,
        status="corroborated" if met else "waiting for corroboration: 1 of 3 polls",
    )


def test_a_first_answer_under_the_bar_is_revised_upward_not_locked() -> None:
    """Evidence that accumulates lifts a 0.45 answer over the planner's 0.5 bar: a revision is published."""
    tracker = IncidentTracker(quiet_s=60, revise_every_s=10)
    first = anomaly("op-node", "log:engine_api_failure", 1.0, rule="log", event_id="g1")
    opening = tracker.detected(first)
    assert opening is not None
    waiting = _corroboration(met=False)
    tracker.published(
        opening, root_cause_class="engine_api_failure", confidence=0.45, corroboration=waiting, now=T0
    )
    tracker.handled(first.event_id)
    due = tracker.due(CHAIN, now=T0 + timedelta(seconds=2), every_s=2)
    assert due is not None and due.incident_id == opening.incident_id and not due.opening
    met = _corroboration(met=True)
    # Too soon after the last publication: rate-limited, not refused for good.
    too_soon = T0 + timedelta(seconds=4)
    assert not tracker.should_publish(
        due, root_cause_class="engine_api_failure", confidence=0.5, corroboration=met, now=too_soon
    )
    later = T0 + timedelta(seconds=12)
    assert tracker.should_publish(
        due, root_cause_class="engine_api_failure", confidence=0.5, corroboration=met, now=later
    )
    tracker.published(
        due, root_cause_class="engine_api_failure", confidence=0.55, corroboration=met, now=later
    )
    # Settled (met and over the bar): telemetry no longer re-diagnoses it.
    assert tracker.due(CHAIN, now=T0 + timedelta(seconds=30), every_s=2) is None


def test_telemetry_re_diagnoses_an_open_incident_at_most_every_interval() -> None:
    tracker = IncidentTracker(quiet_s=60)
    first = anomaly("op-geth", "cpuUsage", 99.0, event_id="r1")
    opening = tracker.detected(first)
    assert opening is not None
    tracker.diagnosed(opening, now=T0)
    assert tracker.due(CHAIN, now=T0 + timedelta(seconds=1), every_s=2) is None
    due = tracker.due(CHAIN, now=T0 + timedelta(seconds=2), every_s=2)
    assert due is not None
    tracker.resolved(resolved_of(context(first), after_s=4))
    assert tracker.due(CHAIN, now=T0 + timedelta(seconds=10), every_s=2) is None  # nothing open


def test_an_inconclusive_opening_is_held_back_until_a_conclusive_diagnosis() -> None:
    tracker = IncidentTracker(quiet_s=60)
    first = anomaly("op-geth", "gasUsedRatio", 0.99, event_id="u1")
    second = anomaly("op-node", "log:sequencer_stall", 3.0, event_id="u2", at=T0 + timedelta(seconds=4))

    opening = tracker.detected(first)
    assert opening is not None
    assert not tracker.should_publish(opening, root_cause_class="unknown", confidence=0.2)
    tracker.handled(first.event_id)

    later = tracker.detected(second)
    assert later is not None and later.opening and later.incident_id == opening.incident_id
    assert tracker.should_publish(later, root_cause_class="sequencer_stall", confidence=0.5)


def test_incident_closes_after_all_anomalies_resolve_and_a_quiet_period() -> None:
    tracker = IncidentTracker(quiet_s=60)
    first = anomaly("op-geth", "cpuUsage", 97.0, event_id="b1")
    opening = tracker.detected(first)
    assert opening is not None
    tracker.published(opening, root_cause_class="op_geth_cpu_saturation", confidence=0.8)
    tracker.handled(first.event_id)
    tracker.resolved(resolved_of(context(first), after_s=30))

    within_quiet = anomaly("op-geth", "cpuUsage", 96.0, event_id="b2", at=T0 + timedelta(seconds=60))
    rejoined = tracker.detected(within_quiet)
    assert rejoined is not None and rejoined.incident_id == opening.incident_id and not rejoined.opening
    tracker.handled(within_quiet.event_id)
    tracker.resolved(resolved_of(context(within_quiet), after_s=10))

    later = anomaly("op-geth", "cpuUsage", 99.0, event_id="b3", at=T0 + timedelta(seconds=200))
    fresh = tracker.detected(later)
    assert fresh is not None and fresh.opening and fresh.incident_id != opening.incident_id


def test_incident_ids_are_deterministic_per_chain_and_opening_episode() -> None:
    a, b = IncidentTracker(), IncidentTracker()
    trigger = anomaly("op-geth", "cpuUsage", 97.0, event_id="c1")
    first, second = a.detected(trigger), b.detected(trigger)
    assert first is not None and second is not None
    assert first.incident_id == second.incident_id
    assert trigger.chain_id == CHAIN


def test_a_failed_publish_is_retried_as_the_opening_rca() -> None:
    tracker = IncidentTracker()
    trigger = anomaly("op-geth", "cpuUsage", 97.0, event_id="d1")
    assert tracker.detected(trigger) is not None
    # Not handled: the publish failed and JetStream redelivers.
    again = tracker.detected(trigger)
    assert again is not None and again.opening


def test_a_head_that_is_late_but_moving_is_not_a_stall() -> None:
    """After a CPU saturation clears, the sequencer catches up: the head is old, yet it advances."""
    catching_up = context(
        anomaly("op-node", "unsafeL2Age", 9.0, description="Sequencer stall: unsafe head has not advanced"),
        metrics={
            "op-node": {"unsafeL2Age": [12.0, 11.0, 10.0, 9.0]},
            "op-geth": {"secondsSinceHead": [1.0] * 4},
        },
    )
    diagnosis = logic.diagnose(catching_up)
    assert diagnosis.root_cause_class != "sequencer_stall"
    assert all(h.cause != "sequencer_stall" for h in diagnosis.hypotheses)


def test_a_new_fault_outranks_the_last_incidents_leftovers() -> None:
    """An OOM crash loop fixed a minute ago is still in the windows; the disk warning is the news."""
    oom = scenes.op_geth_oom()
    disk = scenes.disk_pressure()
    calm = [60.0, 61.0] * 6
    geth = {
        **oom.metrics["op-geth"],
        "memoryUsage": [*oom.metrics["op-geth"]["memoryUsage"], *calm],
        "restarts": [*oom.metrics["op-geth"]["restarts"], *[2.0] * 12],
        "podReady": [1.0] * 32,
    }
    mixed = logic.RcaContext(
        chain_id=oom.chain_id,
        anomaly=disk.anomaly,
        active=(disk.anomaly,),
        metrics={**oom.metrics, "op-geth": geth},
        logs={c: (*oom.logs.get(c, ()), *disk.logs.get(c, ())) for c in {*oom.logs, *disk.logs}},
    )
    diagnosis = logic.diagnose(mixed)
    assert diagnosis.root_cause_class == "disk_pressure", [(h.cause, h.score) for h in diagnosis.hypotheses]


def test_the_incident_is_over_when_what_its_answer_explains_is_over_whatever_noise_joins() -> None:
    """A stall's restart must be withdrawn once the stall has cleared, even on a chain whose noise
    keeps opening small anomalies that join the incident."""
    tracker = IncidentTracker(quiet_s=60)
    stall = anomaly("op-geth", "secondsSinceHead", 16.0, event_id="s1")
    opening = tracker.detected(stall)
    assert opening is not None
    tracker.published(
        opening, root_cause_class="sequencer_stall", confidence=0.9, now=T0, supporting=(stall.episode_id,)
    )
    tracker.resolved(resolved_of(context(stall), after_s=20))
    noise = anomaly("op-batcher", "cpuUsage", 26.0, event_id="n1", at=T0 + timedelta(seconds=50))
    assert tracker.detected(noise) is not None  # joins the incident, stays open
    assert tracker.close_quiet(CHAIN, now=T0 + timedelta(seconds=70)) is None  # 50 s of calm: not yet
    over = tracker.close_quiet(CHAIN, now=T0 + timedelta(seconds=81))
    assert over is not None and over.incident_id == opening.incident_id
    assert CHAIN not in tracker.incidents

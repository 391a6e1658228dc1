"""The api's bus-side use cases without a broker: which subjects fold into the read model, what each
event changes there, and where a replica's samples consumer resumes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from nats.js.api import AckPolicy, DeliverPolicy

from sentinai.api import service
from sentinai.api.readmodel import ReadModel
from sentinai.common import subjects
from sentinai.common.actions import RestartComponent
from sentinai.common.decisions import ActionApproved, ActionProposed, AuditRecorded, PredictionMade
from sentinai.common.events import AnomalyDetected, AnomalyResolved, Event

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("subject", "model"),
    [
        pytest.param(subjects.anomaly_detected("c1"), AnomalyDetected, id="opening"),
        pytest.param(subjects.anomaly_resolved("c1"), AnomalyResolved, id="resolution"),
        pytest.param(subjects.prediction_made("c1"), PredictionMade, id="prediction"),
        pytest.param(subjects.action_proposed("c1"), ActionProposed, id="proposal"),
        pytest.param(subjects.action_approved("c1"), ActionApproved, id="approval"),
        pytest.param(subjects.audit("c1"), AuditRecorded, id="audit"),
        # The planner's input: what came of it arrives as audit records and decisions.
        pytest.param(subjects.action_command("c1"), None, id="command-not-folded"),
        pytest.param(subjects.action_requested("c1"), None, id="request-not-folded"),
        pytest.param("action.unknown.c1", None, id="outside-the-contract"),
    ],
)
def test_the_read_model_folds_decisions_not_the_planners_input(
    subject: str, model: type[Event] | None
) -> None:
    assert service.folded_type(subject) is model


def opened(episode: str) -> AnomalyDetected:
    return AnomalyDetected(
        chain_id="c1",
        episode_id=episode,
        occurred_at=T0,
        component="op-geth",
        metric="cpuUsage",
        value=90.0,
        z_score=3.2,
        direction="up",
        severity="medium",
        description="CPU spike detected",
        rule="zscore",
    )


def test_an_incident_folded_open_then_resolved_is_no_longer_active() -> None:
    model = ReadModel(keep_anomalies=10)
    for episode in ("ep-1", "ep-2"):
        service.fold(model, opened(episode))
    service.fold(
        model,
        AnomalyResolved(
            chain_id="c1",
            episode_id="ep-1",
            occurred_at=T0 + timedelta(seconds=30),
            component="op-geth",
            metric="cpuUsage",
            rule="zscore",
            started_at=T0,
            duration_s=30,
            description="CPU back to normal",
        ),
    )
    active = model.anomalies(chain="c1", active_only=True, limit=10)
    assert [a["episodeId"] for a in active] == ["ep-2"] and model.active_count("c1") == 1


def test_a_proposal_folded_then_its_approval_shows_the_action_approved() -> None:
    model = ReadModel(keep_anomalies=10)
    restart = RestartComponent(component="op-node")
    service.fold(
        model,
        ActionProposed(
            chain_id="c1",
            occurred_at=T0,
            action_id="act-1",
            action=restart,
            tier="high",
            approvals_required=1,
            cooldown_s=600,
            status="pending_approval",
            reason="sequencer stall",
            proposed_by="planner",
            expires_at=T0 + timedelta(hours=1),
        ),
    )
    service.fold(
        model,
        ActionApproved(
            chain_id="c1",
            occurred_at=T0 + timedelta(seconds=5),
            action_id="act-1",
            action=restart,
            tier="high",
            approvers=("alice",),
            cooldown_s=600,
            reason="sequencer stall",
        ),
    )
    [record] = model.actions.records(chain="c1", status="all")
    assert record.view()["status"] == "approved"


def test_samples_start_at_the_chart_window_and_a_dropped_consumer_after_the_last_seen() -> None:
    start = T0 - service.chart_window(1800)
    position = service.SamplesPosition("api-abc", start=start)
    first = position.consumer()
    assert (first.name, first.deliver_policy, first.opt_start_time) == (
        "api-abc",
        DeliverPolicy.BY_START_TIME,
        T0 - timedelta(hours=1),
    )
    assert (first.ack_policy, first.filter_subject) == (AckPolicy.NONE, subjects.METRICS_RAW_ANY)
    position.folded(41)
    again = position.consumer()
    assert (again.deliver_policy, again.opt_start_seq, again.opt_start_time) == (
        DeliverPolicy.BY_START_SEQUENCE,
        42,
        None,
    )

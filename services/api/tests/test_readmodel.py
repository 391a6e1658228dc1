"""The read model answers what an operator asks: latest metrics, active anomalies, freshness."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sentinai.api.hub import Hub
from sentinai.api.readmodel import ReadModel
from sentinai.common.actions import ExecDebug
from sentinai.common.decisions import ActionProposed, AuditRecorded, PredictionMade
from sentinai.common.events import AnomalyDetected, AnomalyResolved, MetricSample

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def sample(chain: str, at: datetime, *, up: bool = True, **metrics: float) -> MetricSample:
    return MetricSample(
        chain_id=chain, component="op-geth", source="rpc", metrics=metrics, target_up=up, occurred_at=at
    )


def anomaly(chain: str, at: datetime, metric: str = "cpuUsage") -> AnomalyDetected:
    return AnomalyDetected(
        chain_id=chain,
        component="op-geth",
        metric=metric,
        value=90.0,
        z_score=3.2,
        direction="up",
        severity="medium",
        description="CPU spike detected: 90.0% (3.2σ above baseline)",
        rule="zscore",
        occurred_at=at,
    )


def test_newest_sample_wins_even_when_replayed_out_of_order() -> None:
    model = ReadModel(keep_anomalies=10)
    model.apply_sample(sample("c1", T0 + timedelta(seconds=2), blockHeight=12))
    model.apply_sample(sample("c1", T0, blockHeight=10))
    assert model.metrics("c1")["metrics"]["blockHeight"] == 12


def test_anomalies_newest_first_filtered_by_chain_and_activity() -> None:
    model = ReadModel(keep_anomalies=10)
    first, second, other = (
        anomaly("c1", T0),
        anomaly("c1", T0 + timedelta(seconds=5), "txPoolCount"),
        anomaly("c2", T0 + timedelta(seconds=9)),
    )
    for event in (first, second, other):
        model.apply_anomaly(event)
    model.apply_anomaly(first)  # a redelivery is not a second anomaly
    assert [a["metric"] for a in model.anomalies(chain="c1", active_only=False, limit=10)] == [
        "txPoolCount",
        "cpuUsage",
    ]
    model.apply_resolved(
        AnomalyResolved(
            chain_id="c1",
            episode_id=first.episode_id,
            component="op-geth",
            metric="cpuUsage",
            rule="zscore",
            started_at=T0,
            duration_s=30,
            description="cleared",
            occurred_at=T0 + timedelta(seconds=30),
        )
    )
    active = model.anomalies(chain="c1", active_only=True, limit=10)
    assert [a["metric"] for a in active] == ["txPoolCount"]
    everything = model.anomalies(chain=None, active_only=False, limit=10)
    assert [a["chain"] for a in everything] == ["c2", "c1", "c1"]
    assert everything[2]["active"] is False and everything[2]["resolvedAt"] is not None


def test_anomaly_list_is_bounded() -> None:
    model = ReadModel(keep_anomalies=10)
    for i in range(25):
        model.apply_anomaly(anomaly("c1", T0 + timedelta(seconds=i)))
    assert len(model.anomalies(chain=None, active_only=False, limit=100)) == 10


def test_health_reports_stale_and_unreachable_targets() -> None:
    model = ReadModel(keep_anomalies=10)
    model.apply_sample(sample("fresh", T0, blockHeight=1))
    model.apply_sample(sample("stale", T0 - timedelta(minutes=10), blockHeight=1))
    model.apply_sample(sample("down", T0, up=False))
    report = {c["chainId"]: c for c in model.health(now=T0 + timedelta(seconds=5), stale_after_s=60)}
    assert report["fresh"]["fresh"] and report["fresh"]["l2Reachable"] is True
    assert not report["stale"]["fresh"]
    assert report["down"]["l2Reachable"] is False
    assert report["fresh"]["k8sReachable"] is None


def test_active_count_follows_resolution_and_eviction() -> None:
    model = ReadModel(keep_anomalies=10)
    events = [anomaly("a", T0 + timedelta(seconds=i)) for i in range(10)]
    for event in events:
        model.apply_anomaly(event)
    model.apply_resolved(
        AnomalyResolved(
            chain_id="a",
            episode_id=events[0].episode_id,
            component="op-geth",
            metric="cpuUsage",
            rule="zscore",
            started_at=T0,
            duration_s=1,
            description="back to normal",
        )
    )
    assert model.active_count("a") == 9
    model.apply_anomaly(anomaly("a", T0 + timedelta(seconds=20)))  # evicts the resolved oldest
    model.apply_anomaly(anomaly("a", T0 + timedelta(seconds=21)))  # evicts an active one
    assert model.active_count("a") == 10
    assert len(model.anomalies(chain="a", active_only=True, limit=100)) == 10


def test_the_chart_keeps_the_newest_points_in_order_in_memory_fixed_at_the_first_sample() -> None:
    model = ReadModel(keep_anomalies=10, history_points=5)
    model.apply_sample(sample("c1", T0, blockHeight=0, txPoolCount=3))
    ring = model.chains["c1"].history
    sizes = (ring._at.buffer_info()[1], ring._values.buffer_info()[1])
    for i in range(1, 8):  # blockInterval only from the third point on
        at = T0 + timedelta(seconds=2 * i, microseconds=7)
        if i >= 3:
            model.apply_sample(sample("c1", at, blockHeight=i, blockInterval=2.0))
        else:
            model.apply_sample(sample("c1", at, blockHeight=i))
    points = model.history("c1", since=T0)
    # The window holds the last five polls, oldest first, each as the live stream sent it.
    assert [p["blockHeight"] for p in points] == [3.0, 4.0, 5.0, 6.0, 7.0]
    assert points[0]["at"] == (T0 + timedelta(seconds=6, microseconds=7)).isoformat()
    assert points[0]["blockInterval"] == 2.0 and "txPoolCount" not in points[0]  # the newest sample's
    assert "vcpu" not in points[0]  # no k8s sample: absent, not zero
    assert [
        p["blockHeight"] for p in model.history("c1", since=T0 + timedelta(seconds=12, microseconds=8))
    ] == [7.0]
    assert (ring._at.buffer_info()[1], ring._values.buffer_info()[1]) == sizes


def test_predictions_are_kept_in_time_order_once_each_with_the_newest_as_latest() -> None:
    model = ReadModel(keep_anomalies=10, keep_predictions=3)

    def forecast(i: int, minute: int) -> PredictionMade:
        return PredictionMade(
            event_id=f"p{i}",
            chain_id="c1",
            occurred_at=T0 + timedelta(minutes=minute),
            predicted_vcpu=2,
            current_vcpu=1,
            confidence=70,
            trend="rising",
            reasoning=f"forecast {i}",
            horizon_s=300,
            forecast_cores=1.2,
            upper_bound_cores=1.5,
            model="theil-sen",
        )

    made = {i: forecast(i, minute) for i, minute in ((0, 1), (1, 2), (2, 3), (3, 4))}
    for i in (1, 0, 1, 2, 3):  # p0 arrives late, p1 is redelivered
        model.apply_prediction(made[i])
    kept = model.insights.predictions("c1", limit=10)
    assert [p.event_id for p in kept] == ["p1", "p2", "p3"]  # the oldest fell out of the window of 3
    assert kept[-1] == made[3]  # every field as it arrived
    latest = model.insights.latest_prediction("c1")
    assert latest is not None and latest.event_id == "p3"
    model.apply_prediction(forecast(4, 0))  # older than everything kept: history, not the latest
    latest = model.insights.latest_prediction("c1")
    assert latest is not None and latest.event_id == "p3"


def refused(n: int, *, at: datetime, by: str, why: str) -> AuditRecorded:
    return AuditRecorded(
        event_id=f"audit-refused-{n}",
        chain_id="c1",
        occurred_at=at,
        kind="refused",
        actor=by,
        action_id="act-debug",
        summary="exec into op-geth: ps",
        outcome="approve refused",
        reasoning=why,
    )


async def test_an_actions_refusal_shows_the_planners_latest_reason_without_changing_its_status() -> None:
    hub = Hub()
    model = ReadModel(keep_anomalies=10, hub=hub)
    async with hub.subscribe(chain_id=None) as live:
        _refusals(model)
        pushed = []
        while not live.queue.empty():
            update = live.queue.get_nowait()
            if update.kind == "action":
                pushed.append(update.data["refusal"])
    # The dashboard hears of each refusal as it happens, and of nothing stale.
    assert pushed == [None, OWN, TWICE]


OWN = "bob proposed this action and cannot approve it"
TWICE = "alice already approved act-debug; a second approval by the same person does not count"


def _refusals(model: ReadModel) -> None:
    model.apply_proposed(
        ActionProposed(
            chain_id="c1",
            occurred_at=T0,
            action_id="act-debug",
            action=ExecDebug(component="op-geth", command="ps"),
            tier="critical",
            approvals_required=2,
            cooldown_s=1800,
            status="pending_approval",
            reason="requested by bob via rest: look around",
            proposed_by="bob",
            expires_at=T0 + timedelta(hours=1),
        )
    )

    def view() -> dict[str, object]:
        [record] = model.actions.records(chain="c1", status="all")
        return record.view()

    assert view()["refusal"] is None
    model.apply_audit(refused(1, at=T0 + timedelta(seconds=5), by="bob", why=OWN))
    assert (view()["refusal"], view()["status"]) == (OWN, "pending_approval")
    model.apply_audit(refused(2, at=T0 + timedelta(seconds=9), by="ALICE", why=TWICE))
    model.apply_audit(refused(1, at=T0 + timedelta(seconds=5), by="bob", why=OWN))  # a replay
    model.apply_audit(refused(0, at=T0 + timedelta(seconds=1), by="bob", why="older"))  # arrives late
    assert (view()["refusal"], view()["status"]) == (TWICE, "pending_approval")

"""The context store: bounded windows and tails, and only recent history in a diagnosis."""

from __future__ import annotations

from datetime import timedelta

from sentinai.common.events import LogBatch, MetricSample
from sentinai.rca import logic
from sentinai.rca.context import ContextStore
from services.rca.tests.scenes import CHAIN, T0, anomaly, op


def sample(i: int, cpu: float, *, at_s: float) -> MetricSample:
    return MetricSample(
        event_id=f"m{i}",
        occurred_at=T0 + timedelta(seconds=at_s),
        chain_id=CHAIN,
        component="op-geth",
        source="k8s",
        metrics={"cpuUsage": cpu},
    )


def test_windows_and_tails_are_bounded_and_oldest_first() -> None:
    store = ContextStore(metric_window=3, log_lines=2)
    for i in range(5):
        store.add_sample(sample(i, float(i), at_s=i))
    store.add_logs(LogBatch(chain_id=CHAIN, component="op-node", lines=("a", "b", "c"), occurred_at=T0))
    ctx = store.context(anomaly("op-geth", "cpuUsage", 4.0, at=T0 + timedelta(seconds=5)), block_time_s=2)
    assert ctx.metrics["op-geth"]["cpuUsage"] == (2.0, 3.0, 4.0)
    assert ctx.metrics["op-geth"]["targetUp"] == (1.0, 1.0, 1.0)
    assert ctx.logs["op-node"] == ("b", "c")


def test_the_last_incidents_lines_do_not_explain_the_next_one() -> None:
    """A batcher logs rarely: its tail still holds an old failure long after it was fixed."""
    store = ContextStore(log_horizon_s=120)
    old = op("warn", "unable to publish transaction", err="insufficient funds for gas * price + value")
    store.add_logs(LogBatch(chain_id=CHAIN, component="op-batcher", lines=(old,) * 3, occurred_at=T0))
    later = anomaly("op-geth", "cpuUsage", 63.0, rule="zscore", at=T0 + timedelta(minutes=10))
    ctx = store.context(later, block_time_s=2)
    assert ctx.logs["op-batcher"] == ()
    assert logic.diagnose(ctx).root_cause_class == "unknown"
    recent = store.context(
        anomaly("op-node", "unsafeSafeLag", 400.0, at=T0 + timedelta(seconds=30)), block_time_s=2
    )
    assert logic.diagnose(recent).root_cause_class == "batcher_failure"

"""A chain's history holds a fixed amount of memory from its first sample, whatever it is fed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sentinai.common.events import MetricSample
from sentinai.predictor.windows import History

T0 = datetime(2026, 11, 27, 0, 0, tzinfo=UTC)


def poll(i: int, *, source: str, metrics: dict[str, float]) -> MetricSample:
    return MetricSample(
        event_id=f"{source}-{i}",
        occurred_at=T0 + timedelta(seconds=i),
        chain_id="opmain",
        component="op-geth",
        source=source,
        metrics=metrics,
    )


def test_a_full_history_keeps_its_memory_and_its_newest_points_in_order() -> None:
    history = History(max_points=50, span_s=3600)
    history.add(poll(0, source="k8s", metrics={"cpuCores": 0.0}))
    footprint = (history._t.buffer_info(), history._values.buffer_info())
    for i in range(1, 500):
        history.add(poll(i, source="k8s", metrics={"cpuCores": i / 100, "cpuRequestCores": 1.0}))
        history.add(poll(i, source="rpc", metrics={"txPoolCount": float(i)}))  # merges into the same point
    points = history.points()
    assert [p.t for p in points] == [(T0 + timedelta(seconds=i)).timestamp() for i in range(450, 500)]
    assert [(p.cpu_cores, p.tx_pool) for p in points] == [(i / 100, float(i)) for i in range(450, 500)]
    assert all(p.cpu_request == 1.0 and p.gas_used_ratio is None for p in points)
    assert (history._t.buffer_info(), history._values.buffer_info()) == footprint

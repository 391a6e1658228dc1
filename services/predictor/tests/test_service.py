"""The predictor's use cases on fakes: samples folded per chain; a round predicts each chain once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from sentinai.common.decisions import PredictionMade
from sentinai.common.dedup import SeenIds
from sentinai.common.events import MetricSample
from sentinai.predictor import service
from sentinai.predictor.logic import Forecast, Point
from sentinai.predictor.settings import PredictorSettings
from sentinai.predictor.windows import PredictorState

T0 = datetime(2026, 11, 27, 0, 0, tzinfo=UTC)
SETTINGS = PredictorSettings(ladder=(1, 2, 4), min_points=5, stale_s=180.0)


@dataclass
class FixedForecaster:
    """A forecaster that always sees ``cores`` of demand, and remembers how much history it read."""

    cores: float
    name: str = "fixed"
    reads: list[int] = field(default_factory=list)

    def forecast(self, history: Sequence[Point], *, horizon_s: float) -> Forecast:
        self.reads.append(len(history))
        return Forecast(
            point_cores=self.cores,
            upper_cores=self.cores,
            trend="stable",
            slope_per_min=0.0,
            key_factors=(f"Demand {self.cores:.2f} cores",),
            coverage=None,
            short=True,
        )


@dataclass
class Outbox:
    """The publish port: what went out; ``fail`` makes the next publishes raise (the bus away)."""

    sent: list[PredictionMade] = field(default_factory=list)
    fail: bool = False

    async def __call__(self, prediction: PredictionMade) -> None:
        if self.fail:
            raise ConnectionError("nats: connection closed")
        self.sent.append(prediction)


def deps(cores: float = 1.0) -> service.Deps:
    state = PredictorState(max_points=100, span_s=3600.0, seen=SeenIds(1000))
    return service.Deps(state=state, forecaster=FixedForecaster(cores))


def sample(i: int, *, chain: str = "opmain", component: str = "op-geth", cpu: float = 0.98) -> MetricSample:
    return MetricSample(
        occurred_at=T0 + timedelta(seconds=10 * i),
        chain_id=chain,
        component=component,
        source="k8s",
        metrics={"cpuCores": cpu, "cpuRequestCores": 1.0},
        event_id=f"{chain}-{component}-{i}",
    )


def feed(d: service.Deps, samples: Sequence[MetricSample]) -> None:
    for s in samples:
        service.add_sample(d, s)


async def test_a_round_predicts_each_chain_with_new_samples_once() -> None:
    d, outbox = deps(cores=1.5), Outbox()
    feed(d, [sample(i) for i in range(6)] + [sample(i, chain="other") for i in range(6)])
    now = T0 + timedelta(seconds=60)
    assert await service.predict_due(d, settings=SETTINGS, now=now, publish=outbox) == 2
    assert {(p.chain_id, p.predicted_vcpu, p.current_vcpu) for p in outbox.sent} == {
        ("opmain", 2.0, 1.0),
        ("other", 2.0, 1.0),
    }
    assert all(p.occurred_at == T0 + timedelta(seconds=50) for p in outbox.sent)  # the newest sample
    # Nothing new since: the next round says nothing; a new sample of one chain re-predicts that one.
    assert await service.predict_due(d, settings=SETTINGS, now=now, publish=outbox) == 0
    feed(d, [sample(6)])
    assert await service.predict_due(d, settings=SETTINGS, now=now, publish=outbox) == 1
    assert outbox.sent[-1].chain_id == "opmain"


async def test_samples_of_other_components_and_redeliveries_are_not_folded_in() -> None:
    d = deps()
    feed(d, [sample(0), sample(0), sample(1, component="op-node"), sample(2)])
    assert [p.t for p in d.state.chains["opmain"].points()] == [
        (T0 + timedelta(seconds=s)).timestamp() for s in (0, 20)
    ]


async def test_a_chain_gone_quiet_is_not_predicted_from_its_replayed_history() -> None:
    d, outbox, forecaster = deps(), Outbox(), FixedForecaster(1.0)
    d.forecaster = forecaster
    feed(d, [sample(i) for i in range(6)])
    later = T0 + timedelta(seconds=50 + SETTINGS.stale_s + 1)
    assert await service.predict_due(d, settings=SETTINGS, now=later, publish=outbox) == 0
    assert outbox.sent == []
    assert forecaster.reads == []  # not even forecast


async def test_too_little_history_publishes_nothing_until_a_new_sample_comes() -> None:
    d, outbox = deps(), Outbox()
    feed(d, [sample(i) for i in range(4)])  # one short of ``min_points``
    now = T0 + timedelta(seconds=60)
    assert await service.predict_due(d, settings=SETTINGS, now=now, publish=outbox) == 0
    assert d.state.due() == []  # not asked again for the same history
    feed(d, [sample(4)])
    assert await service.predict_due(d, settings=SETTINGS, now=now, publish=outbox) == 1


async def test_a_failed_publish_is_retried_on_the_next_round() -> None:
    d, outbox = deps(cores=1.5), Outbox(fail=True)
    feed(d, [sample(i) for i in range(6)])
    now = T0 + timedelta(seconds=60)
    with pytest.raises(ConnectionError):
        await service.predict_due(d, settings=SETTINGS, now=now, publish=outbox)
    outbox.fail = False
    assert await service.predict_due(d, settings=SETTINGS, now=now, publish=outbox) == 1
    assert [p.predicted_vcpu for p in outbox.sent] == [2.0]

"""Wiring in memory: op-geth samples handed to the pull loop's handler, predictions and dead letters out.

The pull loop itself runs against a real nats-server in ``test_integration``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from faststream.nats import TestNatsBroker
from nats.aio.msg import Msg

from sentinai.common import streams, subjects
from sentinai.common.decisions import PredictionMade
from sentinai.common.dedup import SeenIds
from sentinai.common.events import DeadLetter, MetricSample
from sentinai.devkit.spy import Spy
from sentinai.predictor import bus, logic
from sentinai.predictor.settings import PredictorSettings
from sentinai.predictor.windows import PredictorState

T0 = datetime(2026, 11, 27, 0, 0, tzinfo=UTC)
SETTINGS = PredictorSettings(ladder=(1, 2, 4))


def wired() -> tuple[bus.Wiring, bus.Deps, Spy, Spy]:
    deps = bus.Deps(
        state=PredictorState(max_points=720, span_s=3600, seen=SeenIds(1000)),
        forecaster=logic.StatForecaster(),
    )
    wiring = bus.build(SETTINGS, deps, start=T0 - timedelta(hours=1))
    predictions = Spy().attach(wiring.broker, subjects.PREDICTION_MADE_ALL, streams.EVENTS)
    dead = Spy().attach(wiring.broker, subjects.dead_letter(bus.SERVICE), streams.DEAD_LETTER)
    return wiring, deps, predictions, dead


def poll(i: int, *, cpu: float, pool: float, interval: float, chain: str = "opmain") -> list[MetricSample]:
    """The two op-geth samples the collector publishes per poll, stamped with the same instant."""
    at = T0 + timedelta(seconds=10 * i)
    common = {"occurred_at": at, "chain_id": chain, "component": "op-geth"}
    return [
        MetricSample(
            source="k8s", metrics={"cpuCores": cpu, "cpuRequestCores": 1.0, "cpuUsage": 100 * cpu}, **common
        ),
        MetricSample(
            source="rpc",
            metrics={
                "txPoolCount": pool,
                "gasUsedRatio": 0.98,
                "blockInterval": interval,
                "blockHeight": 1e6 + i,
            },
            **common,
        ),
    ]


async def feed(wiring: bus.Wiring, subject: str, body: bytes) -> None:
    """One message as a fetch of the samples' pull loop returns it."""
    await wiring.loop.handle([Msg(_client=None, subject=subject, data=body)])  # type: ignore[arg-type]


async def publish(wiring: bus.Wiring, samples: list[MetricSample]) -> None:
    for sample in samples:
        await feed(wiring, subjects.metrics_raw(sample.chain_id, sample.component), sample.to_json())


async def test_saturated_chain_gets_a_prediction_with_the_seed_fields() -> None:
    wiring, deps, predictions, _ = wired()
    async with TestNatsBroker(wiring.broker):
        for i in range(40):
            await publish(wiring, poll(i, cpu=1.05, pool=100.0 + 30 * i, interval=4.4))
        await publish(wiring, poll(0, cpu=0.3, pool=5.0, interval=2.0, chain="young"))
        newest = T0 + timedelta(seconds=390)
        assert await wiring.tick(newest + timedelta(seconds=5)) == 1
        # Nothing new since: the next round stays quiet rather than repeating itself.
        assert await wiring.tick(newest + timedelta(seconds=15)) == 0
    assert len(deps.state.chains["opmain"]) == 40  # rpc and k8s samples merged per poll
    [body] = predictions.bodies
    fields = json.loads(body)
    assert {"predictedVCpu", "confidence", "trend", "keyFactors", "reasoning"} <= fields.keys()
    prediction = PredictionMade.model_validate_json(body)
    assert (prediction.chain_id, prediction.component, prediction.occurred_at) == (
        "opmain",
        "op-geth",
        newest,
    )
    assert (prediction.predicted_vcpu, prediction.current_vcpu, prediction.trend) == (2.0, 1.0, "stable")
    assert prediction.key_factors[:4] == (
        "CPU at 105% of its 1 vCPU request (saturated: it needs more than it gets)",
        "Block interval 4.4s, 2.2x the 2s norm",
        "TxPool growth +180/min (1270 pending)",
        "Gas used ratio 0.98: blocks are full",
    )
    assert "scale to 2 vCPU" in prediction.reasoning
    assert 50 <= prediction.confidence <= 100


async def test_stale_history_is_not_predicted_from() -> None:
    wiring, _, predictions, _ = wired()
    async with TestNatsBroker(wiring.broker):
        for i in range(20):
            await publish(wiring, poll(i, cpu=0.4, pool=10.0, interval=2.0))
        assert await wiring.tick(T0 + timedelta(hours=1)) == 0
    assert predictions.bodies == []


async def test_malformed_samples_are_dead_lettered_and_the_handler_keeps_working() -> None:
    wiring, deps, _, dead = wired()
    good = poll(0, cpu=0.4, pool=10.0, interval=2.0)[0]
    wrong_type = json.loads(good.to_json())
    wrong_type["metrics"] = {"cpuCores": "lots"}
    subject = subjects.metrics_raw("opmain", "op-geth")
    async with TestNatsBroker(wiring.broker):
        await feed(wiring, subject, b"not json")
        await feed(wiring, subject, json.dumps(wrong_type).encode())
        await publish(wiring, [good])
    letters = [DeadLetter.model_validate_json(b) for b in dead.bodies]
    assert [(d.service, d.subject) for d in letters] == [("predictor", subject)] * 2
    assert letters[0].payload == "not json"
    assert "metrics.cpuCores" in letters[1].reason
    assert [p.cpu_cores for p in deps.state.chains["opmain"].points()] == [0.4]

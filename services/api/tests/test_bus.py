"""The api's consumers fold bus events into the read model; malformed ones are dead-lettered."""

from __future__ import annotations

import json

from faststream.nats import NatsMessage, TestNatsBroker

from sentinai.api import bus
from sentinai.api.readmodel import ReadModel
from sentinai.api.settings import ApiSettings
from sentinai.common import streams, subjects
from sentinai.common.events import AnomalyDetected, MetricSample


async def test_samples_and_anomalies_reach_the_read_model_and_garbage_goes_to_dead_letter() -> None:
    model = ReadModel(keep_anomalies=10)
    broker = bus.build(ApiSettings(), model)
    dead: list[dict[str, str]] = []

    @broker.subscriber(subjects.dead_letter(bus.SERVICE), stream=streams.DEAD_LETTER.ref())
    async def spy(msg: NatsMessage) -> None:
        dead.append(json.loads(msg.body))

    async with TestNatsBroker(broker) as test_broker:
        await test_broker.publish(b"{not json", subjects.metrics_raw("twin", "op-geth"))
        sample = MetricSample(chain_id="twin", component="op-geth", source="rpc", metrics={"blockHeight": 5})
        await test_broker.publish(sample.to_json(), subjects.metrics_raw("twin", "op-geth"))
        anomaly = AnomalyDetected(
            chain_id="twin",
            component="op-geth",
            metric="cpuUsage",
            value=95,
            z_score=3.0,
            direction="up",
            severity="medium",
            description="CPU spike detected: 95.0% (3.0σ above baseline)",
            rule="zscore",
        )
        await test_broker.publish(anomaly.to_json(), subjects.anomaly_detected("twin"))
        await test_broker.publish(b'{"chainId":"twin"}', subjects.anomaly_detected("twin"))

    assert model.metrics("twin")["metrics"]["blockHeight"] == 5
    assert [a["eventId"] for a in model.anomalies(chain="twin", active_only=True, limit=5)] == [
        anomaly.event_id
    ]
    assert [d["subject"] for d in dead] == ["metrics.raw.twin.op-geth", "anomaly.detected.twin"]
    assert "invalid MetricSample" in dead[0]["reason"] and "invalid AnomalyDetected" in dead[1]["reason"]

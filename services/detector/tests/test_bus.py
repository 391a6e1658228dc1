"""Wiring in memory: batch handlers fed JetStream messages, publishing into TestNatsBroker spies.

The pull loops that feed the handlers run against a real nats-server in ``test_integration``.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

from faststream.nats import TestNatsBroker
from nats.aio.msg import Msg

from sentinai.common import streams, subjects
from sentinai.common.events import AnomalyDetected, DeadLetter, LogBatch, MetricSample
from sentinai.detector import bus, service
from sentinai.detector.settings import DetectorSettings
from sentinai.devkit.spy import Spy

T0 = datetime(2026, 11, 26, 23, 0, tzinfo=UTC)
SETTINGS = DetectorSettings()


def wired(settings: DetectorSettings = SETTINGS) -> tuple[bus.Wiring, service.Deps, Spy, Spy]:
    deps = service.deps_from(settings.model_copy(update={"seen_ids": 1000}))
    wiring = bus.build(settings, deps)
    anomalies = Spy().attach(wiring.broker, f"{subjects.ANOMALY_DETECTED}.>", streams.EVENTS)
    dead = Spy().attach(wiring.broker, subjects.dead_letter(bus.SERVICE), streams.DEAD_LETTER)
    return wiring, deps, anomalies, dead


def msg(body: bytes, subject: str = "metrics.raw.opmain.op-geth") -> Msg:
    """A message as a pull fetch returns it; the handlers never ack (the pull loop does)."""
    return Msg(_client=None, subject=subject, data=body)  # type: ignore[arg-type]


def cpu(value: float, i: int, *, chain: str = "opmain", event_id: str | None = None) -> MetricSample:
    return MetricSample(
        event_id=event_id or f"{chain}-{i}",
        occurred_at=T0 + timedelta(seconds=5 * i),
        chain_id=chain,
        component="op-geth",
        source="k8s",
        metrics={"cpuUsage": value, "memoryUsage": 40.0},
    )


async def test_cpu_spike_gives_exactly_one_anomaly_with_the_seed_fields() -> None:
    wiring, _, anomalies, _ = wired()
    rng = random.Random(3)
    values = [50.0 + rng.gauss(0.0, 2.0) for _ in range(300)] + [87.3, 90.0, 88.0]
    async with TestNatsBroker(wiring.broker):
        await wiring.on_metrics([msg(cpu(v, i).to_json()) for i, v in enumerate(values[:300])])
        anomalies.bodies.clear()  # the model's first minutes on a new series are not what this is about
        await wiring.on_metrics([msg(cpu(v, 300 + i).to_json()) for i, v in enumerate(values[300:])])
    [body] = anomalies.bodies
    fields = json.loads(body)
    assert {k: fields[k] for k in ("metric", "value", "direction", "severity", "rule")} == {
        "metric": "cpuUsage",
        "value": 87.3,
        "direction": "up",
        "severity": "high",
        "rule": "streaming",
    }
    assert fields["zScore"] > 10
    assert fields["description"].startswith(
        f"CPU spike detected: 87.3% ({fields['zScore']:.1f}σ above baseline, "
    )


async def test_the_seed_example_in_zscore_mode() -> None:
    wiring, _, anomalies, _ = wired(DetectorSettings(mode="zscore"))
    values = [45.3, 65.3] * 30 + [87.3, 90.0, 88.0]
    async with TestNatsBroker(wiring.broker):
        await wiring.on_metrics([msg(cpu(v, i).to_json()) for i, v in enumerate(values)])
        await wiring.on_metrics([msg(cpu(50.0, 0, chain="other").to_json(), "metrics.raw.other.op-geth")])
    [body] = anomalies.bodies
    [anomaly] = anomalies.events(AnomalyDetected)
    fields = json.loads(body)
    assert anomaly.chain_id == "opmain"
    assert {k: fields[k] for k in ("metric", "value", "zScore", "direction", "severity", "description")} == {
        "metric": "cpuUsage",
        "value": 87.3,
        "zScore": 3.2,
        "direction": "up",
        "severity": "medium",
        "description": "CPU spike detected: 87.3% (3.2σ above baseline)",
    }


async def test_malformed_payloads_are_dead_lettered_and_the_handler_keeps_working() -> None:
    wiring, deps, anomalies, dead = wired()
    good = cpu(50.0, 0)
    wrong_type = json.loads(good.to_json())
    wrong_type["metrics"] = {"cpuUsage": "very high"}
    bad_chain = json.loads(good.to_json())
    bad_chain["chainId"] = "op main!"
    async with TestNatsBroker(wiring.broker):
        await wiring.on_metrics(
            [
                msg(b"not json at all"),
                msg(json.dumps(wrong_type).encode()),
                msg(json.dumps(bad_chain).encode()),
            ]
        )
        await wiring.on_logs([msg(b'{"lines": 3}', "logs.raw.opmain.op-node")])
        await wiring.on_metrics([msg(good.to_json())])
    letters = dead.events(DeadLetter)
    assert [(d.service, d.subject) for d in letters] == [("detector", "metrics.raw.opmain.op-geth")] * 3 + [
        ("detector", "logs.raw.opmain.op-node")
    ]
    assert "invalid MetricSample" in letters[1].reason
    assert "metrics.cpuUsage" in letters[1].reason
    assert "chainId" in letters[2].reason
    assert letters[0].payload == "not json at all"
    window = deps.state.chains["opmain"].components["op-geth"].windows["cpuUsage"]
    assert window.values() == [50.0]
    assert anomalies.bodies == []


async def test_duplicate_event_id_is_not_double_counted() -> None:
    wiring, deps, anomalies, _ = wired()
    spike = msg(cpu(95.0, 100).to_json())
    async with TestNatsBroker(wiring.broker):
        await wiring.on_metrics([msg(cpu(v, i).to_json()) for i, v in enumerate([50.0, 51.0, 49.0] * 5)])
        await wiring.on_metrics([spike])
        await wiring.on_metrics([spike])  # a JetStream redelivery
    assert deps.state.chains["opmain"].components["op-geth"].windows["cpuUsage"].count == 16
    assert len(anomalies.bodies) == 1


async def test_log_batch_with_a_signature_gives_an_anomaly_quoting_the_line() -> None:
    wiring, _, anomalies, _ = wired()
    line = 't=2026-11-26T23:14:15+0000 lvl=error msg="Error initializing" err="401 Unauthorized"'
    batch = LogBatch(chain_id="opmain", component="op-node", lines=("noise", line))
    async with TestNatsBroker(wiring.broker):
        await wiring.on_logs([msg(batch.to_json(), subjects.logs_raw("opmain", "op-node"))])
    [anomaly] = anomalies.events(AnomalyDetected)
    assert (anomaly.metric, anomaly.severity, anomaly.rule, anomaly.evidence) == (
        "log:jwt_mismatch",
        "critical",
        "log",
        (line,),
    )

"""Wiring in memory: telemetry becomes context, anomalies one RCA per incident, junk a dead letter.

Telemetry is handed to the pull loops' batch handlers as fetched messages; the loops themselves run
against a real nats-server in ``test_integration``.
"""

from __future__ import annotations

import json
from datetime import timedelta

from faststream.nats import TestNatsBroker
from nats.aio.msg import Msg

from sentinai.common import streams, subjects
from sentinai.common.decisions import AuditRecorded, RcaCompleted
from sentinai.common.events import AnomalyDetected, DeadLetter, LogBatch, MetricSample
from sentinai.devkit.spy import Spy
from sentinai.rca import bus, service
from sentinai.rca.settings import RcaSettings
from services.rca.tests.scenes import CHAIN, STALL_AGE, T0, anomaly, op

SETTINGS = RcaSettings()


def wired() -> tuple[bus.Wiring, service.Deps, Spy, Spy, Spy]:
    deps = service.deps_from(SETTINGS)
    deps.clock = lambda: T0 + timedelta(seconds=30)
    wiring = bus.build(SETTINGS, deps, now=T0)
    broker = wiring.broker
    rcas = Spy().attach(broker, subjects.RCA_COMPLETED_ALL, streams.EVENTS)
    audits = Spy().attach(broker, subjects.AUDIT_ALL, streams.AUDIT)
    dead = Spy().attach(broker, subjects.dead_letter(bus.SERVICE), streams.DEAD_LETTER)
    return wiring, deps, rcas, audits, dead


async def feed(wiring: bus.Wiring, subject: str, body: bytes) -> None:
    """One telemetry message as a fetch of the samples' or the log lines' pull loop returns it."""
    metrics, logs = wiring.loops
    loop = metrics if subject.startswith(subjects.METRICS_RAW + ".") else logs
    await loop.handle([Msg(_client=None, subject=subject, data=body)])  # type: ignore[arg-type]


def stall_telemetry() -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []
    for i, age in enumerate(STALL_AGE):
        sample = MetricSample(
            event_id=f"s{i}",
            occurred_at=T0 + timedelta(seconds=2 * i),
            chain_id=CHAIN,
            component="op-geth",
            source="rpc",
            metrics={
                "secondsSinceHead": age,
                "blockHeight": 1000.0 + min(i, 11),
                "txPoolCount": 120.0 + 40 * i,
            },
        )
        out.append((subjects.metrics_raw(CHAIN, "op-geth"), sample.to_json()))
    line = op("error", "Engine failed temporarily, backing off sequencer", err="context deadline exceeded")
    batch = LogBatch(chain_id=CHAIN, component="op-node", lines=(line, line, line))
    out.append((subjects.logs_raw(CHAIN, "op-node"), batch.to_json()))
    return out


async def test_an_anomaly_after_telemetry_gives_one_rca_with_the_seed_fields_and_an_audit() -> None:
    wiring, _, rcas, audits, _ = wired()
    broker = wiring.broker
    first = anomaly("op-geth", "secondsSinceHead", 16.0, event_id="stall-1")
    same_incident = anomaly("op-node", "unsafeL2Age", 16.0, event_id="stall-2", at=T0 + timedelta(seconds=2))
    async with TestNatsBroker(broker):
        for subject, body in stall_telemetry():
            await feed(wiring, subject, body)
        await broker.publish(first.to_json(), subjects.anomaly_detected(CHAIN), stream=streams.EVENTS.name)
        await broker.publish(first.to_json(), subjects.anomaly_detected(CHAIN), stream=streams.EVENTS.name)
        await broker.publish(
            same_incident.to_json(), subjects.anomaly_detected(CHAIN), stream=streams.EVENTS.name
        )
    [rca] = rcas.events(RcaCompleted)
    fields = json.loads(rcas.bodies[0])
    assert {"rootCause", "affectedComponents", "riskLevel", "actionPlan"} <= set(fields)
    assert (rca.root_cause_class, rca.risk_level, rca.engine, rca.anomaly_event_id) == (
        "sequencer_stall",
        "high",
        "rules",
        "stall-1",
    )
    assert rca.chain_id == CHAIN and rca.correlation_id == first.correlation_id
    assert any("Engine failed temporarily" in e for e in rca.evidence)
    assert any("secondsSinceHead=16.0" in e for e in rca.evidence)
    [audit] = audits.events(AuditRecorded)
    assert (audit.kind, audit.actor, audit.details["episodeId"]) == ("rca_completed", "rca", rca.episode_id)


async def test_a_noise_opening_publishes_nothing_until_the_incident_is_explained() -> None:
    wiring, _, rcas, _, _ = wired()
    broker = wiring.broker
    noisy = anomaly("op-geth", "cpuUsage", 63.0, rule="zscore", event_id="n-1")
    jwt_line = op("error", "Error initializing the rollup node", err="401 Unauthorized: signature is invalid")
    jwt = anomaly(
        "op-node", "log:jwt_mismatch", 2.0, rule="log", evidence=[jwt_line, jwt_line], event_id="n-2"
    )
    async with TestNatsBroker(broker):
        for event in (noisy, jwt):
            await broker.publish(
                event.to_json(), subjects.anomaly_detected(CHAIN), stream=streams.EVENTS.name
            )
    [only] = rcas.events(RcaCompleted)
    # The unexplained CPU blip opened the incident; its first published answer is the JWT diagnosis.
    assert only.root_cause_class == "jwt_mismatch"
    assert only.anomaly_event_id == "n-2"


async def test_resolved_anomalies_leave_the_context() -> None:
    wiring, deps, _, _, _ = wired()
    broker = wiring.broker
    opened = anomaly("op-geth", "cpuUsage", 97.0, event_id="r-1")
    resolved = {
        "chainId": CHAIN,
        "episodeId": opened.episode_id,
        "component": "op-geth",
        "metric": "cpuUsage",
        "rule": "liveness",
        "startedAt": T0.isoformat(),
        "durationS": 12.0,
        "description": "CPU spike resolved",
    }
    async with TestNatsBroker(broker):
        await broker.publish(opened.to_json(), subjects.anomaly_detected(CHAIN), stream=streams.EVENTS.name)
        assert set(deps.diagnoser.context.chain(CHAIN).active) == {"r-1"}
        await broker.publish(json.dumps(resolved).encode(), subjects.anomaly_resolved(CHAIN), stream="EVENTS")
    assert deps.diagnoser.context.chain(CHAIN).active == {}
    assert deps.diagnoser.tracker.incidents[CHAIN].quiet_since is not None


async def test_malformed_input_is_dead_lettered_and_nothing_else_happens() -> None:
    wiring, deps, rcas, _, dead = wired()
    broker = wiring.broker
    bad_anomaly = json.loads(anomaly("op-geth", "cpuUsage", 97.0).to_json())
    bad_anomaly["severity"] = "apocalyptic"
    async with TestNatsBroker(broker):
        await broker.publish(b"not json", subjects.anomaly_detected(CHAIN), stream=streams.EVENTS.name)
        await broker.publish(
            json.dumps(bad_anomaly).encode(), subjects.anomaly_detected(CHAIN), stream="EVENTS"
        )
        await feed(wiring, subjects.logs_raw(CHAIN, "op-node"), b'{"lines": 3}')
        await feed(wiring, subjects.metrics_raw(CHAIN, "op-geth"), b"{}")
        await broker.publish(b"[]", subjects.action_executed(CHAIN), stream="ACTIONS")
    letters = dead.events(DeadLetter)
    assert [d.subject for d in letters] == [
        "anomaly.detected.opmain",
        "anomaly.detected.opmain",
        "logs.raw.opmain.op-node",
        "metrics.raw.opmain.op-geth",
        "action.executed.opmain",
    ]
    assert all(d.service == "rca" for d in letters)
    assert "severity" in letters[1].reason
    assert rcas.bodies == [] and deps.diagnoser.tracker.incidents == {}


async def test_anomalies_of_other_chains_open_their_own_incidents() -> None:
    wiring, _, rcas, _, _ = wired()
    broker = wiring.broker
    here = anomaly("op-geth", "cpuUsage", 97.0, event_id="x-1")
    there = AnomalyDetected.model_validate({**here.model_dump(), "chain_id": "other", "event_id": "x-2"})
    async with TestNatsBroker(broker):
        await broker.publish(here.to_json(), subjects.anomaly_detected(CHAIN), stream="EVENTS")
        await broker.publish(there.to_json(), subjects.anomaly_detected("other"), stream="EVENTS")
    chains = sorted(rca.chain_id for rca in rcas.events(RcaCompleted))
    assert chains == ["opmain", "other"]

"""The rca's use cases on a recording publisher: no broker, no clock, each test well under a second."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest

from sentinai.common.decisions import AuditRecorded, IncidentResolved, RcaCompleted
from sentinai.common.events import AnomalyDetected, AnomalyResolved, LogBatch, MetricSample
from sentinai.rca import service
from sentinai.rca.settings import RcaSettings
from services.rca.tests.scenes import CHAIN, T0, anomaly, op

NOW = T0 + timedelta(minutes=5)
# A head that stops at poll 10: its age grows by the 2 s poll; it passes the 6 s stall limit at poll 13.
AGES = [1.0] * 10 + [2.0 * k for k in range(1, 20)]
STALLED = next(i for i, age in enumerate(AGES) if age > 6.0)


@dataclass
class RecordingPublisher:
    """The ``Publisher`` port, keeping what would have gone on the bus; ``fail`` makes it raise once."""

    rcas: list[RcaCompleted] = field(default_factory=list)
    audits: list[AuditRecorded] = field(default_factory=list)
    resolved: list[IncidentResolved] = field(default_factory=list)
    fail: bool = False

    async def rca_completed(self, event: RcaCompleted) -> None:
        if self.fail:
            self.fail = False
            raise ConnectionError("the bus is away")
        self.rcas.append(event)

    async def audit(self, record: AuditRecorded) -> None:
        self.audits.append(record)

    async def incident_resolved(self, event: IncidentResolved) -> None:
        self.resolved.append(event)


def at(poll: int) -> datetime:
    return T0 + timedelta(seconds=2 * poll)


def deps() -> service.Deps:
    out = service.deps_from(RcaSettings())
    out.clock = lambda: NOW
    return out


def sample(poll: int, age: float) -> MetricSample:
    return MetricSample(
        event_id=f"s{poll}",
        occurred_at=at(poll),
        chain_id=CHAIN,
        component="op-geth",
        source="rpc",
        metrics={"secondsSinceHead": age, "blockHeight": 1000.0 + min(poll, 10)},
    )


async def telemetry(d: service.Deps, publisher: RecordingPublisher, polls: range) -> None:
    """Samples of ``polls`` as the samples' pull loop hands them over: one batch, one pass each."""
    for poll in polls:
        service.fold_sample(sample(poll, AGES[poll] if poll < len(AGES) else 1.0), d)
        await service.rediagnose(d, publisher=publisher)


def stall_anomaly(event_id: str = "stall-1") -> AnomalyDetected:
    return anomaly("op-geth", "secondsSinceHead", AGES[STALLED], event_id=event_id, at=at(STALLED))


async def test_an_anomaly_publishes_one_rca_and_its_audit_and_a_redelivery_nothing() -> None:
    d, publisher = deps(), RecordingPublisher()
    await telemetry(d, publisher, range(STALLED + 1))
    line = op("error", "Engine failed temporarily, backing off sequencer", err="context deadline exceeded")
    batch = LogBatch(chain_id=CHAIN, component="op-node", occurred_at=at(STALLED), lines=(line,))
    service.fold_logs(batch, d)
    await service.anomaly_detected(stall_anomaly(), d, publisher=publisher)
    await service.anomaly_detected(stall_anomaly(), d, publisher=publisher)  # a redelivery
    [rca] = publisher.rcas
    [audit] = publisher.audits
    assert (rca.root_cause_class, rca.anomaly_event_id, rca.chain_id) == ("sequencer_stall", "stall-1", CHAIN)
    assert any("Engine failed temporarily" in e for e in rca.evidence)
    assert rca.occurred_at == NOW
    assert (audit.kind, audit.details["episodeId"], audit.outcome) == (
        "rca_completed",
        rca.episode_id,
        "sequencer_stall",
    )
    assert publisher.resolved == []


async def test_fresh_telemetry_publishes_a_revision_once_the_evidence_rule_is_met() -> None:
    d, publisher = deps(), RecordingPublisher()
    await telemetry(d, publisher, range(STALLED + 1))
    await service.anomaly_detected(stall_anomaly(), d, publisher=publisher)
    [opening] = publisher.rcas
    assert opening.corroboration is not None and not opening.corroboration.proposal_met
    assert opening.confidence <= 0.45  # waiting for corroboration: under the planner's bar
    await telemetry(d, publisher, range(STALLED + 1, len(AGES)))
    first, revision = publisher.rcas
    assert first is opening and revision.episode_id == opening.episode_id
    assert revision.root_cause_class == "sequencer_stall"
    assert revision.corroboration is not None and revision.corroboration.proposal_met
    assert revision.confidence > opening.confidence
    assert revision.event_id != opening.event_id
    assert len(publisher.audits) == 2


async def test_resolved_anomalies_and_a_quiet_minute_announce_the_incident_resolved() -> None:
    d, publisher = deps(), RecordingPublisher()
    await telemetry(d, publisher, range(STALLED + 1))
    await service.anomaly_detected(stall_anomaly(), d, publisher=publisher)
    over = at(STALLED + 2)
    service.anomaly_resolved(
        AnomalyResolved(
            occurred_at=over,
            chain_id=CHAIN,
            episode_id="stall-1",
            component="op-geth",
            metric="secondsSinceHead",
            rule="liveness",
            started_at=at(STALLED),
            duration_s=4.0,
            description="Sequencer stall resolved after 4.0s (3 clean evaluations)",
        ),
        d,
    )
    calm = range(len(AGES), len(AGES) + 35)  # the head moves again: 70 s of healthy samples
    await telemetry(d, publisher, calm)
    [resolved] = publisher.resolved
    assert (resolved.chain_id, resolved.incident_id) == (CHAIN, publisher.rcas[0].episode_id)
    assert "Sequencer stall resolved" in resolved.reason
    assert d.diagnoser.tracker.incidents == {}


async def test_without_an_llm_the_rules_answer_is_published_as_it_is() -> None:
    d, publisher = deps(), RecordingPublisher()
    assert d.llm is None
    await telemetry(d, publisher, range(STALLED + 1))
    await service.anomaly_detected(stall_anomaly(), d, publisher=publisher)
    [rca] = publisher.rcas
    assert (rca.engine, rca.model, rca.cost_usd) == ("rules", None, 0.0)
    assert "llmRefused" not in publisher.audits[0].details


async def test_a_failed_publish_leaves_the_anomaly_unhandled_so_its_redelivery_publishes() -> None:
    d, publisher = deps(), RecordingPublisher(fail=True)
    await telemetry(d, publisher, range(STALLED + 1))
    # The error reaches the consumer, whose retry policy redelivers the anomaly later.
    with pytest.raises(ConnectionError):
        await service.anomaly_detected(stall_anomaly(), d, publisher=publisher)
    assert publisher.rcas == []
    await service.anomaly_detected(stall_anomaly(), d, publisher=publisher)
    [rca] = publisher.rcas
    assert rca.anomaly_event_id == "stall-1"

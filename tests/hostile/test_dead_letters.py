"""Malformed, oversized and wrong-schema messages on every subject a service consumes.

Each consuming service must dead-letter the bad message on ``deadletter.<service>`` with a reason,
count it in ``sentinai_dead_letters_total``, acknowledge it (no redelivery loop), stay up, and still
handle the good message published right after it. The six consuming services run as real processes
on a real nats-server, started once for the module.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import nats
import pytest
from hostile_support import consumers_of
from nats.aio.msg import Msg
from serviceproc import Service, start_all, stop_every

from sentinai.common import streams, subjects
from sentinai.common.actions import Notify, RestartComponent
from sentinai.common.decisions import (
    ActionApproved,
    ActionCommand,
    ActionExecuted,
    ActionProposed,
    ActionRequested,
    AuditRecorded,
    IncidentResolved,
    PredictionMade,
    RcaCompleted,
)
from sentinai.common.events import (
    AnomalyDetected,
    AnomalyResolved,
    DeadLetter,
    Event,
    LogBatch,
    MetricSample,
    new_id,
    utcnow,
)
from sentinai.devkit.natsserver import EmbeddedNats
from sentinai.devkit.waits import eventually

pytestmark = pytest.mark.integration

SERVICES = ("detector", "rca", "predictor", "planner", "executor", "api")
# Oversized: close to nats-server's default 1 MiB max_payload, so the server still accepts it.
OVERSIZED_BYTES = 900 * 1024


def _good(family: str, chain: str) -> tuple[str, Event]:
    """A valid event of ``family`` on ``chain`` and the subject it travels on."""
    now = utcnow()
    notify = Notify(severity="low", text="hostile-input test")
    match family:
        case "metrics.raw":
            return subjects.metrics_raw(chain, "op-geth"), MetricSample(
                chain_id=chain, component="op-geth", source="rpc", metrics={"blockHeight": 100.0}
            )
        case "logs.raw":
            line = 't=2026-11-26T23:14:15+0000 lvl=info msg="Sequencer inserted block"'
            return subjects.logs_raw(chain, "op-node"), LogBatch(
                chain_id=chain, component="op-node", lines=(line,)
            )
        case "anomaly.detected":
            return subjects.anomaly_detected(chain), AnomalyDetected(
                chain_id=chain,
                component="op-geth",
                metric="txPoolCount",
                value=130.0,
                z_score=3.2,
                direction="up",
                severity="low",
                description="tx pool a little busier than usual",
                rule="zscore",
            )
        case "anomaly.resolved":
            return subjects.anomaly_resolved(chain), AnomalyResolved(
                chain_id=chain,
                episode_id=new_id(),
                component="op-geth",
                metric="txPoolCount",
                rule="zscore",
                started_at=now - timedelta(seconds=30),
                duration_s=30.0,
                description="tx pool back to normal",
            )
        case "rca.completed":
            return subjects.rca_completed(chain), RcaCompleted(
                chain_id=chain,
                episode_id=new_id(),
                anomaly_event_id=new_id(),
                root_cause="a possible L1 re-org; op-node follows the new head by itself",
                root_cause_class="l1_reorg",
                affected_components=("op-node",),
                risk_level="low",
                action_plan="observe",
                confidence=0.8,
                engine="rules",
                latency_ms=1.0,
            )
        case "incident.resolved":
            return subjects.incident_resolved(chain), IncidentResolved(
                chain_id=chain, incident_id=new_id(), resolved_at=now, reason="quiet for 60 s"
            )
        case "prediction.made":
            return subjects.prediction_made(chain), PredictionMade(
                chain_id=chain,
                predicted_vcpu=1.0,
                current_vcpu=1.0,
                confidence=20.0,
                trend="stable",
                reasoning="flat load",
                horizon_s=300.0,
                forecast_cores=0.4,
                upper_bound_cores=0.6,
                model="test",
            )
        case "action.proposed":
            return subjects.action_proposed(chain), ActionProposed(
                chain_id=chain,
                action_id=f"act-{new_id()[:16]}",
                action=RestartComponent(component="op-node"),
                tier="high",
                approvals_required=1,
                cooldown_s=600,
                status="pending_approval",
                reason="test",
                proposed_by="planner",
                expires_at=now + timedelta(hours=1),
            )
        case "action.approved":
            return subjects.action_approved(chain), ActionApproved(
                chain_id=chain,
                action_id=f"act-{new_id()[:16]}",
                action=notify,
                tier="low",
                cooldown_s=0,
                reason="test",
            )
        case "action.executed":
            return subjects.action_executed(chain), ActionExecuted(
                chain_id=chain,
                action_id=f"act-{new_id()[:16]}",
                action=notify,
                outcome="dry_run",
                detail="test",
                dry_run=True,
                started_at=now,
                finished_at=now,
            )
        case "action.command":
            return subjects.action_command(chain), ActionCommand(
                chain_id=chain, action_id="act-unknown", command="approve", by="tester"
            )
        case "action.requested":
            return subjects.action_requested(chain), ActionRequested(
                chain_id=chain, action=notify, requested_by="tester", reason="test", via="rest"
            )
        case "audit":
            return subjects.audit(chain), AuditRecorded(
                chain_id=chain, kind="proposed", actor="tester", summary="test"
            )
    raise ValueError(family)


# Subject family → the services that consume it (the api ignores commands and requests by design:
# they are the planner's input, and their effects reach the api as audit records).
CONSUMERS: dict[str, tuple[str, ...]] = {
    "metrics.raw": ("detector", "rca", "predictor", "api"),
    "logs.raw": ("detector", "rca"),
    "anomaly.detected": ("rca", "api"),
    "anomaly.resolved": ("rca", "api"),
    "rca.completed": ("planner", "api"),
    "incident.resolved": ("planner",),
    "prediction.made": ("planner", "api"),
    "action.proposed": ("api",),
    "action.approved": ("executor", "api"),
    "action.executed": ("rca", "planner", "api"),
    "action.command": ("planner",),
    "action.requested": ("planner",),
    "audit": ("planner", "api"),
}
STREAM = {
    "metrics.raw": streams.TELEMETRY,
    "logs.raw": streams.TELEMETRY,
    "anomaly.detected": streams.EVENTS,
    "anomaly.resolved": streams.EVENTS,
    "rca.completed": streams.EVENTS,
    "incident.resolved": streams.EVENTS,
    "prediction.made": streams.EVENTS,
    "audit": streams.AUDIT,
}


def _malformed(family: str, chain: str) -> bytes:
    return b'\xff\xfe{"chainId": "' + chain.encode() + b'", "metrics": {"blockHeight": 1'


def _oversized(family: str, chain: str) -> bytes:
    """The good event plus one huge unknown field: valid JSON, valid schema, far too big."""
    _, event = _good(family, chain)
    body = json.loads(event.to_json())
    body["padding"] = "A" * OVERSIZED_BYTES
    return json.dumps(body).encode()


def _wrong_schema(family: str, chain: str) -> bytes:
    """A well-formed event of another kind: right JSON, wrong shape for this subject."""
    other = "audit" if family != "audit" else "metrics.raw"
    _, event = _good(other, chain)
    return event.to_json()


CASES: dict[str, Callable[[str, str], bytes]] = {
    "malformed": _malformed,
    "oversized": _oversized,
    "wrong-schema": _wrong_schema,
}


@pytest.fixture(scope="module")
def services(
    module_nats: EmbeddedNats, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Service]]:
    workdir: Path = tmp_path_factory.mktemp("dead-letters")
    chains = workdir / "chains.yaml"
    chains.write_text("chains:\n  - id: hostile\n")
    started = start_all(
        SERVICES,
        nats_url=module_nats.url,
        workdir=workdir,
        env={"executor": {"SENTINAI_EXECUTOR_CHAINS_FILE": str(chains)}},
    )
    try:
        asyncio.run(_consumers_ready(module_nats.url))
        yield started
    finally:
        stop_every(started)


async def _consumers_ready(url: str) -> None:
    """Until every family has a consumer per consuming service (durables and the api's ephemerals)."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()

        async def ready() -> bool:
            for family, consumers in CONSUMERS.items():
                subject, _ = _good(family, "probe")
                found = await consumers_of(js, STREAM.get(family, streams.ACTIONS).name, subject)
                if len(found) < len(consumers):
                    return False
            return True

        await eventually(ready, timeout_s=30, what="every service's consumers")
    finally:
        await nc.close()


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("family", list(CONSUMERS))
async def test_bad_message_is_dead_lettered_counted_and_the_service_goes_on(
    services: dict[str, Service], module_nats: EmbeddedNats, family: str, case: str
) -> None:
    consumers = CONSUMERS[family]
    chain = f"dl-{family.replace('.', '-')}-{case}"
    subject, good = _good(family, chain)
    stream = STREAM.get(family, streams.ACTIONS)
    before = {name: services[name].counter("sentinai_dead_letters_total") for name in consumers}

    nc = await nats.connect(module_nats.url, max_reconnect_attempts=0)
    try:
        js = nc.jetstream()
        letters: dict[str, list[DeadLetter]] = {}

        async def on_letter(msg: Msg) -> None:
            letter = DeadLetter.model_validate_json(msg.data)
            if letter.subject == subject:
                letters.setdefault(letter.service, []).append(letter)

        await nc.subscribe(subjects.DEAD_LETTER_ALL, cb=on_letter)
        await nc.flush()
        await js.publish(subject, CASES[case](family, chain), stream=stream.name, timeout=5)

        async def all_dead_lettered() -> bool:
            return set(letters) >= set(consumers)

        await eventually(all_dead_lettered, timeout_s=20, what=f"dead letters from {consumers}")
        ack = await js.publish(
            subject, good.to_json(), stream=stream.name, headers={"Nats-Msg-Id": good.event_id}
        )

        async def good_one_handled() -> list[str] | None:
            infos = await consumers_of(js, stream.name, subject)
            pending = [
                info.name
                for info in infos
                if ((info.delivered.stream_seq if info.delivered else 0) or 0) < ack.seq
                or info.num_ack_pending
            ]
            return None if pending or len(infos) < len(consumers) else [i.name for i in infos]

        await eventually(good_one_handled, timeout_s=20, what="the good message acked by every consumer")
        # Nothing more arrives for the good message, and nothing was delivered twice.
        await asyncio.sleep(0.2)
        redelivered = {i.name: i.num_redelivered for i in await consumers_of(js, stream.name, subject)}
    finally:
        await nc.close()

    assert {name: len(found) for name, found in letters.items()} == dict.fromkeys(consumers, 1)
    for letter in (found[0] for found in letters.values()):
        assert letter.reason, letter
        assert len(letter.payload) <= 8192
    if case == "oversized":
        assert all("exceeds" in found[0].reason for found in letters.values())
    after = {name: services[name].counter("sentinai_dead_letters_total") for name in consumers}
    assert {name: after[name] - before[name] for name in consumers} == dict.fromkeys(consumers, 1.0)
    assert not any(redelivered.values()), redelivered
    assert all(service.alive() for service in services.values())

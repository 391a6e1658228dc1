"""The rca app on a real nats-server: context replayed, one RCA per incident, audit, the process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import nats
import pytest
from nats.aio.msg import Msg

from sentinai.common import streams, subjects
from sentinai.common.decisions import AuditRecorded, RcaCompleted
from sentinai.common.events import AnomalyDetected, LogBatch, MetricSample, utcnow
from sentinai.common.net import free_port
from sentinai.devkit.natsserver import EmbeddedNats
from sentinai.devkit.waits import eventually
from sentinai.rca.main import build_app
from sentinai.rca.settings import RcaSettings
from services.rca.tests.scenes import STALL_AGE, op

CHAIN = "itest"


@asynccontextmanager
async def running_rca(url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    monkeypatch.setenv("SENTINAI_NATS_URL", url)
    app = build_app(RcaSettings(http_port=free_port()))
    async with app.start_lifespan_context():
        yield


def stall(chain: str, event_id: str) -> AnomalyDetected:
    return AnomalyDetected(
        event_id=event_id,
        correlation_id=event_id,
        episode_id=event_id,
        chain_id=chain,
        component="op-geth",
        metric="secondsSinceHead",
        value=16.0,
        z_score=8.0,
        direction="up",
        severity="high",
        description="Sequencer stall: unsafe head has not advanced for 16.0s",
        rule="liveness",
    )


@pytest.mark.integration
async def test_rca_from_replayed_telemetry_once_per_incident(
    nats_server: EmbeddedNats, monkeypatch: pytest.MonkeyPatch
) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        await streams.ensure_streams(js)
        start = utcnow() - timedelta(seconds=60)
        # Telemetry published before rca starts: a new rca rebuilds its context from recent history.
        for i, age in enumerate(STALL_AGE):
            sample = MetricSample(
                occurred_at=start + timedelta(seconds=2 * i),
                chain_id=CHAIN,
                component="op-geth",
                source="rpc",
                metrics={"secondsSinceHead": age, "txPoolCount": 120.0 + 40 * i},
            )
            await js.publish(subjects.metrics_raw(CHAIN, "op-geth"), sample.to_json())
        line = op(
            "error", "Engine failed temporarily, backing off sequencer", err="context deadline exceeded"
        )
        batch = LogBatch(chain_id=CHAIN, component="op-node", lines=(line,) * 3)
        await js.publish(subjects.logs_raw(CHAIN, "op-node"), batch.to_json())

        received: asyncio.Queue[Msg] = asyncio.Queue()
        await nc.subscribe(subjects.RCA_COMPLETED_ALL, cb=received.put)
        async with running_rca(nats_server.url, monkeypatch):
            await eventually(lambda: caught_up(js), timeout_s=15, what="the metrics durable caught up")
            sent = time.perf_counter()
            await js.publish(subjects.anomaly_detected(CHAIN), stall(CHAIN, "stall-1").to_json())
            rca = RcaCompleted.model_validate_json((await asyncio.wait_for(received.get(), timeout=15)).data)
            latency_s = time.perf_counter() - sent
            # A redelivered copy, then another chain's anomaly: it arrives after the copy was handled.
            await js.publish(subjects.anomaly_detected(CHAIN), stall(CHAIN, "stall-1").to_json())
            await js.publish(subjects.anomaly_detected("other"), stall("other", "stall-9").to_json())
            following = RcaCompleted.model_validate_json(
                (await asyncio.wait_for(received.get(), timeout=15)).data
            )

        assert (rca.chain_id, rca.root_cause_class, rca.engine) == (CHAIN, "sequencer_stall", "rules")
        assert any("Engine failed temporarily" in e for e in rca.evidence)
        assert any("secondsSinceHead=16.0" in e for e in rca.evidence)
        assert latency_s < 1.0, latency_s
        assert following.chain_id == "other"
        audit = await js.get_last_msg(streams.AUDIT.name, subjects.audit(CHAIN))
        record = AuditRecorded.model_validate_json(audit.data or b"")
        assert (record.kind, record.details["episodeId"]) == ("rca_completed", rca.episode_id)
    finally:
        await nc.close()


async def caught_up(js: nats.js.JetStreamContext) -> bool:
    """Whether the metrics durable has handled the telemetry already stored."""
    try:
        info = await js.consumer_info(streams.TELEMETRY.name, "rca-metrics")
    except nats.js.errors.NotFoundError:
        return False
    return info.num_pending == 0 and info.num_ack_pending == 0


@pytest.fixture
def rca_process(nats_server: EmbeddedNats, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    env = os.environ | {"SENTINAI_NATS_URL": nats_server.url, "SENTINAI_RCA_HTTP_PORT": str(port)}
    with open(tmp_path / "rca.log", "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "sentinai.rca"], env=env, stderr=log)
    try:
        yield process, port
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


@pytest.mark.integration
async def test_process_serves_health_diagnoses_and_stops_cleanly_on_sigterm(
    rca_process: tuple[subprocess.Popen[bytes], int], nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    process, port = rca_process
    nc = await nats.connect(nats_server.url)
    try:
        async with httpx.AsyncClient() as http:

            async def healthy() -> bool:
                return (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200

            await eventually(
                healthy, timeout_s=30, what="rca healthy", every_s=0.1, tolerate=(httpx.TransportError,)
            )
        received: asyncio.Queue[Msg] = asyncio.Queue()
        await nc.subscribe(subjects.RCA_COMPLETED_ALL, cb=received.put)
        await nc.jetstream().publish(subjects.anomaly_detected(CHAIN), stall(CHAIN, "proc-1").to_json())
        rca = RcaCompleted.model_validate_json((await asyncio.wait_for(received.get(), timeout=15)).data)
    finally:
        await nc.close()
    process.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises the signal so the exit status says why it stopped.
    assert await asyncio.to_thread(process.wait, 15) in (0, -signal.SIGTERM)
    assert rca.anomaly_event_id == "proc-1"
    lines = [json.loads(line) for line in (tmp_path / "rca.log").read_text().splitlines()]
    assert {line["service"] for line in lines} == {"rca"}
    assert any(line["msg"] == "rca published" and line["chain"] == CHAIN for line in lines)
    assert lines[-1]["msg"].startswith("Finished server process")
    assert any(line["msg"] == "Application shutdown complete." for line in lines)

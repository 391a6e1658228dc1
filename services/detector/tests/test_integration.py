"""The detector app against a real nats-server: JetStream in, anomalies out, windows rebuilt on restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from sentinai.common import streams, subjects
from sentinai.common.events import AnomalyDetected, MetricSample, utcnow
from sentinai.common.net import free_port
from sentinai.detector.main import build_app
from sentinai.detector.settings import DetectorSettings
from sentinai.devkit.natsserver import EmbeddedNats

CHAIN = "itest"


@asynccontextmanager
async def running_detector(url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    monkeypatch.setenv("SENTINAI_NATS_URL", url)
    settings = DetectorSettings(http_port=free_port())
    app = build_app(settings)
    async with app.start_lifespan_context():
        yield


async def publish_cpu(nc: Client, values: list[float]) -> None:
    js = nc.jetstream()
    start = utcnow()
    for i, value in enumerate(values):
        sample = MetricSample(
            occurred_at=start + timedelta(milliseconds=i),
            chain_id=CHAIN,
            component="op-geth",
            source="k8s",
            metrics={"cpuUsage": value},
        )
        await js.publish(
            subjects.metrics_raw(CHAIN, "op-geth"), sample.to_json(), stream=streams.TELEMETRY.name
        )


async def next_anomaly(queue: asyncio.Queue[Msg]) -> AnomalyDetected:
    msg = await asyncio.wait_for(queue.get(), timeout=15)
    return AnomalyDetected.model_validate_json(msg.data)


@pytest.mark.integration
async def test_detects_from_jetstream_and_rebuilds_windows_after_restart(
    nats_server: EmbeddedNats, monkeypatch: pytest.MonkeyPatch
) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        await streams.ensure_streams(nc.jetstream())
        received: asyncio.Queue[Msg] = asyncio.Queue()
        await nc.subscribe(subjects.anomaly_detected(CHAIN), cb=received.put)
        await publish_cpu(nc, [50.0, 51.0, 49.0] * 14 + [90.0])

        async with running_detector(nats_server.url, monkeypatch):
            first = await next_anomaly(received)
        assert (first.chain_id, first.metric, first.value, first.rule) == (
            CHAIN,
            "cpuUsage",
            90.0,
            "streaming",
        )

        # The restarted detector replays the history into its windows and streaming models without
        # announcing it again, so a spike right after the restart is judged by a warmed model (a
        # fresh one would still be warming up and leave it to the z-score) against the full baseline;
        # the spike is far larger than the first, so the cool-down that followed it does not hide it.
        await publish_cpu(nc, [400.0])
        async with running_detector(nats_server.url, monkeypatch):
            second = await next_anomaly(received)
        assert (second.value, second.rule) == (400.0, "streaming")
        assert second.episode_id != first.episode_id
        assert received.empty()
    finally:
        await nc.close()

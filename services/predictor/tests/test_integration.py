"""The predictor app against a real nats-server: history replayed from JetStream, predictions out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from sentinai.common import streams, subjects
from sentinai.common.decisions import PredictionMade
from sentinai.common.events import MetricSample, utcnow
from sentinai.common.net import free_port
from sentinai.devkit.natsserver import EmbeddedNats
from sentinai.predictor.main import build_app
from sentinai.predictor.settings import PredictorSettings

CHAIN = "itest"


@asynccontextmanager
async def running_predictor(url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    monkeypatch.setenv("SENTINAI_NATS_URL", url)
    settings = PredictorSettings(interval_s=0.5, http_port=free_port())
    app = build_app(settings)
    async with app.start_lifespan_context():
        yield


async def publish_polls(nc: Client, times: list[datetime], *, cpu: float) -> None:
    js = nc.jetstream()
    for i, at in enumerate(times):
        for source, metrics in (
            ("k8s", {"cpuCores": cpu, "cpuRequestCores": 1.0}),
            ("rpc", {"txPoolCount": 40.0 + i, "gasUsedRatio": 0.3, "blockInterval": 2.0}),
        ):
            sample = MetricSample(
                occurred_at=at, chain_id=CHAIN, component="op-geth", source=source, metrics=metrics
            )
            await js.publish(
                subjects.metrics_raw(CHAIN, "op-geth"), sample.to_json(), stream=streams.TELEMETRY.name
            )


async def next_prediction(queue: asyncio.Queue[Msg]) -> PredictionMade:
    msg = await asyncio.wait_for(queue.get(), timeout=15)
    return PredictionMade.model_validate_json(msg.data)


@pytest.mark.integration
async def test_predicts_from_replayed_history_and_rebuilds_it_after_restart(
    nats_server: EmbeddedNats, monkeypatch: pytest.MonkeyPatch
) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        await streams.ensure_streams(nc.jetstream())
        received: asyncio.Queue[Msg] = asyncio.Queue()
        await nc.subscribe(subjects.prediction_made(CHAIN), cb=received.put)
        # Ten minutes of polls every 10 s, already in JetStream before the predictor starts.
        start = utcnow() - timedelta(minutes=10)
        await publish_polls(nc, [start + timedelta(seconds=10 * i) for i in range(60)], cpu=0.45)

        async with running_predictor(nats_server.url, monkeypatch):
            first = await next_prediction(received)
        assert (first.chain_id, first.predicted_vcpu, first.current_vcpu, first.trend) == (
            CHAIN,
            1.0,
            1.0,
            "stable",
        )
        assert first.occurred_at == start + timedelta(seconds=590)
        assert first.key_factors[0] == "CPU at 45% of its 1 vCPU request"
        assert first.confidence > 50  # 30 past forecasts checked, all covered

        # A restarted predictor rebuilds the ten minutes from the stream: one new poll is enough.
        async with running_predictor(nats_server.url, monkeypatch):
            replayed = await next_prediction(received)
            assert replayed.event_id == first.event_id  # same history, same prediction (stored once)
            await publish_polls(nc, [utcnow()], cpu=0.45)
            second = await next_prediction(received)
        assert second.occurred_at > first.occurred_at
        assert second.predicted_vcpu == 1.0
        assert any(f.endswith("over 10 min (mean 0.45, std 0.00)") for f in second.key_factors)
        assert received.empty()
    finally:
        await nc.close()

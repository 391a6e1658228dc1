"""The HTTP surface: shapes, filters, clear 4xx errors; GETs change nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from sentinai.api.app import create_app
from sentinai.api.readmodel import ReadModel
from sentinai.api.settings import ApiSettings
from sentinai.common.events import AnomalyDetected, MetricSample

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture
def model() -> ReadModel:
    m = ReadModel(keep_anomalies=50)
    m.apply_sample(
        MetricSample(
            chain_id="twin",
            component="op-geth",
            source="rpc",
            occurred_at=NOW,
            metrics={"blockHeight": 100, "txPoolCount": 7, "gasUsedRatio": 0.4, "blockInterval": 2.0},
        )
    )
    m.apply_sample(
        MetricSample(
            chain_id="twin", component="op-geth", source="k8s", occurred_at=NOW, metrics={"cpuUsage": 41.5}
        )
    )
    m.apply_anomaly(
        AnomalyDetected(
            chain_id="twin",
            component="op-node",
            metric="unsafeL2Age",
            value=9.0,
            z_score=4.5,
            direction="up",
            severity="high",
            description="Sequencer stall",
            rule="liveness",
            occurred_at=NOW,
        )
    )
    return m


async def _client(model: ReadModel, connected: bool, sent: Any) -> httpx.AsyncClient:
    async def probe() -> bool:
        return connected

    app = create_app(model, settings=ApiSettings(), nats_connected=probe, commands=sent, clock=lambda: NOW)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")


@pytest.fixture
async def client(model: ReadModel, sent: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with await _client(model, connected=True, sent=sent) as c:
        yield c


async def test_metrics_show_headline_values_components_and_active_anomalies(
    client: httpx.AsyncClient,
) -> None:
    body = (await client.get("/api/metrics", params={"chain": "twin"})).json()
    chain = body["chains"][0]
    assert chain["metrics"] == {
        "blockHeight": 100,
        "cpuUsage": 41.5,
        "txPoolCount": 7,
        "gasUsedRatio": 0.4,
        "blockInterval": 2.0,
    }
    assert chain["components"]["op-geth"]["k8s"]["targetUp"] is True
    assert [a["metric"] for a in chain["anomalies"]] == ["unsafeL2Age"]


async def test_anomalies_carry_the_fields_an_operator_reads(client: httpx.AsyncClient) -> None:
    body = (await client.get("/api/anomalies")).json()
    item = body["anomalies"][0]
    assert {k: item[k] for k in ("chain", "metric", "zScore", "severity", "description")} == {
        "chain": "twin",
        "metric": "unsafeL2Age",
        "zScore": 4.5,
        "severity": "high",
        "description": "Sequencer stall",
    }
    assert item["occurredAt"].startswith("2026-11-26T12:00:00")


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        pytest.param("/api/metrics", {"chain": "nope"}, 404, id="unknown-chain-metrics"),
        pytest.param("/api/anomalies", {"chain": "nope"}, 404, id="unknown-chain-anomalies"),
        pytest.param("/api/anomalies", {"limit": "0"}, 422, id="limit-too-small"),
        pytest.param("/api/anomalies", {"limit": "many"}, 422, id="limit-not-a-number"),
    ],
)
async def test_bad_input_gets_a_4xx_with_a_message(
    client: httpx.AsyncClient, path: str, params: dict[str, str], status: int
) -> None:
    response = await client.get(path, params=params)
    assert response.status_code == status
    assert response.json()["detail"]


async def test_health_ok_when_connected_and_fresh(client: httpx.AsyncClient) -> None:
    body = (await client.get("/api/health")).json()
    assert body["status"] == "ok"
    assert body["chains"][0]["l2Reachable"] is True and body["chains"][0]["k8sReachable"] is True


async def test_health_down_without_nats(model: ReadModel, sent: Any) -> None:
    async with await _client(model, connected=False, sent=sent) as c:
        response = await c.get("/api/health")
    assert response.status_code == 503 and response.json()["status"] == "down"


async def test_reads_have_no_side_effects(client: httpx.AsyncClient, model: ReadModel) -> None:
    before = (await client.get("/api/anomalies")).json()
    for _ in range(3):
        await client.get("/api/metrics")
        await client.get("/api/health")
    assert (await client.get("/api/anomalies")).json() == before


async def test_prometheus_scrape_shows_chain_gauges_without_a_redirect(client: httpx.AsyncClient) -> None:
    resp = await client.get("/metrics")
    assert resp.status_code == 200
    assert 'sentinai_chain_metric{chain="twin",metric="blockHeight"} 100.0' in resp.text
    assert "sentinai_anomalies_total" in resp.text and "sentinai_approvals_pending" in resp.text

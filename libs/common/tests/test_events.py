"""Event contracts: the seed's camelCase JSON, frozen models, clear errors on bad input."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pydantic
import pytest

from sentinai.common import subjects
from sentinai.common.events import AnomalyDetected, MalformedEventError, MetricSample, decode


def _anomaly() -> AnomalyDetected:
    return AnomalyDetected(
        chain_id="op-sepolia",
        component="op-geth",
        metric="cpuUsage",
        value=87.3,
        z_score=3.2,
        direction="up",
        severity="medium",
        description="CPU spike detected: 87.3% (3.2σ above baseline)",
        rule="zscore",
    )


def test_anomaly_json_uses_the_seed_shape_and_names() -> None:
    body = json.loads(_anomaly().to_json())
    assert {k: body[k] for k in ("metric", "value", "zScore", "direction", "severity", "description")} == {
        "metric": "cpuUsage",
        "value": 87.3,
        "zScore": 3.2,
        "direction": "up",
        "severity": "medium",
        "description": "CPU spike detected: 87.3% (3.2σ above baseline)",
    }
    assert body["chainId"] == "op-sepolia"
    assert body["schemaVersion"] == 1
    assert body["eventId"] and body["correlationId"] and body["episodeId"]
    assert datetime.fromisoformat(body["occurredAt"]).tzinfo is not None


def test_round_trip_is_lossless() -> None:
    original = _anomaly()
    assert decode(AnomalyDetected, original.to_json()) == original


def test_events_are_frozen() -> None:
    with pytest.raises(pydantic.ValidationError):
        _anomaly().value = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param(b"not json", "invalid MetricSample", id="not-json"),
        pytest.param(
            b'{"chainId":"a.b","component":"op-geth","source":"rpc"}',
            "not a valid subject token",
            id="chain-with-dot",
        ),
        pytest.param(b'{"chainId":"c","component":"op-geth","source":"ftp"}', "source", id="unknown-source"),
        pytest.param(
            b'{"chainId":"c","component":"op-geth","source":"rpc","metrics":{"cpuUsage":"high"}}',
            "metrics.cpuUsage",
            id="non-numeric-metric",
        ),
        pytest.param(
            b'{"chainId":"c","component":"op-geth","source":"rpc","occurredAt":"2026-11-26T10:00:00"}',
            "occurredAt",
            id="naive-timestamp",
        ),
    ],
)
def test_malformed_payloads_get_a_readable_reason(body: bytes, reason: str) -> None:
    with pytest.raises(MalformedEventError, match=reason):
        decode(MetricSample, body)


def test_timestamps_keep_their_zone() -> None:
    sample = MetricSample(
        chain_id="c", component="op-node", source="rpc", occurred_at=datetime(2026, 11, 26, tzinfo=UTC)
    )
    assert decode(MetricSample, sample.to_json()).occurred_at == datetime(2026, 11, 26, tzinfo=UTC)


def test_subjects_carry_chain_and_component_tokens() -> None:
    assert subjects.metrics_raw("op-sepolia", "op-geth") == "metrics.raw.op-sepolia.op-geth"
    assert subjects.anomaly_detected("base") == "anomaly.detected.base"
    assert subjects.chain_of("logs.raw.base.op-node") == "base"
    assert subjects.chain_of("audit.base") == "base"
    assert subjects.chain_of(subjects.incident_resolved("base")) == "base"
    with pytest.raises(subjects.InvalidTokenError):
        subjects.metrics_raw("bad chain", "op-geth")
    with pytest.raises(subjects.InvalidTokenError):
        subjects.anomaly_detected("*")

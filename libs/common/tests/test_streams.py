"""Streams are created idempotently on a real JetStream server and catch every subject we use."""

from __future__ import annotations

import nats
import pytest

from sentinai.common import streams, subjects
from sentinai.devkit.natsserver import EmbeddedNats

pytestmark = pytest.mark.integration


async def test_ensure_streams_twice_and_every_subject_lands_in_its_stream(nats_server: EmbeddedNats) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        await streams.ensure_streams(js)
        await streams.ensure_streams(js)  # a second service starting must not fail or duplicate
        expected = {
            subjects.metrics_raw("c1", "op-geth"): "TELEMETRY",
            subjects.logs_raw("c1", "op-node"): "TELEMETRY",
            subjects.anomaly_detected("c1"): "EVENTS",
            subjects.anomaly_resolved("c1"): "EVENTS",
            subjects.rca_completed("c1"): "EVENTS",
            subjects.incident_resolved("c1"): "EVENTS",
            subjects.prediction_made("c1"): "EVENTS",
            subjects.action_proposed("c1"): "ACTIONS",
            subjects.action_approved("c1"): "ACTIONS",
            subjects.action_executed("c1"): "ACTIONS",
            subjects.audit("c1"): "AUDIT",
            subjects.dead_letter("detector"): "DEADLETTER",
        }
        for subject, stream in expected.items():
            ack = await js.publish(subject, b"{}")
            assert ack.stream == stream, subject
        dup = await js.publish(subjects.audit("c1"), b"{}", headers={"Nats-Msg-Id": "once"})
        again = await js.publish(subjects.audit("c1"), b"{}", headers={"Nats-Msg-Id": "once"})
        assert again.duplicate and again.seq == dup.seq
    finally:
        await nc.close()

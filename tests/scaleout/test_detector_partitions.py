"""Three detector processes split 30 chains by subject partitioning: each chain has exactly one owner."""

from __future__ import annotations

import asyncio
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import timedelta

import nats
import pytest
from nats.aio.msg import Msg
from serviceproc import Service

from sentinai.common import streams, subjects
from sentinai.common.events import AnomalyDetected, MetricSample, utcnow
from sentinai.devkit.natsserver import EmbeddedNats
from sentinai.devkit.waits import eventually
from tests.scaleout.conftest import healthy

pytestmark = pytest.mark.integration

PARTITIONS = 3
CHAINS = [f"chain-{i:02d}" for i in range(30)]
BASELINE = [50.0, 51.0, 49.0] * 14


def sample(chain: str, value: float, *, at_ms: int) -> MetricSample:
    return MetricSample(
        occurred_at=utcnow() + timedelta(milliseconds=at_ms),
        chain_id=chain,
        component="op-geth",
        source="k8s",
        metrics={"cpuUsage": value},
    )


def chains_judged(detector: Service) -> set[str]:
    """The chains a detector process opened episodes for, from its own /metrics."""
    text = detector.get("/metrics").text
    return set(re.findall(r'sentinai_detector_episodes_total\{chain="([^"]+)",kind="detected"', text))


async def test_every_chain_is_owned_by_exactly_one_detector(
    nats_server: EmbeddedNats, services: Callable[..., Service]
) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        await streams.ensure_streams(js, partitions=PARTITIONS)
        detectors = [
            services(
                "detector",
                tag=f"-p{k}",
                SENTINAI_NATS_URL=nats_server.url,
                SENTINAI_DETECTOR_PARTITIONS=str(PARTITIONS),
                SENTINAI_DETECTOR_PARTITION=str(k),
            )
            for k in range(PARTITIONS)
        ]
        await healthy(*detectors)
        # A service that does not know the partition count (the collector, rca …) keeps it.
        await streams.ensure_streams(js)
        assert streams.partitions_of((await js.stream_info(streams.TELEMETRY.name)).config) == PARTITIONS

        detected: list[AnomalyDetected] = []

        async def on_anomaly(msg: Msg) -> None:
            detected.append(AnomalyDetected.model_validate_json(msg.data))

        await nc.subscribe(subjects.ANOMALY_DETECTED_ALL, cb=on_anomaly)
        # Core subscribers (the executor's verification feed) still see the subject as published.
        core: list[str] = []

        async def on_core(msg: Msg) -> None:
            core.append(msg.subject)

        await nc.subscribe(subjects.metrics_raw_chain(CHAINS[0]), cb=on_core)

        for i, value in enumerate(BASELINE):
            await asyncio.gather(
                *(
                    js.publish(subjects.metrics_raw(c, "op-geth"), sample(c, value, at_ms=i).to_json())
                    for c in CHAINS
                )
            )

        # Stored under exactly one partition per chain, the one the detectors compute for log batches.
        info = await js.stream_info(
            streams.TELEMETRY.name, subjects_filter=subjects.metrics_raw_all(PARTITIONS)
        )
        owners: dict[str, set[int]] = defaultdict(set)
        for subject in info.state.subjects or {}:
            _, _, k, chain, _ = subject.split(".")
            owners[chain].add(int(k))
        assert owners == {c: {subjects.partition_of(c, PARTITIONS)} for c in CHAINS}
        assert len({k for ks in owners.values() for k in ks}) == PARTITIONS
        assert set(core) == {subjects.metrics_raw(CHAINS[0], "op-geth")}

        for c in CHAINS:
            await js.publish(
                subjects.metrics_raw(c, "op-geth"), sample(c, 400.0, at_ms=len(BASELINE)).to_json()
            )
        await eventually(
            lambda: {a.chain_id for a in detected} == set(CHAINS), timeout_s=30, what="30 anomalies"
        )
        await asyncio.sleep(1.0)  # a duplicate from a second owner would arrive within this

        assert Counter(a.chain_id for a in detected) == Counter(CHAINS)
        for k, detector in enumerate(detectors):
            assert chains_judged(detector) == {c for c in CHAINS if subjects.partition_of(c, PARTITIONS) == k}
    finally:
        await nc.close()

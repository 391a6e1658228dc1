"""Partition settings: a replica owns exactly one partition, named by the k8s env names."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sentinai.detector import bus
from sentinai.detector.settings import DetectorSettings


def test_a_single_detector_keeps_its_durables_and_filter() -> None:
    settings = DetectorSettings()
    assert (bus.metrics_durable(settings), bus.logs_durable(settings)) == (
        "detector-metrics",
        "detector-logs",
    )
    assert bus.metrics_filter(settings) == "metrics.raw.*.*"


def test_replica_k_consumes_its_partition_with_its_own_durable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTINAI_DETECTOR_PARTITIONS", "3")
    monkeypatch.setenv("SENTINAI_DETECTOR_PARTITION", "2")
    settings = DetectorSettings()
    assert (bus.metrics_durable(settings), bus.logs_durable(settings)) == ("detector-p2", "detector-p2-logs")
    assert bus.metrics_filter(settings) == "metrics.raw.2.>"


@pytest.mark.parametrize(("partition", "partitions"), [(None, 3), (3, 3)], ids=["missing", "out-of-range"])
def test_a_replica_must_own_one_existing_partition(
    partition: int | None, partitions: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENTINAI_DETECTOR_PARTITIONS", str(partitions))
    if partition is not None:
        monkeypatch.setenv("SENTINAI_DETECTOR_PARTITION", str(partition))
    with pytest.raises(ValidationError):
        DetectorSettings()

"""Settings: a replica owns exactly one partition, named by the k8s env names; the shared stall multiple."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sentinai.detector import consumers
from sentinai.detector.settings import DetectorSettings


def test_a_single_detector_keeps_its_durables_and_filter() -> None:
    settings = DetectorSettings()
    assert (consumers.metrics_durable(settings), consumers.logs_durable(settings)) == (
        "detector-metrics",
        "detector-logs",
    )
    assert consumers.metrics_filter(settings) == "metrics.raw.*.*"


def test_replica_k_consumes_its_partition_with_its_own_durable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTINAI_DETECTOR_PARTITIONS", "3")
    monkeypatch.setenv("SENTINAI_DETECTOR_PARTITION", "2")
    settings = DetectorSettings()
    assert (consumers.metrics_durable(settings), consumers.logs_durable(settings)) == (
        "detector-p2",
        "detector-p2-logs",
    )
    assert consumers.metrics_filter(settings) == "metrics.raw.2.>"


@pytest.mark.parametrize(("partition", "partitions"), [(None, 3), (3, 3)], ids=["missing", "out-of-range"])
def test_a_replica_must_own_one_existing_partition(
    partition: int | None, partitions: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENTINAI_DETECTOR_PARTITIONS", str(partitions))
    if partition is not None:
        monkeypatch.setenv("SENTINAI_DETECTOR_PARTITION", str(partition))
    with pytest.raises(ValidationError):
        DetectorSettings()


def test_the_stall_multiple_is_the_shared_one_and_the_old_name_still_counts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert DetectorSettings().stall_block_times == 3.0
    monkeypatch.setenv("SENTINAI_DETECTOR_STALL_BLOCK_TIMES", "5")
    assert DetectorSettings().stall_block_times == 5.0
    monkeypatch.setenv("SENTINAI_STALL_BLOCK_TIMES", "4")
    settings = DetectorSettings()
    assert settings.stall_block_times == settings.chain_rules.stall_block_times == 4.0
    assert settings.stall_limit_s == settings.chain_rules.stall_limit_s(settings.block_time_s) == 8.0

"""Detector partitions: the stored subject forms, the owner of a chain, and the stream transform."""

from __future__ import annotations

import pytest

from sentinai.common import streams, subjects


def test_unpartitioned_deployments_keep_their_subjects_and_stream() -> None:
    assert subjects.metrics_raw_all(1) == subjects.METRICS_RAW_ALL
    assert subjects.metrics_raw_chain("c1") == "metrics.raw.c1.*"
    assert streams.TELEMETRY.config().subject_transform is None
    assert streams.partitions_of(streams.TELEMETRY.config()) == 1


def test_partitioned_filters_match_the_stored_form() -> None:
    k = subjects.partition_of("c1", 3)
    assert subjects.metrics_raw_all(3) == "metrics.raw.*.*.*"
    assert subjects.metrics_raw_partition(2) == "metrics.raw.2.>"
    assert subjects.metrics_raw_chain("c1", partitions=3) == f"metrics.raw.{k}.c1.*"
    assert subjects.metrics_raw_component("op-geth", partitions=3) == "metrics.raw.*.*.op-geth"
    assert subjects.chain_of(f"metrics.raw.{k}.c1.op-geth") == "c1"


def test_the_stream_transform_round_trips_its_partition_count() -> None:
    config = streams.TELEMETRY.config(partitions=4)
    assert config.subject_transform is not None
    assert config.subject_transform.dest == "metrics.raw.{{partition(4,1)}}.{{wildcard(1)}}.{{wildcard(2)}}"
    assert streams.partitions_of(config) == 4
    assert streams.EVENTS.config(partitions=4).subject_transform is None


@pytest.mark.parametrize("partitions", [2, 3, 7])
def test_every_chain_has_one_owner_in_range(partitions: int) -> None:
    owners = {subjects.partition_of(f"chain-{i}", partitions) for i in range(200)}
    assert owners == set(range(partitions))

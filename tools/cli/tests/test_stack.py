"""What `sentinai up` starts: one process per service, or several sharing the work when asked."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentinai.cli import stack
from sentinai.cli.main import parser, up_settings


def children(settings: stack.UpSettings) -> dict[str, dict[str, str]]:
    started = stack.service_children(
        settings, nats_url="nats://127.0.0.1:4222", chains_file=Path("chains.yaml"), poll_s=1.0
    )
    return {child.name: dict(child.env) for child in started}


def test_by_default_each_service_runs_once() -> None:
    started = children(stack.UpSettings())
    assert sorted(started) == sorted(stack.SERVICES)
    assert "SENTINAI_COLLECTOR_SHARD" not in started["collector"]
    assert "SENTINAI_DETECTOR_PARTITION" not in started["detector"]


def test_flags_start_collector_shards_and_detector_partitions() -> None:
    args = parser().parse_args(["up", "--collector-shards", "3", "--detector-partitions", "2"])
    started = children(up_settings(args))
    collectors = {n: env for n, env in started.items() if n.startswith("collector")}
    detectors = {n: env for n, env in started.items() if n.startswith("detector")}
    assert sorted(collectors) == ["collector-0", "collector-1", "collector-2"]
    assert sorted(detectors) == ["detector-0", "detector-1"]
    # Every shard and partition exactly once, each process told the count and its own share.
    assert sorted(env["SENTINAI_COLLECTOR_SHARD"] for env in collectors.values()) == ["0", "1", "2"]
    assert {env["SENTINAI_COLLECTOR_SHARDS"] for env in collectors.values()} == {"3"}
    assert sorted(env["SENTINAI_DETECTOR_PARTITION"] for env in detectors.values()) == ["0", "1"]
    assert {env["SENTINAI_DETECTOR_PARTITIONS"] for env in detectors.values()} == {"2"}
    # Each process has its own health port.
    ports = [
        env[f"SENTINAI_{n.split('-')[0].upper()}_HTTP_PORT"] for n, env in {**collectors, **detectors}.items()
    ]
    assert len(set(ports)) == len(ports)


def test_the_environment_asks_for_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTINAI_COLLECTOR_SHARDS", "2")
    monkeypatch.setenv("SENTINAI_DETECTOR_PARTITIONS", "4")
    started = children(up_settings(parser().parse_args(["up"])))
    assert sum(n.startswith("collector-") for n in started) == 2
    assert sum(n.startswith("detector-") for n in started) == 4


@pytest.mark.parametrize("count", ["0", "65", "two"])
def test_a_process_count_outside_1_to_64_is_refused(count: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["up", "--collector-shards", count])
    assert "expected a process count from 1 to 64" in capsys.readouterr().err

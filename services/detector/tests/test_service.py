"""The detector's use cases on a recording publisher: no broker, each test well under a second."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from sentinai.common import subjects
from sentinai.common.events import AnomalyDetected, AnomalyResolved, LogBatch, MetricSample
from sentinai.detector import service
from sentinai.detector.logic import Outcome
from sentinai.detector.settings import DetectorSettings

T0 = datetime(2026, 11, 26, 23, 0, tzinfo=UTC)
SETTINGS = DetectorSettings()


@dataclass
class RecordingPublisher:
    """The ``Publisher`` port, keeping what would have gone on the bus; the first ``failures`` raise."""

    sent: list[Outcome] = field(default_factory=list)
    failures: int = 0

    async def anomaly(self, event: Outcome) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("the bus is away")
        self.sent.append(event)


def head(age: float, i: int) -> MetricSample:
    return MetricSample(
        event_id=f"h{i}",
        occurred_at=T0 + timedelta(seconds=2 * i),
        chain_id="opmain",
        component="op-geth",
        source="rpc",
        metrics={"secondsSinceHead": age},
    )


def never() -> int:
    raise AssertionError("the stream sequence is read only while replaying")


async def judged(ages: list[float], deps: service.Deps, publisher: RecordingPublisher) -> None:
    for i, age in enumerate(ages):
        outcomes = service.judge_sample(head(age, i), deps, settings=SETTINGS, seq=never)
        await service.flush(outcomes, deps, publisher=publisher)


async def test_a_stall_is_published_once_and_its_end_once() -> None:
    deps, publisher = service.deps_from(SETTINGS), RecordingPublisher()
    await judged([1.0, 8.0, 10.0, 12.0, 1.0, 1.0, 1.0], deps, publisher)
    opened, closed = publisher.sent
    assert isinstance(opened, AnomalyDetected) and isinstance(closed, AnomalyResolved)
    assert (opened.metric, opened.rule, opened.value) == ("secondsSinceHead", "liveness", 8.0)
    assert closed.episode_id == opened.episode_id


async def test_a_restart_replays_what_was_judged_before_into_the_windows_only() -> None:
    deps, publisher = service.deps_from(SETTINGS), RecordingPublisher()
    deps.replay.until_seq = 2
    for seq, age in enumerate([9.0, 9.0], start=1):
        outcomes = service.judge_sample(head(age, seq), deps, settings=SETTINGS, seq=lambda s=seq: s)
        await service.flush(outcomes, deps, publisher=publisher)
    assert publisher.sent == [] and deps.replay.until_seq == 2
    # The first message past the mark ends the replay: judged, and announced.
    outcomes = service.judge_sample(head(9.0, 3), deps, settings=SETTINGS, seq=lambda: 3)
    await service.flush(outcomes, deps, publisher=publisher)
    [stall] = publisher.sent
    assert isinstance(stall, AnomalyDetected) and deps.replay.until_seq == 0


async def test_what_failed_to_publish_goes_out_first_with_the_next_batch() -> None:
    deps, publisher = service.deps_from(SETTINGS), RecordingPublisher(failures=1)
    line = 't=2026-11-26T23:14:15+0000 lvl=error msg="Error initializing" err="401 Unauthorized"'
    batch = LogBatch(chain_id="opmain", component="op-node", occurred_at=T0, lines=(line,))
    with pytest.raises(ConnectionError):  # the pull loop naks the batch
        await service.flush(service.judge_logs(batch, deps, settings=SETTINGS), deps, publisher=publisher)
    assert publisher.sent == [] and len(deps.outbox) == 1
    await judged([8.0], deps, publisher)
    jwt, stall = publisher.sent
    assert (jwt.metric, stall.metric) == ("log:jwt_mismatch", "secondsSinceHead")
    assert not deps.outbox


@pytest.mark.parametrize(
    ("chain", "partition", "owned"),
    [("opmain", None, True), ("opmain", "own", True), ("opmain", "other", False), ("op main!", 0, True)],
    ids=["alone", "its-partition", "another-partition", "bad-token-to-partition-0"],
)
def test_a_replica_judges_the_log_lines_of_its_own_chains(
    chain: str, partition: int | str | None, owned: bool
) -> None:
    settings = SETTINGS
    if partition is not None:
        own = subjects.partition_of("opmain", 4)
        number = {"own": own, "other": (own + 1) % 4}.get(str(partition), partition)
        settings = SETTINGS.model_copy(update={"partitions": 4, "partition": number})
    assert service.owns(f"logs.raw.{chain}.op-node", settings=settings) is owned

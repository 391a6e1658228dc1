"""The detector's use cases, without a bus: a sample or a log batch in, anomaly episodes published out.

The bus (``bus.py``) decodes each fetched message and calls these; the decisions are ``logic``'s.
A restarted detector replays recent history to rebuild its windows (``Replay``: what a previous
instance already judged is learnt, not announced again). A batch's events are published together;
what fails to publish waits in the outbox and goes out first with the next batch.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client import Counter

from sentinai.common import subjects
from sentinai.common.events import AnomalyDetected, LogBatch, MetricSample
from sentinai.detector import logic
from sentinai.detector.logic import Outcome
from sentinai.detector.settings import DetectorSettings
from sentinai.detector.windows import DetectorState

ANOMALIES = Counter(
    "sentinai_detector_episodes_total", "Anomaly episodes opened and resolved", ["chain", "kind", "rule"]
)


class Publisher(Protocol):
    """Where episodes go: ``anomaly.detected`` / ``anomaly.resolved`` on the bus, a list in tests."""

    async def anomaly(self, event: Outcome) -> None: ...


@dataclass
class Replay:
    """Messages up to ``until_seq`` were judged by a previous instance: replay them into windows only."""

    until_seq: int = 0

    def covers(self, seq: Callable[[], int]) -> bool:
        """Whether the message at stream sequence ``seq()`` is one of them (asked only while replaying)."""
        if self.until_seq == 0:
            return False
        if seq() <= self.until_seq:
            return True
        self.until_seq = 0
        return False


@dataclass
class Deps:
    state: DetectorState
    scorer: logic.Scorer
    replay: Replay = field(default_factory=Replay)
    # Decided but not yet acknowledged by JetStream; flushed first by the next batch after a failure.
    outbox: deque[Outcome] = field(default_factory=deque)


def deps_from(settings: DetectorSettings) -> Deps:
    return Deps(
        state=DetectorState.empty(window=settings.window, seen_capacity=settings.seen_ids),
        scorer=logic.make_scorer(settings),
    )


def owns(subject: str, *, settings: DetectorSettings) -> bool:
    """Whether this replica judges the chain of ``subject``.

    Log batches are stored unpartitioned (a stream has one subject transform, spent on metrics), so
    every replica reads them and keeps its own chains by the same hash the server uses for metrics.
    """
    if not settings.partitioned:
        return True
    chain = subjects.chain_of(subject)
    try:
        return chain is not None and subjects.partition_of(chain, settings.partitions) == settings.partition
    except subjects.InvalidTokenError:
        return settings.partition == 0  # someone must dead-letter it; partition 0 does


def judge_sample(
    sample: MetricSample, deps: Deps, *, settings: DetectorSettings, seq: Callable[[], int]
) -> list[Outcome]:
    """What one sample decides; one a previous instance judged (``seq``, see ``Replay``) only teaches."""
    warmup = deps.replay.covers(seq)
    return logic.evaluate_sample(deps.state, sample, settings=settings, scorer=deps.scorer, warmup=warmup)


def judge_logs(batch: LogBatch, deps: Deps, *, settings: DetectorSettings) -> list[Outcome]:
    return logic.evaluate_logs(deps.state, batch, settings=settings)


async def flush(outcomes: list[Outcome], deps: Deps, *, publisher: Publisher) -> None:
    """Publish a batch's outcomes concurrently: one ack round trip per batch, not per event.

    The publishes are started in order, so each request leaves in order; what fails stays in
    the outbox for the next batch and the error makes the pull loop nak this one.
    """
    # Taken out before awaiting: the other pull loop's flush must not publish them a second time.
    pending = [*deps.outbox, *outcomes]
    deps.outbox.clear()
    if not pending:
        return
    results = await asyncio.gather(*(_publish(event, publisher) for event in pending), return_exceptions=True)
    deps.outbox.extend(e for e, r in zip(pending, results, strict=True) if isinstance(r, BaseException))
    for result in results:
        if isinstance(result, BaseException):
            raise result


async def _publish(event: Outcome, publisher: Publisher) -> None:
    await publisher.anomaly(event)
    kind = "detected" if isinstance(event, AnomalyDetected) else "resolved"
    ANOMALIES.labels(event.chain_id, kind, event.rule).inc()

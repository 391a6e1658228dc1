"""The collector's use cases on fakes: a poll published as one batch, a chain polled on its cadence."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from sentinai.collector.poller import Poll
from sentinai.collector.service import publish_poll, run_chain
from sentinai.common.chains import ChainConfig
from sentinai.common.events import Event, LogBatch, MetricSample
from sentinai.devkit.waits import eventually


@dataclass
class FakePoller:
    """A chain whose every poll gives one op-geth sample, numbered by the poll."""

    chain: ChainConfig = field(default_factory=lambda: ChainConfig(id="c1"))
    polls: int = 0

    async def poll(self) -> Poll:
        self.polls += 1
        sample = MetricSample(
            chain_id=self.chain.id, component="op-geth", source="rpc", metrics={"blockHeight": self.polls}
        )
        return Poll(samples=(sample,))


@dataclass
class FakePublisher:
    """The Publisher port: keeps what it was given; ``refuse`` names subjects whose publish fails."""

    refuse: set[str] = field(default_factory=set)
    batches: list[list[tuple[str, Event]]] = field(default_factory=list)

    async def publish_all(self, items: Sequence[tuple[str, Event]]) -> list[Exception | None]:
        self.batches.append(list(items))
        return [ConnectionError("nats: no responders") if s in self.refuse else None for s, _ in items]


async def test_a_poll_goes_out_as_one_batch_each_event_under_its_subject() -> None:
    geth = MetricSample(chain_id="c1", component="op-geth", source="rpc", metrics={"blockHeight": 1.0})
    node = MetricSample(chain_id="c1", component="op-node", source="k8s", target_up=False, error="x")
    logs = LogBatch(chain_id="c1", component="op-node", pod="op-node-0", lines=("lvl=info msg=hi",))
    publisher = FakePublisher()
    assert await publish_poll(publisher, Poll(samples=(geth, node), logs=(logs,))) == 0
    assert publisher.batches == [
        [("metrics.raw.c1.op-geth", geth), ("metrics.raw.c1.op-node", node), ("logs.raw.c1.op-node", logs)]
    ]


async def test_a_failed_publish_is_counted_and_logged_alone(caplog: pytest.LogCaptureFixture) -> None:
    geth = MetricSample(chain_id="c1", component="op-geth", source="rpc", metrics={"blockHeight": 1.0})
    node = MetricSample(chain_id="c1", component="op-node", source="rpc", metrics={"safeLag": 0.0})
    publisher = FakePublisher(refuse={"metrics.raw.c1.op-node"})
    assert await publish_poll(publisher, Poll(samples=(geth, node))) == 1
    [record] = [r for r in caplog.records if r.getMessage() == "publish failed"]
    assert getattr(record, "subject", None) == "metrics.raw.c1.op-node"
    assert "ConnectionError: nats: no responders" in getattr(record, "error", "")


async def test_a_chain_keeps_polling_on_its_cadence_while_publishes_fail() -> None:
    poller, publisher = FakePoller(), FakePublisher(refuse={"metrics.raw.c1.op-geth"})
    loop = asyncio.create_task(run_chain(poller, publisher, interval_s=0.01))
    try:
        await eventually(lambda: len(publisher.batches) >= 3, timeout_s=2.0, what="three polls published")
        assert not loop.done()
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
    events = [event for batch in publisher.batches for _, event in batch]
    heights = [e.metrics["blockHeight"] for e in events if isinstance(e, MetricSample)]
    assert heights == list(range(1, len(heights) + 1))  # one poll at a time, none skipped

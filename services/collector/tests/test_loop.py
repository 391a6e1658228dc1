"""Publishing a poll: every sample and log batch goes to its subject; one failed publish stops no other."""

from __future__ import annotations

from sentinai.collector.loop import publish_poll
from sentinai.collector.poller import Poll
from sentinai.common.events import Event, LogBatch, MetricSample


class FlakyPublisher:
    """The Publisher port; refuses one subject the way a NATS timeout would."""

    def __init__(self, refuse: str) -> None:
        self.refuse = refuse
        self.published: list[tuple[str, Event]] = []

    async def publish(self, subject: str, event: Event) -> None:
        if subject == self.refuse:
            raise TimeoutError("nats: timeout")
        self.published.append((subject, event))


async def test_each_event_goes_to_its_subject_and_failures_are_counted() -> None:
    geth = MetricSample(chain_id="c1", component="op-geth", source="rpc", metrics={"blockHeight": 1.0})
    node = MetricSample(chain_id="c1", component="op-node", source="k8s", target_up=False, error="x")
    logs = LogBatch(chain_id="c1", component="op-node", pod="op-node-0", lines=("t=… lvl=info msg=hi",))
    publisher = FlakyPublisher(refuse="metrics.raw.c1.op-node")

    failed = await publish_poll(publisher, Poll(samples=(geth, node), logs=(logs,)))

    assert failed == 1
    assert publisher.published == [("metrics.raw.c1.op-geth", geth), ("logs.raw.c1.op-node", logs)]

"""Publishing a poll on a real nats-server: every event is stored once in JetStream, under its own
subject; a publish that fails fails alone and is counted."""

from __future__ import annotations

import nats
import pytest
from faststream.nats import NatsBroker
from nats.js.errors import NoStreamResponseError

from sentinai.collector.bus import BrokerPublisher
from sentinai.collector.poller import Poll
from sentinai.collector.service import publish_poll
from sentinai.common import streams
from sentinai.common.events import LogBatch, MetricSample, decode
from sentinai.devkit.natsserver import EmbeddedNats

pytestmark = pytest.mark.integration


async def test_a_poll_is_stored_once_per_event_and_a_failed_publish_fails_alone(
    nats_server: EmbeddedNats,
) -> None:
    broker = NatsBroker(nats_server.url)
    await broker.connect()
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        await streams.ensure_streams(js, (streams.TELEMETRY,))
        publisher = BrokerPublisher(broker, service="collector", ack_wait_s=2.0)
        geth = MetricSample(chain_id="c1", component="op-geth", source="rpc", metrics={"blockHeight": 1.0})
        node = MetricSample(chain_id="c1", component="op-node", source="k8s", target_up=False, error="x")
        logs = LogBatch(chain_id="c1", component="op-node", pod="op-node-0", lines=("t=… lvl=info msg=hi",))

        assert await publish_poll(publisher, Poll(samples=(geth, node), logs=(logs,))) == 0
        # The same events again (a retried poll): JetStream's dedup window keeps one copy each.
        assert await publish_poll(publisher, Poll(samples=(geth, node), logs=(logs,))) == 0
        stray = MetricSample(chain_id="c2", component="op-geth", source="rpc", metrics={"blockHeight": 2.0})
        lost = MetricSample(chain_id="c2", component="op-geth", source="rpc", metrics={"blockHeight": 3.0})
        after = MetricSample(chain_id="c2", component="op-node", source="rpc", metrics={"safeLag": 0.0})
        outcomes = await publisher.publish_all(
            [("metrics.raw.c2.op-geth", stray), ("nowhere.c2", lost), ("metrics.raw.c2.op-node", after)]
        )

        assert outcomes[0] is None and outcomes[2] is None
        assert isinstance(outcomes[1], NoStreamResponseError)  # no stream takes that subject
        info = await js.stream_info(streams.TELEMETRY.name)
        assert info.state.messages == 5
        sub = await js.subscribe(">", stream=streams.TELEMETRY.name, ordered_consumer=True)
        stored = [await sub.next_msg(timeout=5.0) for _ in range(5)]
        assert [m.subject for m in stored] == [
            "metrics.raw.c1.op-geth",
            "metrics.raw.c1.op-node",
            "logs.raw.c1.op-node",
            "metrics.raw.c2.op-geth",
            "metrics.raw.c2.op-node",
        ]
        assert decode(MetricSample, stored[0].data) == geth
        assert decode(LogBatch, stored[2].data) == logs
        assert [m.headers for m in stored] == [
            {"Nats-Msg-Id": e.event_id} for e in (geth, node, logs, stray, after)
        ]
    finally:
        await nc.close()
        await broker.stop()

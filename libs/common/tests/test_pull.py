"""The batched pull loops on a real nats-server: every message once, failures redelivered, a dropped
consumer recreated where its reader left off."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

import nats
import pytest
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from sentinai.common import pull
from sentinai.devkit.natsserver import EmbeddedNats

STREAM = "S"


@pytest.fixture
async def js(nats_server: EmbeddedNats) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(nats_server.url)
    context = nc.jetstream()
    await context.add_stream(name=STREAM, subjects=["s.>"])
    try:
        yield context
    finally:
        await nc.close()


async def publish(js: JetStreamContext, first: int, count: int) -> None:
    for i in range(first, first + count):
        await js.publish(f"s.{i % 3}", str(i).encode())


class Seen(list[int]):
    """What a handler was given, with a wait for how many distinct values arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Event()

    def add(self, msgs: Sequence[Msg]) -> None:
        self.extend(int(m.data) for m in msgs)
        self.changed.set()

    async def reach(self, count: int, *, timeout_s: float = 10.0) -> None:
        async def wait() -> None:
            while len(set(self)) < count:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(wait(), timeout=timeout_s)


@contextlib.asynccontextmanager
async def running(js: JetStreamContext, loop: pull.Loop) -> AsyncIterator[pull.Pumps]:
    pumps = pull.Pumps("test", batch_size=20, timeout_s=0.05)
    pumps.start(js, [loop])
    try:
        yield pumps
    finally:
        await pumps.stop(timeout_s=5.0)


async def test_every_message_is_handed_over_once_in_order_and_acknowledged(js: JetStreamContext) -> None:
    seen = Seen()
    batches: list[int] = []

    async def handle(msgs: Sequence[Msg]) -> None:
        batches.append(len(msgs))
        seen.add(msgs)

    created = await pull.ensure_consumer(js, STREAM, ConsumerConfig(durable_name="d", filter_subject="s.>"))
    assert created and not await pull.ensure_consumer(js, STREAM, ConsumerConfig(durable_name="d"))
    await publish(js, 0, 100)
    async with running(js, pull.Loop(STREAM, "d", handle)) as pumps:
        await seen.reach(100)
        assert pumps.running()
        await publish(js, 100, 5)
        await seen.reach(105)
    assert seen == list(range(105))
    assert max(batches) == 20 and len(batches) < 105  # batched, never more than asked for
    info = await js.consumer_info(STREAM, "d")
    assert (info.num_pending, info.num_ack_pending, info.ack_floor.stream_seq) == (0, 0, 105)


async def test_a_failed_batch_is_redelivered_and_nothing_is_lost(js: JetStreamContext) -> None:
    seen = Seen()
    failures = [1]

    async def handle(msgs: Sequence[Msg]) -> None:
        if failures:
            failures.pop()
            raise RuntimeError("the bus was unreachable")
        seen.add(msgs)

    await pull.ensure_consumer(js, STREAM, ConsumerConfig(durable_name="d", filter_subject="s.>"))
    await publish(js, 0, 30)
    async with running(js, pull.Loop(STREAM, "d", handle)):
        await seen.reach(30)
    assert sorted(seen) == list(range(30))
    assert pull.BATCH_FAILURES.labels("test", "d")._value.get() >= 1


async def test_a_dropped_consumer_is_recreated_after_the_last_message_seen(js: JetStreamContext) -> None:
    seen = Seen()
    last = [0]

    async def handle(msgs: Sequence[Msg]) -> None:
        seen.add(msgs)
        last[0] = msgs[-1].metadata.sequence.stream

    def config() -> ConsumerConfig:
        start = (
            {"deliver_policy": DeliverPolicy.BY_START_SEQUENCE, "opt_start_seq": last[0] + 1}
            if last[0]
            else {"deliver_policy": DeliverPolicy.ALL}
        )
        return ConsumerConfig(name="mine", filter_subject="s.>", ack_policy=AckPolicy.NONE, **start)

    await js.add_consumer(STREAM, config=config())
    await publish(js, 0, 40)
    async with running(js, pull.Loop(STREAM, "mine", handle, acks=False, recreate=config)):
        await seen.reach(40)
        await js.delete_consumer(STREAM, "mine")  # the server dropped it (inactivity, lost state …)
        await publish(js, 40, 10)
        await seen.reach(50)
    assert seen == list(range(50))


async def test_an_idle_loop_is_never_handed_an_empty_batch(js: JetStreamContext) -> None:
    # nats-py's fetch can return an empty list when the server's timeout status of an earlier, expired
    # pull request arrives during the next one: an idle consumer sees that about ten times a second.
    batches: list[int] = []
    seen = Seen()

    async def handle(msgs: Sequence[Msg]) -> None:
        batches.append(len(msgs))
        seen.add(msgs)

    await pull.ensure_consumer(js, STREAM, ConsumerConfig(durable_name="idle", filter_subject="s.>"))
    failures = pull.BATCH_FAILURES.labels("test", "idle")
    before = failures._value.get()
    async with running(js, pull.Loop(STREAM, "idle", handle)):
        await asyncio.sleep(3.0)  # idle: every fetch times out
        await publish(js, 0, 3)
        await seen.reach(3)
    assert 0 not in batches and sum(batches) == 3
    assert failures._value.get() == before

"""The one consumer idiom and its error policy, on a real nats-server: what comes back, what is given up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from faststream.nats import NatsBroker
from nats.js.api import DeliverPolicy

from sentinai.common import consumer, streams, subjects
from sentinai.common.bus import DeadLetters, publish_event, start_broker
from sentinai.common.consumer import Permanent, Retry, RetryPolicy, settlement
from sentinai.common.events import DeadLetter, Event, decode
from sentinai.common.state import StateStoreError
from sentinai.devkit.natsserver import EmbeddedNats
from sentinai.devkit.spy import Spy
from sentinai.devkit.waits import eventually

FAST = RetryPolicy(first_delay_s=0.05, max_delay_s=0.2, max_deliveries=4)
SUBJECT = subjects.incident_resolved("c1")


class Ping(Event):
    n: int


@pytest.mark.parametrize(
    ("exc", "deliveries", "dead", "delay_s", "cause"),
    [
        pytest.param(ConnectionError("redis"), 1, False, 0.05, "outage", id="outage-first-retry-soon"),
        pytest.param(StateStoreError("kv"), 3, False, 0.2, "outage", id="outage-delay-grows-to-its-cap"),
        pytest.param(ValueError("bug"), 2, False, 0.1, "error", id="unknown-error-retried"),
        pytest.param(ValueError("bug"), 4, True, 0.0, "gave_up", id="last-delivery-gives-up"),
        pytest.param(Permanent("no such chain"), 1, True, 0.0, "permanent", id="permanent-at-once"),
        pytest.param(Retry("busy", after_s=5.0), 99, False, 5.0, "retry", id="retry-never-gives-up"),
    ],
)
def test_the_policy_decides_by_the_failure_and_the_delivery_count(
    exc: BaseException, deliveries: int, dead: bool, delay_s: float, cause: str
) -> None:
    settled = settlement(exc, deliveries=deliveries, policy=FAST)
    assert (settled.dead_letter, settled.delay_s, settled.cause) == (dead, pytest.approx(delay_s), cause)
    if cause == "gave_up":
        assert settled.reason == "gave up after 4 deliveries: ValueError: bug"


def test_the_default_policy_rides_out_a_long_outage_with_bounded_waits() -> None:
    policy = consumer.DEFAULT_POLICY
    waits = [policy.delay_s(n) for n in range(1, policy.max_deliveries)]
    assert waits[:4] == [1.0, 2.0, 4.0, 8.0] and max(waits) == policy.max_delay_s
    assert sum(waits) > 30 * 60  # half an hour of outage before anything is dead-lettered


Handle = Callable[[Ping], Awaitable[None]]


@pytest.fixture
async def wire(nats_server: EmbeddedNats) -> AsyncIterator[Callable[[Handle], Awaitable[Spy]]]:
    brokers: list[NatsBroker] = []

    async def start(handle: Handle) -> Spy:
        broker = NatsBroker(nats_server.url)
        dead = DeadLetters(broker, service="test")
        consumer.durable_consumer(
            broker,
            dead,
            service="test",
            name="on_ping",
            subject=SUBJECT,
            stream=streams.EVENTS,
            durable="test-pings",
            event_type=Ping,
            handle=handle,
            policy=FAST,
        )
        letters = Spy().attach(broker, subjects.dead_letter("test"), streams.DEAD_LETTER)
        brokers.append(broker)
        await start_broker(broker)
        return letters

    yield start
    for broker in brokers:
        await broker.stop()


async def publish(broker_url: str, body: bytes | Ping) -> None:
    broker = NatsBroker(broker_url)
    await broker.connect()
    try:
        if isinstance(body, Ping):
            await publish_event(broker, SUBJECT, body, stream=streams.EVENTS)
        else:
            await broker.publish(body, SUBJECT, stream=streams.EVENTS.name, timeout=5.0)
    finally:
        await broker.stop()


async def test_an_outage_is_ridden_out_and_the_message_handled_once(
    nats_server: EmbeddedNats, wire: Callable[[Handle], Awaitable[Spy]]
) -> None:
    calls: list[int] = []
    done: list[int] = []

    async def handle(ping: Ping) -> None:
        calls.append(ping.n)
        if len(calls) < 3:
            raise ConnectionError("redis is restarting")
        done.append(ping.n)

    letters = await wire(handle)
    await publish(nats_server.url, Ping(chain_id="c1", n=7))
    await eventually(lambda: done, timeout_s=10, what="the ping handled after two outages")
    await asyncio.sleep(0.5)  # long enough for a stray redelivery (0.2 s) to show
    assert calls == [7, 7, 7] and done == [7] and not letters.bodies


async def test_a_message_that_keeps_failing_is_dead_lettered_with_the_error_and_not_seen_again(
    nats_server: EmbeddedNats, wire: Callable[[Handle], Awaitable[Spy]]
) -> None:
    calls: list[int] = []

    async def handle(ping: Ping) -> None:
        calls.append(ping.n)
        raise KeyError("a bug")

    letters = await wire(handle)
    await publish(nats_server.url, Ping(chain_id="c1", n=1))
    await eventually(lambda: letters.bodies, timeout_s=10, what="the dead letter")
    letter = decode(DeadLetter, letters.bodies[0])
    assert letter.reason == "gave up after 4 deliveries: KeyError: 'a bug'"
    assert letter.subject == SUBJECT and '"n":1' in letter.payload
    await asyncio.sleep(0.5)
    assert calls == [1, 1, 1, 1]


async def test_a_permanent_failure_and_a_malformed_body_are_dead_lettered_at_once(
    nats_server: EmbeddedNats, wire: Callable[[Handle], Awaitable[Spy]]
) -> None:
    calls: list[int] = []

    async def handle(ping: Ping) -> None:
        calls.append(ping.n)
        raise Permanent(f"ping {ping.n} names no known action")

    letters = await wire(handle)
    await publish(nats_server.url, Ping(chain_id="c1", n=2))
    await publish(nats_server.url, b"{not json")
    await eventually(lambda: len(letters.bodies) == 2, timeout_s=10, what="two dead letters")
    reasons = sorted(decode(DeadLetter, body).reason for body in letters.bodies)
    assert reasons[1] == "ping 2 names no known action"
    assert "Ping" in reasons[0]  # the decode error names the expected event
    assert calls == [2]


async def test_retry_asks_again_later_beyond_the_delivery_bound(
    nats_server: EmbeddedNats, wire: Callable[[Handle], Awaitable[Spy]]
) -> None:
    calls: list[int] = []

    async def handle(ping: Ping) -> None:
        calls.append(ping.n)
        if len(calls) <= 5:  # more than FAST.max_deliveries
            raise Retry("another replica holds it", after_s=0.05)

    letters = await wire(handle)
    await publish(nats_server.url, Ping(chain_id="c1", n=3))
    await eventually(lambda: len(calls) == 6, timeout_s=10, what="the sixth delivery")
    await asyncio.sleep(0.3)
    assert len(calls) == 6 and not letters.bodies


async def test_an_ephemeral_consumer_hands_over_the_exact_bytes_and_acks_unread_what_it_skips(
    nats_server: EmbeddedNats,
) -> None:
    """A read model's own consumer: every replica sees everything; subjects it does not read are skipped."""
    got: list[consumer.Received[Ping]] = []
    brokers = [NatsBroker(nats_server.url) for _ in range(2)]
    letters = Spy()
    for broker in brokers:

        async def handle(received: consumer.Received[Ping]) -> None:
            got.append(received)

        consumer.durable_consumer(
            broker,
            DeadLetters(broker, service="test"),
            service="test",
            name="on_any_ping",
            subject=subjects.INCIDENT_RESOLVED_ALL,
            stream=streams.EVENTS,
            durable=None,
            event_type=lambda subject: Ping if subject == SUBJECT else None,
            handle_received=handle,
            policy=FAST,
        )
        letters.attach(broker, subjects.dead_letter("test"), streams.DEAD_LETTER)
    try:
        for broker in brokers:
            await start_broker(broker)
        body = b'{"chainId": "c1", "n": 5, "fromANewerSchema": true}'
        await publish(nats_server.url, body)
        await brokers[0].publish(
            b"{not json", subjects.incident_resolved("c2"), stream=streams.EVENTS.name, timeout=5.0
        )
        await eventually(lambda: len(got) == 2, timeout_s=10, what="the ping at both replicas")
        js = brokers[0].config.connection_state.stream

        async def settled() -> bool:
            infos = await js.consumers_info(streams.EVENTS.name)
            return len(infos) == 2 and all(i.num_ack_pending == 0 and i.num_pending == 0 for i in infos)

        await eventually(settled, timeout_s=10, what="both messages acknowledged at both replicas")
        infos = await js.consumers_info(streams.EVENTS.name)
    finally:
        for broker in brokers:
            await broker.stop()
    assert [(r.subject, r.body, r.event.n) for r in got] == [(SUBJECT, body, 5)] * 2
    assert all(info.config.durable_name is None for info in infos)
    assert not letters.bodies  # the skipped subject was never decoded


def test_a_consumer_takes_one_handler_and_a_queue_group_needs_a_durable() -> None:
    broker = NatsBroker()
    dead = DeadLetters(broker, service="test")

    async def handle(ping: Ping) -> None: ...

    def wire(*, durable: str | None, with_handler: bool, queue: bool = False) -> None:
        consumer.durable_consumer(
            broker,
            dead,
            service="test",
            name="on_ping",
            subject=SUBJECT,
            stream=streams.EVENTS,
            durable=durable,
            event_type=Ping,
            handle=handle if with_handler else None,
            queue=queue,
        )

    with pytest.raises(TypeError, match="exactly one"):
        wire(durable="d", with_handler=False)
    with pytest.raises(ValueError, match="queue group"):
        wire(durable=None, with_handler=True, queue=True)


async def test_queue_replicas_starting_together_share_one_consumer_twenty_times_in_twenty(
    nats_server: EmbeddedNats,
) -> None:
    """Two replicas of a queue consumer created in the same instant (a rollout, a restart of both).

    Before the consumer had a deliver subject of its own name, each replica created it with a fresh
    inbox and the slower one failed: ``BadRequestError 10013 consumer name already in use``.
    """
    for attempt in range(20):
        await _replicas_start_together(nats_server.url, attempt=attempt)


async def _replicas_start_together(url: str, *, attempt: int) -> None:
    handled: list[int] = []

    async def handle(ping: Ping) -> None:
        handled.append(ping.n)

    brokers = [NatsBroker(url) for _ in range(2)]
    for broker in brokers:
        consumer.durable_consumer(
            broker,
            DeadLetters(broker, service="test"),
            service="test",
            name="on_ping",
            subject=SUBJECT,
            stream=streams.EVENTS,
            durable=f"test-queue-{attempt}",
            event_type=Ping,
            handle=handle,
            deliver=DeliverPolicy.NEW,
            queue=True,
            max_workers=2,
        )
    try:
        await asyncio.gather(*(start_broker(broker) for broker in brokers))
        await publish(url, Ping(chain_id="c1", n=attempt))
        await eventually(lambda: handled, timeout_s=10, what=f"the ping of attempt {attempt}")
        await asyncio.sleep(0.1)  # a second delivery, to the other replica, would show by now
        assert handled == [attempt]
    finally:
        for broker in brokers:
            await broker.stop()

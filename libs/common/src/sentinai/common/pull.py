"""Batched JetStream pull loops: how the services read telemetry at its full rate.

Telemetry is most of the bus (8 samples per chain per second). faststream's pull subscribers are
used with one message per fetch — 0.7.8 keeps fetching until a batch is full, and nats-py raises a
bare ``asyncio.TimeoutError`` on a nearly spent fetch deadline which faststream does not catch, so its
consume task restarts and drops the partial batch it holds (redelivered only after ``ack_wait``) —
and one message per fetch costs a request round trip and a middleware pass each: 0.5–0.8 ms of CPU
per sample, a core at ~1,500 samples/s. These loops hand a handler whatever one fetch returned
(latency: one fetch timeout), acknowledge the batch after it, and nak it for redelivery when the
handler raises — the one error policy of ``common.consumer``, applied to each message of the batch
(redelivered with a growing delay; dead-lettered once it has failed too often). Publishing, dead
letters and the broker's lifecycle stay with faststream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig
from nats.js.errors import NotFoundError
from prometheus_client import Counter

from sentinai.common import consumer, telemetry
from sentinai.common.bus import MESSAGES_HANDLED, DeadLetters
from sentinai.common.events import E

log = logging.getLogger(__name__)

BatchHandler = Callable[[Sequence[Msg]], Awaitable[None]]

# A batch is handed over when full or after the timeout, whichever comes first; the timeout is also
# what a sample waits at most, and how often an idle loop asks the server (twenty times a second).
BATCH_SIZE = 500
BATCH_TIMEOUT_S = 0.05

BATCH_FAILURES = Counter(
    "sentinai_batch_failures_total",
    "Batches a pull loop's handler failed on; naked for redelivery",
    ["service", "consumer"],
)


def folding(
    dead: DeadLetters,
    *,
    service: str,
    kind: str,
    event_type: type[E],
    add: Callable[[E], object],
    after: Callable[[], Awaitable[None]] | None = None,
) -> BatchHandler:
    """A loop's handler that decodes each message (malformed → dead letter) and hands it to ``add``.

    ``after`` runs once the whole batch is folded in (a failure there naks the batch for redelivery).
    """

    @telemetry.timed(service, kind)
    async def handle(msgs: Sequence[Msg]) -> None:
        for msg in msgs:
            event = await dead.decode(event_type, subject=msg.subject, body=msg.data)
            if event is not None:
                add(event)
        if after is not None:
            await after()
        MESSAGES_HANDLED.labels(service, kind).inc(len(msgs))

    return handle


@dataclass(frozen=True)
class Loop:
    """One pull loop: a consumer of ``stream`` and what handles its batches.

    ``acks``: False for a consumer created with ``AckPolicy.NONE`` (a read model that a restart
    rebuilds anyway): nothing is acknowledged or redelivered. ``recreate``: for a consumer the server
    may drop (a replica's own, with an inactivity threshold): the config to create it again with,
    asked for when a fetch fails and the consumer is gone.
    """

    stream: str
    durable: str
    handle: BatchHandler
    acks: bool = True
    recreate: Callable[[], ConsumerConfig] | None = None
    # Where a message that failed ``policy.max_deliveries`` times goes (without one: terminated).
    dead: DeadLetters | None = None
    policy: consumer.RetryPolicy = consumer.DEFAULT_POLICY


async def ensure_consumer(js: JetStreamContext, stream: str, config: ConsumerConfig) -> bool:
    """Create the durable ``config.durable_name`` unless it exists (a restart resumes it).

    Returns whether it was created. The consumer is a pull consumer with explicit acks.
    """
    name = config.durable_name
    if name is None:
        raise ValueError("a pull loop's consumer needs a durable name")
    try:
        await js.consumer_info(stream, name)
    except NotFoundError:
        await js.add_consumer(stream, config=replace(config, name=name, ack_policy=AckPolicy.EXPLICIT))
        return True
    return False


async def recreate_consumer(js: JetStreamContext, stream: str, config: ConsumerConfig) -> None:
    """Drop the durable if it exists and create it afresh (it starts where ``config`` says)."""
    if config.durable_name is None:
        raise ValueError("a pull loop's consumer needs a durable name")
    with contextlib.suppress(NotFoundError):
        await js.delete_consumer(stream, config.durable_name)
    await ensure_consumer(js, stream, config)


async def pump(
    js: JetStreamContext,
    loop: Loop,
    *,
    service: str,
    batch_size: int,
    timeout_s: float,
    stopping: asyncio.Event,
) -> None:
    """Fetch a batch, hand it over, ack it; on a failed batch nak it so JetStream redelivers it."""
    sub = await js.pull_subscribe_bind(durable=loop.durable, stream=loop.stream)
    try:
        while not stopping.is_set():
            try:
                msgs = await sub.fetch(batch_size, timeout=timeout_s)
            except TimeoutError:  # nothing arrived within one fetch timeout (also nats' own subclass)
                continue
            except Exception as exc:
                # Reconnecting, consumer gone for a moment …: the client recovers; we must not spin.
                log.warning("fetch failed, retrying", extra={"durable": loop.durable, "error": repr(exc)})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), timeout=1.0)
                if loop.recreate is not None:
                    with contextlib.suppress(Exception):
                        await _restore(js, loop, loop.recreate)
                continue
            if not msgs:
                # nats-py returns an empty batch when an earlier pull request's timeout status
                # arrives during this one: nothing arrived, as for a timeout.
                continue
            try:
                await loop.handle(msgs)
            except Exception as exc:
                BATCH_FAILURES.labels(service, loop.durable).inc()
                if not loop.acks:
                    log.exception("batch failed, not redelivered", extra={"durable": loop.durable})
                    continue
                log.exception(
                    "batch failed, handed back by the retry policy", extra={"durable": loop.durable}
                )
                for msg in msgs:
                    settled = consumer.settlement(exc, deliveries=consumer.delivered(msg), policy=loop.policy)
                    with contextlib.suppress(Exception):
                        await consumer.apply(msg, settled, dead=loop.dead, service=service, kind=loop.durable)
                continue
            if loop.acks:
                for msg in msgs:
                    await msg.ack()
    finally:
        # An open pull subscription would hold the connection's drain at shutdown for its full timeout.
        with contextlib.suppress(Exception):
            await sub.unsubscribe()


async def _restore(js: JetStreamContext, loop: Loop, recreate: Callable[[], ConsumerConfig]) -> None:
    """Create the loop's consumer again if the server no longer has it."""
    try:
        await js.consumer_info(loop.stream, loop.durable)
    except NotFoundError:
        log.warning("consumer gone, creating it again", extra={"durable": loop.durable})
        await js.add_consumer(loop.stream, config=recreate())


@dataclass
class Pumps:
    """The pull loops of one process: started after the broker connects, stopped before it closes."""

    service: str
    batch_size: int = BATCH_SIZE
    timeout_s: float = BATCH_TIMEOUT_S
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self, js: JetStreamContext, loops: Sequence[Loop]) -> None:
        for loop in loops:
            task = asyncio.create_task(
                pump(
                    js,
                    loop,
                    service=self.service,
                    batch_size=self.batch_size,
                    timeout_s=self.timeout_s,
                    stopping=self.stopping,
                )
            )
            self.tasks.append(task)

    def running(self) -> bool:
        return bool(self.tasks) and not any(task.done() for task in self.tasks)

    async def stop(self, *, timeout_s: float = 10.0) -> None:
        """Let each loop finish and ack the batch in hand, then return."""
        self.stopping.set()
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=timeout_s)
        for task in self.tasks:
            task.cancel()

"""Wiring only: approved actions from a durable JetStream consumer to the executor, acked once recorded."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from faststream import AckPolicy
from faststream.nats import NatsBroker, NatsMessage
from nats.js.api import ConsumerConfig
from prometheus_client import Counter

from sentinai.common import jsonlog, streams, subjects
from sentinai.common.bus import MESSAGES_HANDLED, DeadLetters, publish_event
from sentinai.common.decisions import ActionApproved
from sentinai.common.events import Event
from sentinai.common.streams import StreamSpec
from sentinai.executor.runner import Busy, Executor
from sentinai.executor.settings import ExecutorSettings

SERVICE = "executor"
log = logging.getLogger(__name__)

FAILURES = Counter("sentinai_executor_failures_total", "Approved actions naked for redelivery", ["chain"])


class BusPublisher:
    """The executor's publisher port on a faststream broker (JetStream, acked, deduplicated by id)."""

    def __init__(self, broker: NatsBroker) -> None:
        self._broker = broker

    async def publish(self, subject: str, event: Event, *, stream: StreamSpec) -> None:
        await publish_event(self._broker, subject, event, stream=stream)


@dataclass
class Inflight:
    """Handlers running now; shutdown waits for them before the connection closes."""

    count: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.idle.set()

    @contextlib.asynccontextmanager
    async def track(self) -> AsyncIterator[None]:
        self.count += 1
        self.idle.clear()
        try:
            yield
        finally:
            self.count -= 1
            if self.count == 0:
                self.idle.set()


@contextlib.asynccontextmanager
async def _in_progress(msg: NatsMessage, *, every_s: float) -> AsyncIterator[None]:
    """A verification outlasts JetStream's ack wait; progress beats keep the message ours meanwhile."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(every_s)  # a heartbeat period, not a wait for a condition
            await msg.in_progress()

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def subscribe(
    broker: NatsBroker, executor: Executor, *, settings: ExecutorSettings, inflight: Inflight
) -> None:
    dead = DeadLetters(broker, service=SERVICE)

    @broker.subscriber(
        subjects.ACTION_APPROVED_ALL,
        stream=streams.ACTIONS.ref(),
        # The queue group is also the durable consumer's name (nats-py binds them): replicas share
        # it and each approval goes to one of them; the effect record stops any second delivery.
        queue=settings.durable,
        config=ConsumerConfig(ack_wait=settings.ack_wait_s),
        ack_policy=AckPolicy.MANUAL,
        max_workers=settings.max_concurrent,
    )
    async def on_approved(msg: NatsMessage) -> None:
        if executor.stopping.is_set():
            await msg.nack()  # shutting down: another replica (or our next start) takes it
            return
        approved = await dead.decode(ActionApproved, subject=msg.raw_message.subject, body=msg.body)
        if approved is not None:
            jsonlog.bind(chain=approved.chain_id, correlation_id=approved.correlation_id)
            try:
                async with inflight.track(), _in_progress(msg, every_s=settings.beat_every_s):
                    await executor.handle(approved)
            except Busy as exc:
                # Another executor holds the action and is alive: ask again once it may have finished.
                log.info("approved action busy elsewhere, asking again later", extra={"reason": str(exc)})
                await msg.nack(delay=settings.beat_every_s)
                return
            except Exception:
                FAILURES.labels(approved.chain_id).inc()
                log.exception("approved action failed, naked for redelivery")
                await msg.nack(delay=2.0)
                return
        MESSAGES_HANDLED.labels(SERVICE, "action_approved").inc()
        await msg.ack()

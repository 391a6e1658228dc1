"""Wiring only: approved actions from the replicas' shared durable consumer to ``Executor.handle``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from faststream.nats import NatsBroker
from nats.js.api import ConsumerConfig
from prometheus_client import Counter

from sentinai.common import streams, subjects
from sentinai.common.bus import DeadLetters
from sentinai.common.consumer import Retry, durable_consumer
from sentinai.common.decisions import ActionApproved
from sentinai.executor.effects import Busy
from sentinai.executor.service import Executor
from sentinai.executor.settings import ExecutorSettings

SERVICE = "executor"

# Per chain, for the dashboard's "executor failures" panel (the common redelivery counter has no chain).
FAILURES = Counter(
    "sentinai_executor_failures_total",
    "Approved actions whose handling failed (handed back by the retry policy)",
    ["chain"],
)


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


def subscribe(
    broker: NatsBroker, executor: Executor, *, settings: ExecutorSettings, inflight: Inflight
) -> None:
    async def on_approved(approved: ActionApproved) -> None:
        if executor.stopping.is_set():
            raise Retry("the executor is stopping: another replica (or our next start) takes it", after_s=0)
        try:
            async with inflight.track():
                await executor.handle(approved)
        except Busy as exc:
            # Another executor holds the action and is alive: ask again once it may have finished.
            raise Retry(str(exc), after_s=settings.beat_every_s) from exc
        except Exception:
            FAILURES.labels(approved.chain_id).inc()
            raise

    durable_consumer(
        broker,
        DeadLetters(broker, service=SERVICE),
        service=SERVICE,
        name="on_approved",
        subject=subjects.ACTION_APPROVED_ALL,
        stream=streams.ACTIONS,
        # Also the queue group (nats-py binds them): replicas share it and each approval goes to one
        # of them; the effect record stops any second delivery.
        durable=settings.durable,
        event_type=ActionApproved,
        handle=on_approved,
        config=ConsumerConfig(ack_wait=settings.ack_wait_s),
        queue=True,
        max_workers=settings.max_concurrent,
        # A verification outlasts JetStream's ack wait; progress beats keep the message ours meanwhile.
        keep_alive_s=settings.beat_every_s,
    )

"""The chain's health as the collector reports it: a core (ephemeral) subscription to its metrics.

The executor never asks the chain itself (only the collector talks to the chain); during a
verification it listens to ``metrics.raw.<chain>.*`` and keeps what arrives, in arrival order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from sentinai.common import subjects
from sentinai.common.events import MalformedEventError, MetricSample, decode

log = logging.getLogger(__name__)


@dataclass
class Samples:
    """Samples received since the watch began; ``arrived`` is set on each new one."""

    items: list[MetricSample] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, sample: MetricSample) -> None:
        self.items.append(sample)
        self.arrived.set()


class SampleFeed:
    """Opens a short-lived subscription per verification; ``connection`` gives the live client."""

    def __init__(self, connection: Callable[[], NatsClient]) -> None:
        self._connection = connection

    @contextlib.asynccontextmanager
    async def watch(self, chain_id: str) -> AsyncIterator[Samples]:
        samples = Samples()

        async def on_message(msg: Msg) -> None:
            try:
                samples.add(decode(MetricSample, msg.data))
            except MalformedEventError as exc:
                # The detector dead-letters telemetry; here a bad sample only means one fewer point.
                log.debug("ignored malformed sample", extra={"subject": msg.subject, "error": str(exc)})

        sub = await self._connection().subscribe(subjects.metrics_raw_chain(chain_id), cb=on_message)
        try:
            yield samples
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

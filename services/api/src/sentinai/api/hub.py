"""Fan-out of read-model changes to live clients (the SSE stream): bounded, never blocking the bus."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter, Gauge

SUBSCRIBERS = Gauge("sentinai_api_stream_clients", "Live /api/stream clients")
DROPPED = Counter("sentinai_api_stream_dropped_total", "Live updates dropped for a slow client")


@dataclass(frozen=True)
class Update:
    """One change a live client may want: its SSE event name, chain and JSON body."""

    kind: str
    chain_id: str
    data: dict[str, Any]

    def sse(self) -> str:
        return f"event: {self.kind}\ndata: {json.dumps(self.data, separators=(',', ':'))}\n\n"


@dataclass
class Subscription:
    chain_id: str | None
    queue: asyncio.Queue[Update]

    def offer(self, update: Update) -> None:
        if self.chain_id is not None and update.chain_id != self.chain_id:
            return
        # A client that cannot keep up loses its oldest updates, not the bus its throughput.
        if self.queue.full():
            self.queue.get_nowait()
            DROPPED.inc()
        self.queue.put_nowait(update)


@dataclass
class Hub:
    capacity: int = 1000
    _by_id: dict[int, Subscription] = field(default_factory=dict)

    def publish(self, update: Update) -> None:
        for sub in self._by_id.values():
            sub.offer(update)

    @asynccontextmanager
    async def subscribe(self, *, chain_id: str | None) -> AsyncIterator[Subscription]:
        sub = Subscription(chain_id, asyncio.Queue(maxsize=self.capacity))
        key = id(sub)
        self._by_id[key] = sub
        SUBSCRIBERS.inc()
        try:
            yield sub
        finally:
            del self._by_id[key]
            SUBSCRIBERS.dec()

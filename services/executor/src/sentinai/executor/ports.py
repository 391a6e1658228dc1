"""The executor's ports: what carrying out an action needs from the bus, a cluster, the feed and time.

Production adapters: ``common.bus.BrokerPublisher``, ``kube.KubeWriter``, ``feed.SampleFeed``, ``SystemClock``
(the state store is ``common.state.StateStore``). Tests hand in fakes of the same shapes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Protocol

from sentinai.common.events import Event, utcnow
from sentinai.common.streams import StreamSpec
from sentinai.executor.feed import Samples
from sentinai.executor.logic import Body, Workload


class Publisher(Protocol):
    async def publish(self, subject: str, event: Event, *, stream: StreamSpec) -> None: ...


class Cluster(Protocol):
    """One chain's workloads; every failure is a ``kube.KubeError`` (or ``logic.WorkloadShapeError``)."""

    async def find(self, component: str) -> Workload: ...

    async def read(self, kind: str, name: str) -> dict[str, Any]: ...

    async def patch(
        self, workload: Workload, body: Body, *, retried: list[str] | None = None
    ) -> dict[str, Any]: ...


class Feed(Protocol):
    """The chain's samples as they arrive, for as long as the watch is open."""

    def watch(self, chain_id: str) -> AbstractAsyncContextManager[Samples]: ...


class Clock(Protocol):
    """Time as the executor reads and spends it."""

    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None:
        """A period (a heartbeat), not a wait for a condition."""
        ...

    async def wait_any(self, events: Sequence[asyncio.Event], *, timeout_s: float) -> None:
        """Until one of ``events`` is set or ``timeout_s`` has passed, whichever comes first."""
        ...


class SystemClock:
    """The wall clock and the event loop's waits."""

    def now(self) -> datetime:
        return utcnow()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def wait_any(self, events: Sequence[asyncio.Event], *, timeout_s: float) -> None:
        waits = [asyncio.ensure_future(event.wait()) for event in events]
        try:
            await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()

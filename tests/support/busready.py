"""Waiting for a service's durable consumers before a short test goes on.

A planner stopped while faststream is still creating one of its durable consumers can leave that
consumer's fetch loop spinning on the closed connection; a test that starts and stops a planner
in a few hundred milliseconds therefore waits until every consumer exists.
"""

from __future__ import annotations

import asyncio
import time

import nats


async def consumers_created(url: str, expected: int, *, timeout_s: float = 15.0) -> None:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        deadline = time.monotonic() + timeout_s
        while sum(info.state.consumer_count for info in await js.streams_info()) < expected:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{expected} consumers not created within {timeout_s}s")
            await asyncio.sleep(0.05)
    finally:
        await nc.close()

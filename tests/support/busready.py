"""Waiting for a service's durable consumers before a short test goes on.

A planner stopped while faststream is still creating one of its durable consumers can leave that
consumer's fetch loop spinning on the closed connection; a test that starts and stops a planner
in a few hundred milliseconds therefore waits until every consumer exists.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest

from sentinai.devkit.waits import eventually


async def consumers_created(url: str, expected: int, *, timeout_s: float = 15.0) -> None:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()

        async def created() -> bool:
            return sum(info.state.consumer_count for info in await js.streams_info()) >= expected

        await eventually(created, timeout_s=timeout_s, what=f"{expected} consumers created")
    finally:
        await nc.close()


@contextlib.asynccontextmanager
async def running_planner(
    url: str, monkeypatch: pytest.MonkeyPatch, *, policy_file: Path | None = None
) -> AsyncIterator[None]:
    """The real planner in this process against ``url`` (no redis: its records in the NATS KV)."""
    from sentinai.common.net import free_port
    from sentinai.planner.main import build_app
    from sentinai.planner.settings import PlannerSettings

    monkeypatch.setenv("SENTINAI_NATS_URL", url)
    monkeypatch.delenv("SENTINAI_REDIS_URL", raising=False)
    app = build_app(PlannerSettings(http_port=free_port(), expiry_check_s=0.5, policy_file=policy_file))
    assert app.broker is not None
    async with app.start_lifespan_context():
        await consumers_created(url, len(app.broker.subscribers))
        yield

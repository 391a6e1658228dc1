"""The collector's use cases: publish one poll; poll one chain on its cadence, never dying of a bad poll."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Protocol

from sentinai.collector import logic
from sentinai.collector.poller import Poll
from sentinai.common import jsonlog, subjects
from sentinai.common.chains import ChainConfig
from sentinai.common.events import Event

log = logging.getLogger(__name__)


class Poller(Protocol):
    """One chain's targets (``poller.ChainPoller`` in production)."""

    @property
    def chain(self) -> ChainConfig: ...

    async def poll(self) -> Poll:
        """Every target polled once; a target's failure is a ``targetUp=False`` sample, never raised."""
        ...


class Publisher(Protocol):
    """Where samples and log batches go (JetStream in production)."""

    async def publish_all(self, items: Sequence[tuple[str, Event]]) -> list[Exception | None]:
        """Publish each (subject, event); return each one's failure, ``None`` where it was stored."""
        ...


async def publish_poll(publisher: Publisher, poll: Poll) -> int:
    """Publish every event of a poll together; return how many failed (each is logged)."""
    jobs: list[tuple[str, Event]] = [(subjects.metrics_raw(s.chain_id, s.component), s) for s in poll.samples]
    jobs += [(subjects.logs_raw(b.chain_id, b.component), b) for b in poll.logs]
    failed = 0
    for (subject, _), error in zip(jobs, await publisher.publish_all(jobs), strict=True):
        if error is not None:
            failed += 1
            log.warning(
                "publish failed", extra={"subject": subject, "error": f"{type(error).__name__}: {error}"}
            )
    return failed


async def run_chain(
    poller: Poller, publisher: Publisher, *, interval_s: float, offset_s: float = 0.0
) -> None:
    """Poll one chain forever (until cancelled), one poll at a time, on a fixed cadence that starts
    ``offset_s`` from now (see :func:`logic.start_offset`)."""
    jsonlog.bind(chain=poller.chain.id)
    await asyncio.sleep(offset_s)
    while True:
        started = time.monotonic()
        await publish_poll(publisher, await poller.poll())
        elapsed = time.monotonic() - started
        if elapsed > interval_s:
            log.warning(
                "poll overran its interval", extra={"elapsed_s": round(elapsed, 3), "interval_s": interval_s}
            )
        await asyncio.sleep(logic.next_delay(elapsed, interval_s))

"""The interval loop of every service: one round every ``interval_s`` until stopped.

A round that raises is logged (and counted by ``on_failure``) and the next round tries again: the
state store or the bus away for a moment must not end a timer for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass
class Ticker:
    """``await Ticker("expiry", 5.0, round).start()``; ``first_after_s`` delays the first round."""

    name: str
    interval_s: float
    round: Callable[[], Awaitable[object]]
    first_after_s: float = 0.0
    on_failure: Callable[[], None] | None = None
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=self.name)

    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    async def stop(self, *, timeout_s: float = 5.0) -> None:
        """Let the round in hand finish (within ``timeout_s``), then return."""
        self.stopping.set()
        if self.task is not None:
            await asyncio.wait([self.task], timeout=timeout_s)
            self.task.cancel()

    async def _run(self) -> None:
        wait_s = self.first_after_s
        while not await self._stopped_within(wait_s):
            try:
                await self.round()
            except Exception:
                if self.on_failure is not None:
                    self.on_failure()
                log.exception("round failed; the next one tries again", extra={"ticker": self.name})
            wait_s = self.interval_s

    async def _stopped_within(self, seconds: float) -> bool:
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), timeout=seconds)
        return self.stopping.is_set()

"""Verification of a change that is in: rollout ready, then the chain healthy again, within the window."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime

from sentinai.common.chains import ChainConfig
from sentinai.executor import logic
from sentinai.executor.attempt import Attempt
from sentinai.executor.feed import Samples
from sentinai.executor.ports import Cluster
from sentinai.executor.settings import ExecutorSettings


class Verifier:
    """Judges a change as things arrive; gives up at the window's end or when ``stopping`` is set."""

    def __init__(
        self, *, settings: ExecutorSettings, chains: Mapping[str, ChainConfig], stopping: asyncio.Event
    ) -> None:
        self.settings = settings
        self.chains = chains
        self.stopping = stopping

    async def verify(
        self,
        attempt: Attempt,
        cluster: Cluster,
        workload: logic.Workload,
        samples: Samples,
        *,
        timings: dict[str, float],
        began: float,
    ) -> logic.Judgement:
        """Rollout ready, then the chain healthy again, within the window; checked as things arrive."""
        approved, clock = attempt.approved, attempt.clock
        spec = approved.verify
        window = self.settings.verify_window_s or (
            spec.window_s if spec else self.settings.default_verify_window_s
        )
        block_time_s = self.chains[approved.chain_id].block_time_s
        deadline = clock.monotonic() + window
        ready_at: datetime | None = None
        ready_mono = 0.0
        judgement = logic.Judgement(False, "rollout not checked yet")
        while True:
            if self.stopping.is_set():
                return logic.Judgement(False, "verification abandoned: the executor is stopping")
            if ready_at is None:
                rollout = logic.rollout_from_json(await cluster.read(workload.kind, workload.name))
                if rollout.ready:
                    ready_at, ready_mono = clock.now(), clock.monotonic()
                    timings["rollout"] = attempt.ms_since(began)
                else:
                    judgement = logic.Judgement(
                        False,
                        f"rollout not ready: {rollout.ready_replicas}/{rollout.replicas} replicas ready, "
                        f"generation {rollout.observed_generation}/{rollout.generation} observed",
                    )
            if ready_at is not None:
                judgement = logic.judge(
                    samples.items,
                    spec,
                    since=ready_at,
                    block_time_s=block_time_s,
                    consecutive=self.settings.verify_consecutive,
                    stall_block_times=self.settings.stall_block_times,
                )
                if judgement.passed:
                    timings["verify"] = attempt.ms_since(ready_mono)
                    return judgement
            remaining = deadline - clock.monotonic()
            if remaining <= 0:
                if ready_at is not None:
                    timings["verify"] = attempt.ms_since(ready_mono)
                return logic.Judgement(False, f"not healthy within {window:g}s: {judgement.reason}")
            timeout = remaining if ready_at is not None else min(remaining, self.settings.verify_poll_s)
            await self._pause(attempt, samples, wait_s=timeout, for_sample=ready_at is not None)

    async def _pause(self, attempt: Attempt, samples: Samples, *, wait_s: float, for_sample: bool) -> None:
        """Until the next sample (when judging health), the next poll, or shutdown."""
        samples.arrived.clear()
        events = [self.stopping, samples.arrived] if for_sample else [self.stopping]
        await attempt.clock.wait_any(events, timeout_s=wait_s)

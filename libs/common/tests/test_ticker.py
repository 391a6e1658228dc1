"""The interval loop: rounds keep coming after a failure, the first can wait, stop ends it promptly."""

from __future__ import annotations

import asyncio

from sentinai.common.ticker import Ticker
from sentinai.devkit.waits import eventually


async def test_a_failed_round_is_counted_and_the_next_round_still_runs() -> None:
    rounds: list[int] = []
    failures: list[int] = []

    async def round_() -> None:
        rounds.append(len(rounds))
        if len(rounds) == 1:
            raise ConnectionError("redis is restarting")

    ticker = Ticker("t", 0.01, round_, on_failure=lambda: failures.append(1))
    await ticker.start()
    try:
        await eventually(lambda: len(rounds) >= 3, timeout_s=5, what="three rounds")
        assert ticker.running() and failures == [1]
    finally:
        await ticker.stop(timeout_s=1)
    assert not ticker.running()


async def test_the_first_round_waits_when_asked_and_stop_ends_the_wait() -> None:
    rounds: list[int] = []

    async def round_() -> None:
        rounds.append(1)

    ticker = Ticker("t", 60.0, round_, first_after_s=60.0)
    await ticker.start()
    await asyncio.sleep(0.05)
    started = asyncio.get_running_loop().time()
    await ticker.stop(timeout_s=5)
    assert rounds == [] and asyncio.get_running_loop().time() - started < 1.0

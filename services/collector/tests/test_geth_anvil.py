"""The poller against a real anvil node: op-geth's head, stall, tx pool backlog, hung node; and anvil
as L1: the batcher's and proposer's balances and the oracle's latest proposed block."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import pytest

from sentinai.collector.poller import ChainPoller
from sentinai.collector.service import run_chain
from sentinai.common import catalog
from sentinai.common.chains import ChainConfig
from sentinai.common.events import MetricSample
from sentinai.devkit.waits import eventually

if TYPE_CHECKING:
    from conftest import Anvil, RecordingPublisher

pytestmark = pytest.mark.integration
TIMEOUT_S = 1.0


@pytest.fixture
async def poller(anvil: Anvil) -> AsyncIterator[ChainPoller]:
    chain = ChainConfig(id="anvil", l2_rpc=anvil.url)  # type: ignore[arg-type]
    poller = ChainPoller.open(chain, timeout_s=TIMEOUT_S, log_tail_lines=50)
    try:
        yield poller
    finally:
        await poller.aclose()


async def geth_sample(poller: ChainPoller) -> MetricSample:
    (sample,) = (await poller.poll()).samples
    assert sample.component == "op-geth" and sample.source == "rpc" and sample.chain_id == "anvil"
    return sample


async def poll_until(
    poller: ChainPoller, done: Callable[[MetricSample], bool], *, timeout_s: float = 10.0
) -> MetricSample:
    """Poll every 0.2 s until ``done`` holds for a sample; fail after ``timeout_s``."""

    async def polled() -> MetricSample | None:
        sample = await geth_sample(poller)
        return sample if done(sample) else None

    return await eventually(polled, timeout_s=timeout_s, what="a sample meeting the condition", every_s=0.2)


def published(publisher: RecordingPublisher, done: Callable[[MetricSample], bool]) -> MetricSample | None:
    """The newest sample published so far that meets ``done``."""
    for _, event in reversed(publisher.events):
        if isinstance(event, MetricSample) and done(event):
            return event
    return None


async def test_head_advances_with_gas_fee_and_pool_metrics(poller: ChainPoller) -> None:
    first = await geth_sample(poller)
    assert first.target_up and first.error is None
    start = first.metrics[catalog.BLOCK_HEIGHT]
    later = await poll_until(poller, lambda s: s.metrics[catalog.BLOCK_HEIGHT] >= start + 2)
    assert later.target_up
    assert later.metrics[catalog.TX_POOL_COUNT] == 0.0
    assert later.metrics[catalog.TX_POOL_QUEUED] == 0.0
    assert 0.0 <= later.metrics[catalog.GAS_USED_RATIO] <= 1.0
    assert later.metrics[catalog.BASE_FEE_GWEI] > 0.0
    assert later.metrics[catalog.BLOCK_RATE] >= 0.0
    # anvil has no net_peerCount: the metric is left out, the target is still up.
    assert catalog.PEER_COUNT not in later.metrics
    with_interval = await poll_until(poller, lambda s: catalog.BLOCK_INTERVAL in s.metrics)
    assert 0.3 <= with_interval.metrics[catalog.BLOCK_INTERVAL] <= 3.0


async def test_stall_grows_seconds_since_head_while_height_stays_flat(
    anvil: Anvil, poller: ChainPoller
) -> None:
    await anvil.rpc("evm_setIntervalMining", [0])
    stalled = await geth_sample(poller)
    grown = await poll_until(poller, lambda s: s.metrics[catalog.SECONDS_SINCE_HEAD] >= 2.5)
    assert grown.metrics[catalog.BLOCK_HEIGHT] == stalled.metrics[catalog.BLOCK_HEIGHT]
    assert grown.metrics[catalog.BLOCK_RATE] == 0.0


async def test_tx_pool_backlog_is_counted(anvil: Anvil, poller: ChainPoller) -> None:
    await anvil.rpc("evm_setIntervalMining", [0])
    sender, receiver = (await anvil.rpc("eth_accounts"))[:2]
    for _ in range(7):
        tx = {"from": sender, "to": receiver, "value": "0x1", "gas": "0x5208"}
        await anvil.rpc("eth_sendTransaction", [tx])
    sample = await geth_sample(poller)
    assert sample.metrics[catalog.TX_POOL_COUNT] == 7.0
    assert sample.metrics[catalog.TX_POOL_QUEUED] == 0.0


async def test_hung_node_is_reported_down_in_time_and_the_loop_keeps_going(
    anvil: Anvil, poller: ChainPoller, publisher: RecordingPublisher
) -> None:
    loop = asyncio.create_task(run_chain(poller, publisher, interval_s=0.3))
    try:
        await eventually(
            lambda: published(publisher, lambda s: s.target_up), timeout_s=5.0, what="a sample up"
        )
        anvil.signal(signal.SIGSTOP)
        try:
            stopped_at = time.monotonic()
            down = await eventually(
                lambda: published(publisher, lambda s: not s.target_up),
                timeout_s=TIMEOUT_S + 3.0,
                what="a sample down",
            )
            assert time.monotonic() - stopped_at <= TIMEOUT_S + 1.0
            assert down.error is not None and f"eth_getBlockByNumber at {anvil.url}" in down.error
            assert down.metrics == {}
        finally:
            anvil.signal(signal.SIGCONT)
        before = len(publisher.events)
        back = await eventually(
            lambda: published(publisher, lambda s: s.target_up and s.occurred_at > down.occurred_at),
            timeout_s=5.0,
            what="a sample up again",
        )
        assert back.metrics[catalog.BLOCK_HEIGHT] > 0
        assert len(publisher.events) > before
        assert not loop.done()
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)


# Runtime code answering every call with one ABI-encoded uint256, 4_242_424, as the L2OutputOracle's
# latestBlockNumber() answers: PUSH3 0x40bbf8, PUSH1 0, MSTORE, PUSH1 32, PUSH1 0, RETURN.
ORACLE_CODE = "0x6240bbf860005260206000f3"


async def test_balances_and_the_proposed_height_are_read_on_a_real_l1_node(anvil: Anvil) -> None:
    funded = (await anvil.rpc("eth_accounts"))[0]  # anvil's dev accounts hold 10,000 ETH
    oracle = "0x" + "0c" * 20
    await anvil.rpc("anvil_setCode", [oracle, ORACLE_CODE])
    chain = ChainConfig.model_validate(
        {
            "id": "l1",
            "l1Rpc": anvil.url,
            "batcherAddress": funded,
            "proposerAddress": "0x" + "0b" * 20,  # never funded
            "l2OutputOracleAddress": oracle,
        }
    )
    poller = ChainPoller.open(chain, timeout_s=TIMEOUT_S, log_tail_lines=50)
    try:
        poll = await poller.poll()
    finally:
        await poller.aclose()
    # No RPC of their own is configured: the L1 series come in samples of their own.
    by_component = {s.component: s for s in poll.samples}
    assert set(by_component) == {"op-batcher", "op-proposer"}
    assert all(s.source == "rpc" and s.target_up for s in poll.samples)
    assert by_component["op-batcher"].metrics == {catalog.BALANCE: 10_000.0}
    assert by_component["op-proposer"].metrics == {catalog.BALANCE: 0.0, catalog.PROPOSED_L2: 4_242_424.0}


async def test_an_oracle_address_without_code_is_a_gap_not_a_failure(
    anvil: Anvil, caplog: pytest.LogCaptureFixture
) -> None:
    chain = ChainConfig.model_validate(
        {
            "id": "l1",
            "l1Rpc": anvil.url,
            "proposerAddress": "0x" + "0b" * 20,
            "l2OutputOracleAddress": "0x" + "0d" * 20,  # a typo: nothing deployed there
        }
    )
    poller = ChainPoller.open(chain, timeout_s=TIMEOUT_S, log_tail_lines=50)
    try:
        first, second = await poller.poll(), await poller.poll()
    finally:
        await poller.aclose()
    for poll in (first, second):
        (sample,) = poll.samples
        assert sample.component == "op-proposer" and sample.target_up
        assert sample.metrics == {catalog.BALANCE: 0.0}
    (gap,) = [r for r in caplog.records if r.getMessage() == "series unavailable"]
    assert getattr(gap, "metric", None) == catalog.PROPOSED_L2
    assert "is there a contract at that address?" in getattr(gap, "error", "")


async def test_poll_without_targets_publishes_nothing() -> None:
    poller = ChainPoller.open(ChainConfig(id="empty"), timeout_s=TIMEOUT_S, log_tail_lines=50)
    try:
        poll = await poller.poll()
    finally:
        await poller.aclose()
    assert poll.samples == () and poll.logs == ()

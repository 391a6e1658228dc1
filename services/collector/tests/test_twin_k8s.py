"""The full poller (RPC, L1 and Kubernetes: pods, pod metrics, stats summary, pod logs) against the
OP Stack twin."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from sentinai.collector.kube import KubeError, KubeReader, ThrottledRefresh
from sentinai.collector.poller import ChainPoller, Poll
from sentinai.common import catalog
from sentinai.common.chains import ChainConfig, load_chains
from sentinai.common.events import COMPONENTS
from sentinai.common.net import free_port, wait_for_port
from sentinai.devkit.waits import eventually_sync

pytestmark = pytest.mark.integration


@dataclass
class Twin:
    port: int
    chain: ChainConfig
    process: subprocess.Popen[bytes]

    async def _control(self, method: str, path: str, **kwargs: Any) -> Any:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.port}/control", timeout=10.0
        ) as client:
            answer = await client.request(method, path, **kwargs)
            answer.raise_for_status()
            return answer.json()

    async def step(self, n: int) -> dict[str, Any]:
        """Advance ``n`` ticks; the chain's state after them (the twin's own snapshot)."""
        state: dict[str, Any] = await self._control("POST", "/chains/twin/step", params={"n": n})
        return state

    async def inject(self, kind: str) -> None:
        await self._control("POST", "/chains/twin/incidents", json={"kind": kind})

    async def clear(self, kind: str) -> None:
        await self._control("DELETE", f"/chains/twin/incidents/{kind}")

    async def kube_fault(self, **fault: Any) -> None:
        await self._control("POST", "/kube/faults", json=fault)


@pytest.fixture
def twin(tmp_path: Path) -> Iterator[Twin]:
    port = free_port()
    chains = tmp_path / "chains.yaml"
    with open(tmp_path / "twin.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "sentinai.twin", "--port", str(port), "--chains", "twin", "--seed", "1",
             "--manual", "--kubeconfig-out", str(tmp_path / "kubeconfig"), "--chains-out", str(chains)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for_port(port, timeout_s=30.0)
        # The twin binds its port before it writes the files.
        eventually_sync(chains.exists, timeout_s=10.0, what="the twin's chains file", every_s=0.05)
        (chain,) = load_chains(chains)
        yield Twin(port=port, chain=chain, process=process)
    finally:
        process.send_signal(signal.SIGCONT)  # a test may leave it stopped
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture
async def poller(twin: Twin) -> AsyncIterator[ChainPoller]:
    poller = ChainPoller.open(twin.chain, timeout_s=5.0, log_tail_lines=50)
    try:
        yield poller
    finally:
        await poller.aclose()


def k8s_sample(poll: Poll, component: str) -> dict[str, float]:
    return up_sample(poll, component, "k8s")


def rpc_sample(poll: Poll, component: str) -> dict[str, float]:
    return up_sample(poll, component, "rpc")


def up_sample(poll: Poll, component: str, source: str) -> dict[str, float]:
    (sample,) = [s for s in poll.samples if s.source == source and s.component == component]
    assert sample.target_up, sample.error
    return sample.metrics


def log_lines(poll: Poll, component: str) -> tuple[str, ...]:
    return tuple(line for batch in poll.logs if batch.component == component for line in batch.lines)


async def test_every_target_of_the_twin_is_up(twin: Twin, poller: ChainPoller) -> None:
    await twin.step(3)
    poll = await poller.poll()
    assert {(s.component, s.source) for s in poll.samples} == {
        (component, source) for component in COMPONENTS for source in ("rpc", "k8s")
    }
    assert all(s.target_up for s in poll.samples), [s.error for s in poll.samples if not s.target_up]
    node = next(s for s in poll.samples if s.component == "op-node" and s.source == "rpc").metrics
    assert {catalog.UNSAFE_L2, catalog.SAFE_L2, catalog.L1_HEAD, catalog.UNSAFE_SAFE_LAG} <= set(node)
    geth = k8s_sample(poll, "op-geth")
    assert geth[catalog.POD_READY] == 1.0
    assert geth[catalog.RESTARTS] == 0.0
    assert geth[catalog.CPU_REQUEST_CORES] > 0
    assert (
        0
        < geth[catalog.CPU_USAGE]
        == pytest.approx(100 * geth[catalog.CPU_CORES] / geth[catalog.CPU_REQUEST_CORES])
    )
    assert geth[catalog.MEMORY_BYTES] > 0


async def test_log_lines_arrive_once(twin: Twin, poller: ChainPoller) -> None:
    await twin.step(3)
    first = log_lines(await poller.poll(), "op-geth")
    assert first, "the twin's op-geth printed nothing"
    assert log_lines(await poller.poll(), "op-geth") == ()  # nothing new was written
    await twin.step(3)
    second = log_lines(await poller.poll(), "op-geth")
    assert second
    assert not set(first) & set(second)
    assert any("Imported new potential chain segment" in line for line in second)


async def test_hung_api_server_marks_every_target_down_within_the_timeout(twin: Twin) -> None:
    poller = ChainPoller.open(twin.chain, timeout_s=1.0, log_tail_lines=50)
    try:
        assert all(s.target_up for s in (await poller.poll()).samples)
        twin.process.send_signal(signal.SIGSTOP)
        try:
            started = time.monotonic()
            poll = await poller.poll()
            elapsed = time.monotonic() - started
        finally:
            twin.process.send_signal(signal.SIGCONT)
        assert elapsed < 2.5
        assert len(poll.samples) == 8 and not any(s.target_up for s in poll.samples)
        assert poll.logs == ()
        k8s_errors = [s.error or "" for s in poll.samples if s.source == "k8s"]
        assert all("list pods app.kubernetes.io/name in (" in e for e in k8s_errors), k8s_errors
        assert all(s.target_up for s in (await poller.poll()).samples)
    finally:
        await poller.aclose()


async def test_logs_read_every_few_polls_lose_no_line(twin: Twin) -> None:
    clock = [1_800_000_000.0]
    assert twin.chain.kubeconfig is not None
    kube = KubeReader.from_kubeconfig(twin.chain.kubeconfig, namespace=twin.chain.namespace, timeout_s=5.0)
    poller = ChainPoller(
        twin.chain,
        http=aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5.0)),
        kube=kube,
        timeout_s=5.0,
        log_tail_lines=50,
        log_interval_s=5.0,
        clock=lambda: clock[0],
    )
    try:
        await twin.step(3)
        first = log_lines(await poller.poll(), "op-geth")
        assert first
        for seconds in (1.0, 3.0):  # 4 s after the first read: not due yet
            await twin.step(2)
            clock[0] += seconds
            skipped = await poller.poll()
            assert skipped.logs == ()
            assert len(skipped.samples) == 8 and all(s.target_up for s in skipped.samples)
        await twin.step(2)
        clock[0] += 1.0  # 5 s: due
        later = log_lines(await poller.poll(), "op-geth")
        assert later
        [written] = await kube.tail_logs([("op-geth-0", "op-geth")], lines=2000)
        assert isinstance(written, tuple)
        # Both reads together are the end of the log: every line once, none skipped.
        assert first + later == written[-(len(first) + len(later)) :]
    finally:
        await poller.aclose()


async def test_a_log_that_cannot_be_read_fails_alone_and_the_rest_of_the_round_is_read(twin: Twin) -> None:
    assert twin.chain.kubeconfig is not None
    kube = KubeReader.from_kubeconfig(twin.chain.kubeconfig, namespace=twin.chain.namespace, timeout_s=5.0)
    try:
        await twin.step(3)
        read = await kube.pods_and_usage()
        geth = next(p["metadata"]["name"] for p in read.pods if p["metadata"]["name"].startswith("op-geth"))
        assert geth in read.usage
        assert read.summary is None  # none asked for
        gone, written = await kube.tail_logs([("op-node-99", "op-node"), (geth, "op-geth")], lines=20)
        assert isinstance(gone, KubeError) and gone.status == 404
        assert "log of twin/op-node-99/op-node: HTTP 404" in str(gone)
        assert isinstance(written, tuple)
        assert any("Imported new potential chain segment" in line for line in written)
        # The loader's credential refresh runs at most every 30 s (it re-installs its own hook each
        # time it runs; ours stays in place), and every request still carries the token.
        configuration = kube._api_client.configuration
        hook = configuration.refresh_api_key_hook
        assert isinstance(hook, ThrottledRefresh)
        for _ in range(3):
            assert len((await kube.pods_and_usage()).pods) == len(COMPONENTS)
        assert configuration.refresh_api_key_hook is hook
    finally:
        await kube.aclose()


# ---- L1 balances, the proposed height and the data volume ------------------------------------------

ETH = 10**18
GIB = 2**30


def l1_and_disk(poll: Poll) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """The op-batcher and op-proposer RPC samples and op-geth's pod sample."""
    return rpc_sample(poll, "op-batcher"), rpc_sample(poll, "op-proposer"), k8s_sample(poll, "op-geth")


async def test_balances_proposed_height_and_disk_usage_arrive_as_the_twin_has_them(
    twin: Twin, poller: ChainPoller
) -> None:
    chain = twin.chain
    assert chain.l1_rpc is not None and chain.l2_output_oracle_address is not None
    assert chain.batcher_address is not None and chain.proposer_address is not None

    state = await twin.step(3)
    batcher, proposer, geth = l1_and_disk(await poller.poll())
    assert batcher[catalog.BALANCE] == pytest.approx(state["batcherBalanceWei"] / ETH)
    assert proposer[catalog.BALANCE] == pytest.approx(state["proposerBalanceWei"] / ETH)
    assert proposer[catalog.PROPOSED_L2] == state["heights"]["proposedL2"]
    used = state["diskCapacityBytes"] - state["diskFreeBytes"]
    assert geth[catalog.DISK_USAGE] == pytest.approx(100 * used / state["diskCapacityBytes"])
    assert 10 < geth[catalog.DISK_USAGE] < 50  # a healthy node
    assert catalog.DISK_USAGE not in k8s_sample(await poller.poll(), "op-node")

    # The proposer proposes the safe head every 30 ticks: the height on L1 moves, the key pays.
    moved = await twin.step(90)
    _, proposer_later, _ = l1_and_disk(await poller.poll())
    assert (
        proposer_later[catalog.PROPOSED_L2] == moved["heights"]["proposedL2"] > proposer[catalog.PROPOSED_L2]
    )
    assert proposer_later[catalog.BALANCE] < proposer[catalog.BALANCE]


async def test_the_three_series_follow_the_twins_incidents(twin: Twin, poller: ChainPoller) -> None:
    await twin.step(3)
    before_batcher, before_proposer, _ = l1_and_disk(await poller.poll())
    assert before_batcher[catalog.BALANCE] > 1.0

    for kind in ("batcher_failure", "proposer_failure", "disk_pressure"):
        await twin.inject(kind)
    await twin.step(90)
    batcher, proposer, geth = l1_and_disk(await poller.poll())
    assert batcher[catalog.BALANCE] < 0.001  # the batcher key is empty
    assert proposer[catalog.PROPOSED_L2] == before_proposer[catalog.PROPOSED_L2]  # nothing proposed
    assert proposer[catalog.BALANCE] == before_proposer[catalog.BALANCE]  # nothing paid either
    assert geth[catalog.DISK_USAGE] > 99.0  # 1.2 GiB left of 512

    for kind in ("batcher_failure", "proposer_failure", "disk_pressure"):
        await twin.clear(kind)
    await twin.step(90)
    batcher, proposer, geth = l1_and_disk(await poller.poll())
    assert batcher[catalog.BALANCE] > 1.0
    assert proposer[catalog.PROPOSED_L2] > before_proposer[catalog.PROPOSED_L2]
    assert geth[catalog.DISK_USAGE] < 50.0


def gap_reports(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str, str]]:
    return [
        (r.getMessage(), getattr(r, "component", ""), getattr(r, "metric", ""))
        for r in caplog.records
        if r.getMessage() in ("series unavailable", "series available again")
    ]


async def test_an_l1_outage_leaves_out_only_the_l1_series_and_says_so_once(
    twin: Twin, poller: ChainPoller, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sentinai.collector")
    await twin.step(3)
    assert catalog.BALANCE in rpc_sample(await poller.poll(), "op-batcher")
    await twin.inject("l1_rpc_outage")
    await twin.step(1)
    for _ in range(3):
        poll = await poller.poll()
        # The batcher and proposer still answer: L1 trouble is not theirs, nothing looks down.
        assert all(s.target_up for s in poll.samples), [s.error for s in poll.samples if not s.target_up]
        batcher, proposer, geth = l1_and_disk(poll)
        assert catalog.BALANCE not in batcher
        assert not {catalog.BALANCE, catalog.PROPOSED_L2} & set(proposer)
        assert catalog.DISK_USAGE in geth
    missing = [
        ("series unavailable", "op-batcher", catalog.BALANCE),
        ("series unavailable", "op-proposer", catalog.BALANCE),
        ("series unavailable", "op-proposer", catalog.PROPOSED_L2),
    ]
    assert sorted(gap_reports(caplog)) == missing  # once each, not once per poll
    (record,) = [r for r in caplog.records if getattr(r, "metric", "") == catalog.PROPOSED_L2]
    assert "HTTP 503" in record.error  # type: ignore[attr-defined]

    await twin.clear("l1_rpc_outage")
    batcher, proposer, _ = l1_and_disk(await poller.poll())
    assert catalog.BALANCE in batcher and catalog.PROPOSED_L2 in proposer
    back = [("series available again", c, m) for _, c, m in missing]
    assert sorted(gap_reports(caplog)) == sorted(missing + back)


async def test_a_forbidden_stats_summary_costs_only_disk_usage(
    twin: Twin, poller: ChainPoller, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sentinai.collector")
    await twin.step(3)
    # No RBAC for nodes/proxy: the API server answers 403 Forbidden.
    await twin.kube_fault(verb="proxy", status=403, times=2)
    for _ in range(2):
        poll = await poller.poll()
        assert all(s.target_up for s in poll.samples), [s.error for s in poll.samples if not s.target_up]
        geth = k8s_sample(poll, "op-geth")
        assert catalog.DISK_USAGE not in geth
        assert geth[catalog.POD_READY] == 1.0
    assert gap_reports(caplog) == [("series unavailable", "op-geth", catalog.DISK_USAGE)]
    (record,) = [r for r in caplog.records if r.getMessage() == "series unavailable"]
    assert "stats summary of node twin-node-1: HTTP 403" in record.error  # type: ignore[attr-defined]
    assert catalog.DISK_USAGE in k8s_sample(await poller.poll(), "op-geth")

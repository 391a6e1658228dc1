"""The whole collector process loop against real nats-server and anvil: samples land in JetStream."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import nats
import pytest
from nats.js.errors import NotFoundError

from sentinai.collector.main import serve
from sentinai.collector.settings import CollectorSettings
from sentinai.common import streams, subjects
from sentinai.common.events import MetricSample, decode
from sentinai.common.net import free_port
from sentinai.devkit.natsserver import EmbeddedNats
from sentinai.devkit.waits import eventually

if TYPE_CHECKING:
    from conftest import Anvil

pytestmark = pytest.mark.integration


async def test_samples_reach_the_telemetry_stream_and_a_hung_chain_delays_no_other(
    anvil: Anvil, nats_server: EmbeddedNats, blackhole: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chains = tmp_path / "chains.yaml"
    chains.write_text(
        f"chains:\n  - id: anvil\n    l2Rpc: {anvil.url}\n  - id: hung\n    l2Rpc: {blackhole}\n"
    )
    monkeypatch.setenv("SENTINAI_COLLECTOR_RPC_TIMEOUT_S", "2")
    settings = _settings(monkeypatch, nats_url=nats_server.url, chains=chains)
    stop = asyncio.Event()
    collector = asyncio.create_task(serve(settings, stop=stop))
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        # The collector creates the stream once connected.
        await eventually(
            lambda: js.stream_info(streams.TELEMETRY.name),
            timeout_s=10.0,
            what="the TELEMETRY stream",
            tolerate=(NotFoundError,),
        )
        sub = await js.subscribe("metrics.raw.>", stream=streams.TELEMETRY.name)

        arrivals: list[tuple[str, MetricSample]] = []
        while not any(s.chain_id == "hung" for _, s in arrivals):
            msg = await sub.next_msg(timeout=5.0)
            sample = decode(MetricSample, msg.data)
            # The dedup id and nothing else: every consumer parses every header of every sample.
            assert msg.headers == {"Nats-Msg-Id": sample.event_id}
            arrivals.append((msg.subject, sample))

        assert {subject for subject, _ in arrivals} == {
            "metrics.raw.anvil.op-geth",
            "metrics.raw.hung.op-geth",
        }
        for subject, sample in arrivals:
            assert subject == f"metrics.raw.{sample.chain_id}.{sample.component}"
        # The hung chain needed its whole 2 s timeout; meanwhile the anvil chain kept its 0.25 s cadence.
        before_hung = [s for _, s in arrivals[:-1]]
        assert len(before_hung) >= 4 and all(s.chain_id == "anvil" and s.target_up for s in before_hung)
        hung = arrivals[-1][1]
        assert (
            not hung.target_up
            and hung.error is not None
            and "eth_getBlockByNumber at http://127.0.0.1:" in hung.error
        )
        assert "timed out" in hung.error
    finally:
        await nc.close()
        stop.set()
        await asyncio.wait_for(collector, timeout=10.0)


def _settings(monkeypatch: pytest.MonkeyPatch, *, nats_url: str, chains: Path) -> CollectorSettings:
    monkeypatch.setenv("SENTINAI_NATS_URL", nats_url)
    monkeypatch.setenv("SENTINAI_COLLECTOR_CHAINS_FILE", str(chains))
    monkeypatch.setenv("SENTINAI_COLLECTOR_POLL_INTERVAL_S", "0.25")
    monkeypatch.setenv("SENTINAI_COLLECTOR_HTTP_PORT", str(free_port()))
    return CollectorSettings()


async def test_collector_started_before_nats_publishes_once_nats_is_up(
    anvil: Anvil, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chains = tmp_path / "chains.yaml"
    chains.write_text(f"chains:\n  - id: anvil\n    l2Rpc: {anvil.url}\n")
    server = EmbeddedNats(data_dir=tmp_path / "nats")
    stop = asyncio.Event()
    collector = asyncio.create_task(
        serve(_settings(monkeypatch, nats_url=server.url, chains=chains), stop=stop)
    )
    try:
        await asyncio.sleep(0.3)  # long enough for its first connection attempt to be refused
        assert not collector.done()
        server.start()
        nc = await nats.connect(server.url)
        try:
            sub = await nc.subscribe(subjects.metrics_raw("anvil", "op-geth"))
            sample = decode(MetricSample, (await sub.next_msg(timeout=10.0)).data)
            assert sample.target_up
        finally:
            await nc.close()
    finally:
        stop.set()
        await asyncio.wait_for(collector, timeout=10.0)
        server.stop()


async def test_stop_while_waiting_for_nats_returns_promptly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chains = tmp_path / "chains.yaml"
    chains.write_text("chains:\n  - id: quiet\n")
    stop = asyncio.Event()
    settings = _settings(monkeypatch, nats_url=f"nats://127.0.0.1:{free_port()}", chains=chains)
    collector = asyncio.create_task(serve(settings, stop=stop))
    await asyncio.sleep(0.2)
    assert not collector.done()
    stop.set()
    await asyncio.wait_for(collector, timeout=3.0)

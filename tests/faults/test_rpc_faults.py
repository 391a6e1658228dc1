"""One chain's L2 RPC down or hanging: the collector says so and keeps polling the other chain.

Real processes: nats-server, a twin with two chains, the collector polling both every second. The
twin's control API makes chain ``alpha``'s JSON-RPC answer 502 (the node behind the load balancer is
gone) or hang without answering. Every sample the collector publishes is counted per chain.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nats
import pytest
from nats.aio.msg import Msg
from serviceproc import Service

from sentinai.common import subjects
from sentinai.common.events import MetricSample
from sentinai.devkit.natsserver import EmbeddedNats
from sentinai.devkit.twinproc import TwinProcess
from sentinai.devkit.waits import eventually
from sentinai.twin.client import TwinControl

pytestmark = pytest.mark.integration
POLL_S = 1.0
RPC_TIMEOUT_S = 2.0
WINDOW_S = 6.0


@dataclass
class Samples:
    items: list[tuple[float, MetricSample]] = field(default_factory=list)

    def since(self, at: float, *, chain: str, source: str = "rpc") -> list[MetricSample]:
        """op-geth's samples of ``chain`` from ``source`` received after ``at`` (monotonic)."""
        return [
            s
            for t, s in self.items
            if t >= at and s.chain_id == chain and s.component == "op-geth" and s.source == source
        ]


@dataclass
class Rig:
    nats_url: str
    control: TwinControl
    collector: Service
    samples: Samples = field(default_factory=Samples)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    server = EmbeddedNats(data_dir=tmp_path / "nats", log_file=tmp_path / "nats.log").start()
    twin = TwinProcess(tmp_path / "twin", chains=("alpha", "beta"), seed=5, block_time_s=1).start()
    collector = Service.start(
        "collector",
        nats_url=server.url,
        workdir=tmp_path,
        env={
            "SENTINAI_COLLECTOR_CHAINS_FILE": str(twin.chains_file),
            "SENTINAI_COLLECTOR_POLL_INTERVAL_S": str(POLL_S),
            "SENTINAI_COLLECTOR_RPC_TIMEOUT_S": str(RPC_TIMEOUT_S),
        },
    )
    try:
        with TwinControl(twin.base_url) as control:
            yield Rig(server.url, control, collector)
    finally:
        collector.stop()
        twin.stop()
        server.stop()


@contextlib.asynccontextmanager
async def listening(rig: Rig) -> AsyncIterator[Samples]:
    nc = await nats.connect(rig.nats_url)

    async def on_sample(msg: Msg) -> None:
        rig.samples.items.append((time.monotonic(), MetricSample.model_validate_json(msg.data)))

    await nc.subscribe(f"{subjects.METRICS_RAW}.>", cb=on_sample)
    try:
        yield rig.samples
    finally:
        await nc.close()


# The error each fault must produce in the sample: the HTTP status, or the timeout.
FAULTS = (("down", ("502 Bad Gateway",)), ("hang", ("timed out", "no answer within")))


async def test_rpc_down_then_hanging_is_reported_and_the_other_chain_keeps_its_cadence(rig: Rig) -> None:
    async with listening(rig) as samples:
        start = time.monotonic()
        await eventually(
            lambda: min(len(samples.since(start, chain=c)) for c in ("alpha", "beta")) >= 2,
            timeout_s=60,
            what="both chains sampled",
            every_s=0.1,
        )
        assert all(s.target_up for s in samples.since(start, chain="alpha"))

        for mode, errors in FAULTS:
            rig.control.rpc_fault("alpha", mode)
            began = time.monotonic()
            await asyncio.sleep(WINDOW_S)  # the observation window itself
            # A poll already in flight when the fault was set may still succeed: skip one poll.
            alpha = samples.since(began + POLL_S, chain="alpha")
            beta = samples.since(began, chain="beta")
            assert alpha, f"no RPC sample of alpha while its RPC was {mode}"
            assert not any(s.target_up for s in alpha), [s.error for s in alpha]
            assert all(any(e in (s.error or "") for e in errors) for s in alpha), [s.error for s in alpha]
            # beta keeps its once-a-second cadence: at most one poll lost over the window.
            assert len(beta) >= WINDOW_S / POLL_S - 1, len(beta)
            assert all(s.target_up for s in beta)
            print(f"alpha RPC {mode}: {len(alpha)} alpha samples all down, {len(beta)} beta samples all up")
            # alpha's pods are read through the K8s API, which still answers.
            pods = samples.since(began, chain="alpha", source="k8s")
            assert pods and all(s.target_up for s in pods)
            rig.control.rpc_fault("alpha", None)
            healed = time.monotonic()
            await eventually(
                lambda healed=healed: any(s.target_up for s in samples.since(healed, chain="alpha")),
                timeout_s=RPC_TIMEOUT_S + 5 * POLL_S,
                what=f"alpha's RPC back after {mode}",
                every_s=0.1,
            )
    assert "target down" in rig.collector.output()
    assert rig.collector.proc.poll() is None

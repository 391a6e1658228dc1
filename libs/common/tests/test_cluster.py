"""On a three-server JetStream cluster (as the production overlay runs), streams and the state bucket
are kept on three servers when ``SENTINAI_STREAM_REPLICAS=3``, and losing one server loses nothing."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import nats
import pytest
from nats.js.api import PubAck
from nats.js.errors import APIError, ServiceUnavailableError
from nats.js.errors import Error as JsError

from sentinai.common import streams, subjects
from sentinai.common.net import free_port
from sentinai.common.settings import ServiceSettings
from sentinai.common.state import open_state_store
from sentinai.devkit.natsserver import EmbeddedNats

pytestmark = pytest.mark.integration
PEERS = 3
T = TypeVar("T")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[EmbeddedNats]]:
    route_ports = [free_port() for _ in range(PEERS)]
    servers: list[EmbeddedNats] = []
    for i in range(PEERS):
        routes = tuple(f"nats://127.0.0.1:{p}" for j, p in enumerate(route_ports) if j != i)
        servers.append(
            EmbeddedNats(
                data_dir=tmp_path / f"nats{i}",
                log_file=tmp_path / f"nats{i}.log",
                cluster_port=route_ports[i],
                routes=routes,
            )
        )
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


async def _until_jetstream_ready(nc: nats.NATS, *, timeout_s: float = 30.0) -> None:
    """A new cluster elects its meta leader a few seconds after the servers accept connections."""
    js = nc.jetstream()
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            await js.account_info()
            return
        except (ServiceUnavailableError, APIError, TimeoutError, nats.errors.NoRespondersError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def _eventually(call: Callable[[], Awaitable[T]], *, timeout_s: float = 30.0) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await call()
        except (TimeoutError, nats.errors.Error, JsError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.3)


def test_replicas_setting_reads_the_shared_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTINAI_STREAM_REPLICAS", "3")
    assert ServiceSettings().stream_replicas == 3
    monkeypatch.setenv("SENTINAI_STREAM_REPLICAS", "0")
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        ServiceSettings()


async def test_three_replicas_survive_a_lost_server(cluster: list[EmbeddedNats]) -> None:
    nc = await nats.connect(
        servers=[s.url for s in cluster], max_reconnect_attempts=-1, reconnect_time_wait=0.2
    )
    try:
        await _until_jetstream_ready(nc)
        js = nc.jetstream()
        # A new cluster may not have all three peers in its meta group for a moment.
        await _eventually(lambda: streams.ensure_streams(js, replicas=PEERS))
        store = await open_state_store(nc=nc, redis_url=None, bucket="sentinai", replicas=PEERS)
        # A service started without the setting must not shrink what an operator configured.
        await streams.ensure_streams(js)
        for spec in streams.ALL:
            info = await js.stream_info(spec.name)
            assert info.config.num_replicas == PEERS, spec.name
            assert info.cluster is not None and len(info.cluster.replicas or []) == PEERS - 1, spec.name
        kv_info = await js.stream_info("KV_sentinai")
        assert kv_info.config.num_replicas == PEERS

        before = [
            await js.publish(
                subjects.audit("c1"), f'{{"n":{n}}}'.encode(), headers={"Nats-Msg-Id": f"audit-{n}"}
            )
            for n in range(20)
        ]
        await store.put("lock.c1", b"held")

        # Lose the server the client is on; a majority (2 of 3) is left.
        connected = nc.connected_url
        assert connected is not None
        victim = next(s for s in cluster if s.port == connected.port)
        victim.kill()

        # Everything after the loss may first meet a reconnect or a stream electing a new leader;
        # each call is retried (publishes with a message id, so a retry stores once) for 30 s.
        async def publish(n: int) -> PubAck:
            body, msg_id = f'{{"n":{n}}}'.encode(), f"audit-{n}"
            return await js.publish(subjects.audit("c1"), body, timeout=2.0, headers={"Nats-Msg-Id": msg_id})

        after = [await _eventually(lambda n=n: publish(n)) for n in range(20, 40)]
        assert all(ack.stream == "AUDIT" for ack in before + after)
        info = await _eventually(lambda: js.stream_info("AUDIT"))
        assert info.state.messages == 40

        seen: list[bytes] = []
        sub = await _eventually(
            lambda: js.pull_subscribe(f"{subjects.AUDIT}.>", durable="reader", stream="AUDIT")
        )
        deadline = time.monotonic() + 30.0
        while len(seen) < 40 and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                for msg in await sub.fetch(40, timeout=2.0):
                    seen.append(msg.data)
                    await msg.ack()
        assert sorted(int(d.split(b":")[1].rstrip(b"}")) for d in seen) == list(range(40))
        assert await _eventually(lambda: store.get("lock.c1")) == b"held"
    finally:
        await nc.close()

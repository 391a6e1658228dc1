"""Composition root: settings → chains, policy, clusters → broker, state store → executor, health, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket

from sentinai.common import jsonlog, telemetry
from sentinai.common.bus import BrokerPublisher, build_broker
from sentinai.common.chains import load_chains
from sentinai.common.policy import load_policy
from sentinai.common.serve import health_and_metrics, run, serving
from sentinai.common.state import open_state_store
from sentinai.common.streams import ensure_streams
from sentinai.executor import bus
from sentinai.executor.feed import SampleFeed
from sentinai.executor.kube import KubeWriter
from sentinai.executor.service import Executor
from sentinai.executor.settings import ExecutorSettings

log = logging.getLogger(__name__)


def open_clusters(settings: ExecutorSettings) -> dict[str, KubeWriter]:
    """One API client per chain that has a kubeconfig; a bad kubeconfig stops the start."""
    return {
        chain.id: KubeWriter.from_kubeconfig(
            chain.kubeconfig,
            namespace=chain.namespace,
            timeout_s=settings.k8s_timeout_s,
            retries=settings.k8s_retries,
            name=chain.id,
        )
        for chain in load_chains(settings.chains_file)
        if chain.kubeconfig is not None
    }


async def serve(settings: ExecutorSettings, *, stop: asyncio.Event) -> None:
    """Run until ``stop`` is set; then let in-flight actions finish (or abandon and roll back)."""
    chains = {chain.id: chain for chain in load_chains(settings.chains_file)}
    policy = load_policy(settings.policy_file)
    clusters = open_clusters(settings)
    broker = build_broker(settings)
    telemetry.instrument(broker, service=bus.SERVICE)
    inflight = bus.Inflight()
    lag = telemetry.ConsumerLag(broker, service=bus.SERVICE)
    http = health_and_metrics(lambda: broker.ping(timeout=1.0))
    try:
        async with serving(http, host=settings.http_host, port=settings.http_port):
            await broker.connect()
            store = await open_state_store(
                nc=broker.connection,
                redis_url=settings.redis_url,
                bucket=settings.kv_bucket,
                replicas=settings.stream_replicas,
            )
            executor = Executor(
                settings=settings,
                policy=policy,
                chains=chains,
                clusters=clusters,
                store=store,
                feed=SampleFeed(lambda: broker.connection),
                publisher=BrokerPublisher(broker),
                instance=f"{socket.gethostname()}-{os.getpid()}",
            )
            bus.subscribe(broker, executor, settings=settings, inflight=inflight)
            await ensure_streams(broker.connection.jetstream(), replicas=settings.stream_replicas)
            await broker.start()
            await lag.start()
            log.info(
                "executor started",
                extra={
                    "chains": sorted(chains),
                    "simulation": settings.simulation_mode,
                    "readOnly": settings.read_only_mode,
                },
            )
            await stop.wait()
            executor.stopping.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(inflight.idle.wait(), timeout=settings.shutdown_grace_s)
            await store.close()
    finally:
        await lag.stop()
        await broker.stop()
        for cluster in clusters.values():
            cluster.close()
        log.info("executor stopped")


async def _run(settings: ExecutorSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(settings, stop=stop)


def main() -> None:
    settings = ExecutorSettings()  # chains_file comes from the environment
    jsonlog.setup("executor", settings.log_level)
    with contextlib.suppress(KeyboardInterrupt):
        run(_run(settings))

"""One chain's targets polled once: op-geth, op-node, batcher, proposer RPC and the component pods."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from sentinai.collector import logic
from sentinai.collector.kube import COMPONENT_LABEL, KubeReader
from sentinai.collector.rpc import JsonRpc, RpcError
from sentinai.common.chains import ChainConfig
from sentinai.common.events import COMPONENTS, LogBatch, MetricSample, MetricSource

log = logging.getLogger(__name__)
Clock = Callable[[], float]
_ERROR_KEEP = 2000
# The clients' own timeouts fire first and say which call hung; this margin only backs them up.
_GUARD_MARGIN_S = 0.5


@dataclass(frozen=True, slots=True)
class Poll:
    """Everything one poll of one chain produced, ready to publish."""

    samples: tuple[MetricSample, ...]
    logs: tuple[LogBatch, ...] = ()


@dataclass(slots=True)
class _LogCursor:
    pod: str
    lines: tuple[str, ...]


@dataclass(slots=True)
class _ChainMemory:
    head: logic.HeadTracker = field(default_factory=logic.HeadTracker)
    logs: dict[str, _LogCursor] = field(default_factory=dict)


async def _optional(call: Awaitable[Any]) -> Any:
    """The result, or ``None`` when the node does not offer the method (anvil has no net_peerCount)."""
    try:
        return await call
    except RpcError as exc:
        log.debug("optional RPC unavailable", extra={"error": str(exc)})
        return None


class ChainPoller:
    """Polls every configured target of one chain; a failing target becomes a ``targetUp=False`` sample."""

    def __init__(
        self,
        chain: ChainConfig,
        *,
        http: httpx.AsyncClient,
        kube: KubeReader | None,
        timeout_s: float,
        log_tail_lines: int,
        clock: Clock = time.time,
    ) -> None:
        self.chain = chain
        self._http = http
        self._kube = kube
        self._timeout_s = timeout_s
        self._guard_s = timeout_s + _GUARD_MARGIN_S
        self._tail = log_tail_lines
        self._clock = clock
        self._memory = _ChainMemory()

    @classmethod
    def open(cls, chain: ChainConfig, *, timeout_s: float, log_tail_lines: int) -> ChainPoller:
        """A poller with its own HTTP pool and Kubernetes client, so chains never wait on each other."""
        kube = None
        if chain.kubeconfig is not None:
            kube = KubeReader.from_kubeconfig(
                chain.kubeconfig, namespace=chain.namespace, timeout_s=timeout_s, name=chain.id
            )
        http = httpx.AsyncClient(timeout=timeout_s)
        return cls(chain, http=http, kube=kube, timeout_s=timeout_s, log_tail_lines=log_tail_lines)

    async def aclose(self) -> None:
        await self._http.aclose()
        if self._kube is not None:
            self._kube.close()

    async def poll(self) -> Poll:
        """Poll all targets concurrently; never raises for a target's failure."""
        now = self._clock()
        chain = self.chain
        jobs: list[Awaitable[tuple[MetricSample, LogBatch | None]]] = []
        if chain.l2_rpc is not None:
            jobs.append(
                self._rpc_target("op-geth", now, self._geth(JsonRpc(self._http, str(chain.l2_rpc)), now))
            )
        if chain.op_node_rpc is not None:
            rpc = JsonRpc(self._http, str(chain.op_node_rpc))
            jobs.append(self._rpc_target("op-node", now, self._op_node(rpc, now)))
        for component, url in (("op-batcher", chain.batcher_rpc), ("op-proposer", chain.proposer_rpc)):
            if url is not None:
                jobs.append(self._rpc_target(component, now, self._health(JsonRpc(self._http, str(url)))))
        if self._kube is not None:
            jobs.extend(self._pod(self._kube, component, now) for component in COMPONENTS)
        results = await asyncio.gather(*jobs)
        return Poll(
            samples=tuple(sample for sample, _ in results),
            logs=tuple(batch for _, batch in results if batch is not None),
        )

    # ---- targets -------------------------------------------------------------------------------

    async def _geth(self, rpc: JsonRpc, now: float) -> logic.Metrics:
        block, txpool, peers = await asyncio.gather(
            rpc.call("eth_getBlockByNumber", ["latest", False]),
            _optional(rpc.call("txpool_status")),
            _optional(rpc.call("net_peerCount")),
        )
        height, metrics = logic.block_metrics(block)
        if txpool is not None:
            metrics |= logic.txpool_metrics(txpool)
        if peers is not None:
            metrics |= logic.peer_count_metrics(peers)
        # Only a successful poll moves the tracker: a timed-out one must not look like a stalled head.
        self._memory.head, head = logic.track_head(self._memory.head, height, now=now)
        return metrics | head

    async def _op_node(self, rpc: JsonRpc, now: float) -> logic.Metrics:
        status, peers = await asyncio.gather(
            rpc.call("optimism_syncStatus"), _optional(rpc.call("opp2p_peerStats"))
        )
        metrics = logic.sync_status_metrics(status, now=now)
        if peers is not None:
            metrics |= logic.peer_stats_metrics(peers)
        return metrics

    async def _health(self, rpc: JsonRpc) -> logic.Metrics:
        await rpc.call("health_status")
        return {}

    async def _rpc_target(
        self, component: str, now: float, work: Awaitable[logic.Metrics]
    ) -> tuple[MetricSample, LogBatch | None]:
        try:
            async with asyncio.timeout(self._guard_s):
                metrics = await work
        except Exception as exc:  # any failure of a target is reported, never raised
            return self._down(component, "rpc", now, exc), None
        return self._sample(component, "rpc", now, metrics), None

    async def _pod(
        self, kube: KubeReader, component: str, now: float
    ) -> tuple[MetricSample, LogBatch | None]:
        try:
            async with asyncio.timeout(self._guard_s):
                pod = logic.pick_pod(await kube.pods(component))
                if pod is None:
                    raise LookupError(f"no pod labelled {COMPONENT_LABEL}={component} in {kube.namespace}")
                name = str(pod.get("metadata", {}).get("name", ""))
                metrics = logic.pod_metrics(pod, await kube.pod_usage(name), component=component)
        except Exception as exc:  # any failure of a target is reported, never raised
            return self._down(component, "k8s", now, exc), None
        sample = self._sample(component, "k8s", now, metrics)
        container = logic.main_container(pod, component)
        if container is None:
            return sample, None
        return sample, await self._new_logs(kube, component, pod=name, container=container, now=now)

    async def _new_logs(
        self, kube: KubeReader, component: str, *, pod: str, container: str, now: float
    ) -> LogBatch | None:
        try:
            async with asyncio.timeout(self._guard_s):
                tail = await kube.tail_log(pod, container=container, lines=self._tail)
        except Exception as exc:  # a missing log must not cost the component's metrics
            log.warning(
                "log read failed",
                extra={
                    "chain": self.chain.id,
                    "component": component,
                    "pod": pod,
                    "error": _text(exc, self._guard_s),
                },
            )
            return None
        cursor = self._memory.logs.get(component)
        # A new pod (restart, rollout) starts a new log: nothing of the old tail carries over.
        previous = cursor.lines if cursor is not None and cursor.pod == pod else None
        fresh = logic.new_log_lines(previous, tail)
        self._memory.logs[component] = _LogCursor(pod=pod, lines=tail)
        if not fresh:
            return None
        return LogBatch(
            chain_id=self.chain.id, component=component, pod=pod, lines=fresh, occurred_at=_at(now)
        )

    # ---- samples -------------------------------------------------------------------------------

    def _sample(
        self, component: str, source: MetricSource, now: float, metrics: logic.Metrics
    ) -> MetricSample:
        return MetricSample(
            chain_id=self.chain.id, component=component, source=source, metrics=metrics, occurred_at=_at(now)
        )

    def _down(self, component: str, source: MetricSource, now: float, exc: BaseException) -> MetricSample:
        error = _text(exc, self._guard_s)
        log.warning(
            "target down",
            extra={"chain": self.chain.id, "component": component, "source": source, "error": error},
        )
        return MetricSample(
            chain_id=self.chain.id,
            component=component,
            source=source,
            target_up=False,
            error=error,
            occurred_at=_at(now),
        )


def _text(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout_s:g}s"
    return (str(exc) or type(exc).__name__)[:_ERROR_KEEP]


def _at(now: float) -> datetime:
    return datetime.fromtimestamp(now, UTC)

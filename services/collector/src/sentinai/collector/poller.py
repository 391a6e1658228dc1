"""One chain's targets polled once: op-geth, op-node, batcher, proposer RPC, L1 and the component pods."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp

from sentinai.collector import logic
from sentinai.collector.kube import COMPONENT_LABEL, KubeReader, PodsRead
from sentinai.collector.rpc import JsonRpc, RpcError
from sentinai.common import catalog
from sentinai.common.chains import ChainConfig
from sentinai.common.events import COMPONENTS, LogBatch, MetricSample, MetricSource

log = logging.getLogger(__name__)
Clock = Callable[[], float]
_ERROR_KEEP = 2000
# The clients' own timeouts fire first and say which call hung; this margin only backs them up.
_GUARD_MARGIN_S = 0.5
# The component whose data volume ``diskUsage`` measures.
_DATA_VOLUME_OF = "op-geth"


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
    # Wall-clock time of the next log read; logs may be read less often than the rest is polled.
    logs_due: float = float("-inf")
    # Series (component, metric) a poll could not read while its target answered: each is reported
    # when it goes missing and when it is back, not on every poll it stays missing.
    gaps: set[tuple[str, str]] = field(default_factory=set)


def _required(result: Any) -> Any:
    if isinstance(result, RpcError):
        raise result
    return result


class ChainPoller:
    """Polls every configured target of one chain; a failing target becomes a ``targetUp=False`` sample.

    A poll costs one HTTP request per RPC endpoint (the methods of one node go in one JSON-RPC
    batch; the L1 reads too), one pod list, one pod-metrics list and op-geth's node stats summary,
    plus a log tail per component every ``log_interval_s`` (0: every poll). A series that cannot be
    read while its target answers (L1 down, no RBAC for ``nodes/proxy``) is left out of the sample
    and reported once, when it goes missing.
    """

    def __init__(
        self,
        chain: ChainConfig,
        *,
        http: aiohttp.ClientSession,
        kube: KubeReader | None,
        timeout_s: float,
        log_tail_lines: int,
        log_interval_s: float = 0.0,
        clock: Clock = time.time,
    ) -> None:
        self.chain = chain
        self._http = http
        self._kube = kube
        self._timeout_s = timeout_s
        self._guard_s = timeout_s + _GUARD_MARGIN_S
        self._tail = log_tail_lines
        self._log_interval_s = log_interval_s
        self._clock = clock
        self._memory = _ChainMemory()
        self._rpc = {
            component: JsonRpc(http, str(url))
            for component, url in (
                ("op-geth", chain.l2_rpc),
                ("op-node", chain.op_node_rpc),
                ("op-batcher", chain.batcher_rpc),
                ("op-proposer", chain.proposer_rpc),
            )
            if url is not None
        }
        self._l1_reads = logic.l1_reads(chain)
        self._l1 = JsonRpc(http, str(chain.l1_rpc)) if chain.l1_rpc is not None and self._l1_reads else None
        self._report_unconfigured()

    @classmethod
    def open(
        cls, chain: ChainConfig, *, timeout_s: float, log_tail_lines: int, log_interval_s: float = 0.0
    ) -> ChainPoller:
        """A poller with its own HTTP pools, so chains never wait on each other's connections."""
        kube = None
        if chain.kubeconfig is not None:
            kube = KubeReader.from_kubeconfig(
                chain.kubeconfig, namespace=chain.namespace, timeout_s=timeout_s
            )
        http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s))
        return cls(
            chain,
            http=http,
            kube=kube,
            timeout_s=timeout_s,
            log_tail_lines=log_tail_lines,
            log_interval_s=log_interval_s,
        )

    async def aclose(self) -> None:
        await self._http.close()
        if self._kube is not None:
            await self._kube.aclose()

    async def poll(self) -> Poll:
        """Poll all targets concurrently; never raises for a target's failure."""
        now = self._clock()
        jobs: list[Awaitable[Poll]] = []
        for component, rpc in self._rpc.items():
            work = {"op-geth": self._geth, "op-node": self._op_node}.get(component, self._health)
            jobs.append(self._rpc_target(component, now, work(rpc, now)))
        if self._kube is not None:
            jobs.append(self._pods(self._kube, now))
        parts, on_l1 = await asyncio.gather(asyncio.gather(*jobs), self._read_l1())
        samples = [sample for part in parts for sample in part.samples]
        return Poll(
            samples=tuple(self._with_l1(samples, on_l1, now=now)),
            logs=tuple(batch for part in parts for batch in part.logs),
        )

    # ---- partial reads -------------------------------------------------------------------------

    def _optional(self, component: str, metric: str, result: Any) -> Any:
        """A batch result, or ``None`` (reported as a gap) for a method the node does not offer:
        anvil has no net_peerCount."""
        if isinstance(result, RpcError):
            self._gap(component, metric, result)
            return None
        self._filled(component, metric)
        return result

    def _gap(self, component: str, metric: str, error: BaseException) -> None:
        """``metric`` of ``component`` could not be read; said once until it is read again."""
        key = (component, metric)
        extra = {"chain": self.chain.id, "component": component, "metric": metric}
        if key in self._memory.gaps:
            log.debug("series still unavailable", extra=extra)
            return
        self._memory.gaps.add(key)
        log.warning("series unavailable", extra=extra | {"error": _text(error, self._guard_s)})

    def _filled(self, component: str, metric: str) -> None:
        if (component, metric) in self._memory.gaps:
            self._memory.gaps.discard((component, metric))
            extra = {"chain": self.chain.id, "component": component, "metric": metric}
            log.info("series available again", extra=extra)

    def _report_unconfigured(self) -> None:
        """Series the chain config gives no source for: said once, when the poller is made."""
        chain = self.chain
        needs = {
            f"op-batcher {catalog.BALANCE}": ("l1Rpc", "batcherAddress"),
            f"op-proposer {catalog.BALANCE}": ("l1Rpc", "proposerAddress"),
            f"op-proposer {catalog.PROPOSED_L2}": ("l1Rpc", "l2OutputOracleAddress"),
        }
        have = {f"{r.component} {r.metric}" for r in self._l1_reads}
        missing = {series: keys for series, keys in needs.items() if series not in have}
        if missing:
            log.info(
                "series not collected: not configured",
                extra={"chain": chain.id, "series": {s: " + ".join(k) for s, k in missing.items()}},
            )

    # ---- targets -------------------------------------------------------------------------------

    async def _geth(self, rpc: JsonRpc, now: float) -> logic.Metrics:
        block, txpool, peers = await rpc.batch(
            [("eth_getBlockByNumber", ["latest", False]), ("txpool_status", []), ("net_peerCount", [])]
        )
        height, metrics = logic.block_metrics(_required(block))
        if (status := self._optional("op-geth", catalog.TX_POOL_COUNT, txpool)) is not None:
            metrics |= logic.txpool_metrics(status)
        if (count := self._optional("op-geth", catalog.PEER_COUNT, peers)) is not None:
            metrics |= logic.peer_count_metrics(count)
        # Only a successful poll moves the tracker: a timed-out one must not look like a stalled head.
        self._memory.head, head = logic.track_head(self._memory.head, height, now=now)
        return metrics | head

    async def _op_node(self, rpc: JsonRpc, now: float) -> logic.Metrics:
        status, peers = await rpc.batch([("optimism_syncStatus", []), ("opp2p_peerStats", [])])
        metrics = logic.sync_status_metrics(_required(status), now=now)
        if (stats := self._optional("op-node", catalog.PEER_COUNT, peers)) is not None:
            metrics |= logic.peer_stats_metrics(stats)
        return metrics

    async def _read_l1(self) -> dict[str, logic.Metrics]:
        """The L1 reads in one batch, as metrics by component; a read that fails is only a gap.

        L1 is not one of the chain's targets: its failure does not make the batcher or proposer
        look down, it leaves their L1 series out of the poll.
        """
        reads = self._l1_reads
        if self._l1 is None:
            return {}
        results: list[Any]
        try:
            async with asyncio.timeout(self._guard_s):
                results = await self._l1.batch([(r.method, list(r.params)) for r in reads])
        except Exception as exc:  # unreachable, timed out, not JSON-RPC: every L1 series is a gap
            results = [exc] * len(reads)
        found: dict[str, logic.Metrics] = {}
        for read, result in zip(reads, results, strict=True):
            error = result if isinstance(result, Exception) else None
            if error is None:
                try:
                    value = logic.l1_value(read, result)
                except ValueError as exc:
                    error = exc
            if error is not None:  # a failed or malformed read costs only its own series
                self._gap(read.component, read.metric, error)
                continue
            self._filled(read.component, read.metric)
            found.setdefault(read.component, {})[read.metric] = value
        return found

    def _with_l1(
        self, samples: list[MetricSample], on_l1: dict[str, logic.Metrics], *, now: float
    ) -> list[MetricSample]:
        """The L1 metrics of the batcher and proposer added to their RPC samples (made for them
        when the component's own RPC is not polled). A component that is down keeps its down
        sample as it is: what was read on L1 about it is not worth a sample that says it is up."""
        out: list[MetricSample] = []
        for sample in samples:
            extra = on_l1.get(sample.component) if sample.source == "rpc" and sample.target_up else None
            out.append(sample.model_copy(update={"metrics": sample.metrics | extra}) if extra else sample)
        polled = {s.component for s in samples if s.source == "rpc"}
        out += [self._sample(c, "rpc", now, m) for c, m in on_l1.items() if c not in polled and m]
        return out

    async def _health(self, rpc: JsonRpc, _now: float) -> logic.Metrics:
        await rpc.call("health_status")
        return {}

    async def _rpc_target(self, component: str, now: float, work: Awaitable[logic.Metrics]) -> Poll:
        try:
            async with asyncio.timeout(self._guard_s):
                metrics = await work
        except Exception as exc:  # any failure of a target is reported, never raised
            return Poll(samples=(self._down(component, "rpc", now, exc),))
        return Poll(samples=(self._sample(component, "rpc", now, metrics),))

    def _all_down(self, now: float, exc: BaseException) -> Poll:
        return Poll(samples=tuple(self._down(c, "k8s", now, exc) for c in COMPONENTS))

    async def _pods(self, kube: KubeReader, now: float) -> Poll:
        """Every component's pod sample from one pod list, one metrics list and op-geth's node
        stats summary; then their logs."""
        try:
            # One more client timeout for the stats summary, read in the same job after the lists.
            async with asyncio.timeout(self._guard_s + self._timeout_s):
                read = await kube.pods_and_usage(summary_of=_DATA_VOLUME_OF)
        except Exception as exc:  # any failure of a target is reported, never raised
            return self._all_down(now, exc)
        samples: list[MetricSample] = []
        containers: dict[str, tuple[str, str]] = {}  # component → (pod, container) to read logs of
        for component in COMPONENTS:
            sample, container = self._pod_sample(kube, component, read=read, now=now)
            samples.append(sample)
            if container is not None:
                containers[component] = container
        if not containers or now < self._memory.logs_due:
            return Poll(samples=tuple(samples))
        self._memory.logs_due = now + self._log_interval_s
        return Poll(samples=tuple(samples), logs=await self._new_logs(kube, containers, now=now))

    async def _new_logs(
        self, kube: KubeReader, containers: dict[str, tuple[str, str]], *, now: float
    ) -> tuple[LogBatch, ...]:
        """The lines each component's log gained since the last read; a missing log costs only itself."""
        tails: list[tuple[str, ...] | BaseException]
        try:
            # One read after another on one thread: each bounded by the client's timeout, and the
            # round gives up after the first timeout.
            async with asyncio.timeout(self._guard_s * len(containers)):
                tails = [*await kube.tail_logs(list(containers.values()), lines=self._tail)]
        except Exception as exc:  # never raised: the metrics of this poll stand
            tails = [exc] * len(containers)
        batches: list[LogBatch] = []
        for (component, (pod, _)), tail in zip(containers.items(), tails, strict=True):
            if isinstance(tail, BaseException):
                log.warning(
                    "log read failed",
                    extra={
                        "chain": self.chain.id,
                        "component": component,
                        "pod": pod,
                        "error": _text(tail, self._guard_s),
                    },
                )
                continue
            cursor = self._memory.logs.get(component)
            # A new pod (restart, rollout) starts a new log: nothing of the old tail carries over.
            previous = cursor.lines if cursor is not None and cursor.pod == pod else None
            fresh = logic.new_log_lines(previous, tail)
            self._memory.logs[component] = _LogCursor(pod=pod, lines=tail)
            if fresh:
                batches.append(
                    LogBatch(
                        chain_id=self.chain.id,
                        component=component,
                        pod=pod,
                        lines=fresh,
                        occurred_at=_at(now),
                    )
                )
        return tuple(batches)

    def _pod_sample(
        self, kube: KubeReader, component: str, *, read: PodsRead, now: float
    ) -> tuple[MetricSample, tuple[str, str] | None]:
        """The component's pod sample, and its (pod, container) when its log can be read."""
        try:
            labelled = [
                p
                for p in read.pods
                if p.get("metadata", {}).get("labels", {}).get(COMPONENT_LABEL) == component
            ]
            pod = logic.pick_pod(labelled)
            if pod is None:
                raise LookupError(f"no pod labelled {COMPONENT_LABEL}={component} in {kube.namespace}")
            name = str(pod.get("metadata", {}).get("name", ""))
            metrics = logic.pod_metrics(pod, read.usage.get(name), component=component)
        except Exception as exc:  # a malformed pod fails its own component only
            return self._down(component, "k8s", now, exc), None
        if component == _DATA_VOLUME_OF:
            metrics |= self._disk(read.summary, namespace=kube.namespace, pod=name)
        container = logic.main_container(pod, component)
        return self._sample(component, "k8s", now, metrics), None if container is None else (name, container)

    def _disk(self, summary: dict[str, Any] | Exception | None, *, namespace: str, pod: str) -> logic.Metrics:
        """``diskUsage`` from the node's stats summary; a summary that could not be read (no RBAC for
        ``nodes/proxy``, the kubelet unreachable) or says nothing of the pod is only a gap."""
        problem: BaseException
        if isinstance(summary, Exception):
            problem = summary
        elif summary is None:
            problem = LookupError("no stats summary was read")
        else:
            try:
                metrics = logic.data_volume_metrics(summary, namespace=namespace, pod=pod)
            except Exception as exc:  # a malformed summary never fails the pod sample
                problem = exc
            else:
                self._filled(_DATA_VOLUME_OF, catalog.DISK_USAGE)
                return metrics
        self._gap(_DATA_VOLUME_OF, catalog.DISK_USAGE, problem)
        return {}

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

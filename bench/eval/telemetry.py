"""A scenario's telemetry, deterministically: the twin's pure simulation polled as the collector polls it.

The twin's ``ChainRuntime`` is stepped in-process (no clock, no server); every block time it is read
through the same JSON-RPC handlers, Kubernetes objects and log rings the twin's HTTP surface serves,
and the answers go through the collector's own pure extraction (``sentinai.collector.logic``) into
``MetricSample``s and ``LogBatch``es stamped with sim time. Ids derive from the scenario, so two runs
of one seed produce identical events.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from random import Random
from typing import Any

from bench.eval.scenarios import Glitch, LogLine, Scenario, Step
from sentinai.collector import logic
from sentinai.common import chains
from sentinai.common.events import COMPONENTS, Component, LogBatch, MetricSample, MetricSource
from sentinai.twin import files, kube, logs, rpc
from sentinai.twin.model import ChainConfig
from sentinai.twin.runtime import ChainRuntime

CHAIN = "twin"
LOG_TAIL_LINES = 50  # the collector's default ``log_tail_lines``
DATA_VOLUME_OF: Component = "op-geth"  # whose data volume ``diskUsage`` measures, as in the collector


@dataclass(frozen=True, slots=True)
class Poll:
    """One poll of the chain: ``at`` seconds after the scenario's t=0 (negative during warm-up)."""

    at: float
    now: float  # sim time (epoch seconds) the samples are stamped with
    samples: tuple[MetricSample, ...]
    logs: tuple[LogBatch, ...]
    warmup: bool


def _id(*parts: object) -> str:
    return hashlib.blake2b("|".join(str(p) for p in parts).encode(), digest_size=16).hexdigest()


def _at(now: float) -> datetime:
    return datetime.fromtimestamp(now, UTC)


@dataclass
class _Cursor:
    pod: str
    lines: tuple[str, ...]


@dataclass
class TwinCollector:
    """The collector's view of one twin chain, read without the network."""

    runtime: ChainRuntime
    scenario_id: str
    head: logic.HeadTracker = field(default_factory=logic.HeadTracker)
    cursors: dict[str, _Cursor] = field(default_factory=dict)
    l1_reads: tuple[logic.L1Read, ...] = ()

    def __post_init__(self) -> None:
        # The chain config the twin writes for the collector, read as the collector reads it.
        text = files.chains_yaml(
            base_url="http://twin", configs=[self.runtime.state.config], kubeconfig_path=Path("kubeconfig")
        )
        (chain,) = chains.parse_chains(text)
        self.l1_reads = logic.l1_reads(chain)

    def poll(self) -> tuple[list[MetricSample], list[LogBatch]]:
        now = self.runtime.state.now
        on_l1 = self._l1()
        samples = [
            self._rpc("op-geth", now, lambda: self._geth(now)),
            self._rpc("op-node", now, lambda: self._op_node(now)),
            self._rpc("op-batcher", now, lambda: self._health("op-batcher") | on_l1.get("op-batcher", {})),
            self._rpc("op-proposer", now, lambda: self._health("op-proposer") | on_l1.get("op-proposer", {})),
        ]
        batches: list[LogBatch] = []
        for component in COMPONENTS:
            sample, batch = self._pod(component, now)
            samples.append(sample)
            if batch is not None:
                batches.append(batch)
        return samples, batches

    def _call(self, component: Component, method: str, *params: Any) -> Any:
        pod = self.runtime.state.pods[component]
        if not pod.ready:
            # What the twin's HTTP route answers for a container that is not running.
            message = f"{component} unavailable: pod {pod.name(CHAIN)} is not ready"
            raise RuntimeError(f"{method} at {CHAIN}/{component}: HTTP 503: {message}")
        # The twin's JSON-RPC route serialises the answer; the collector sees JSON, not Python objects.
        return json.loads(json.dumps(rpc.call(self.runtime.state, component, method, params).result))

    def _geth(self, now: float) -> logic.Metrics:
        block = self._call("op-geth", "eth_getBlockByNumber", "latest", False)
        height, metrics = logic.block_metrics(block)
        metrics |= logic.txpool_metrics(self._call("op-geth", "txpool_status"))
        metrics |= logic.peer_count_metrics(self._call("op-geth", "net_peerCount"))
        self.head, head = logic.track_head(self.head, height, now=now)
        return metrics | head

    def _op_node(self, now: float) -> logic.Metrics:
        metrics = logic.sync_status_metrics(self._call("op-node", "optimism_syncStatus"), now=now)
        return metrics | logic.peer_stats_metrics(self._call("op-node", "opp2p_peerStats"))

    def _health(self, component: Component) -> logic.Metrics:
        self._call(component, "health_status")
        return {}

    def _l1(self) -> dict[str, logic.Metrics]:
        """The batcher's and proposer's L1 series; a read that fails leaves its series out."""
        state = self.runtime.state
        if rpc.l1_unreachable(state):
            return {}  # the twin's L1 route answers 503: every L1 series is a gap this poll
        found: dict[str, logic.Metrics] = {}
        for read in self.l1_reads:
            try:
                answer = rpc.call(state, rpc.L1, read.method, json.loads(json.dumps(read.params)))
                value = logic.l1_value(read, json.loads(json.dumps(answer.result)))
            except (rpc.RpcError, ValueError):
                continue
            found.setdefault(read.component, {})[read.metric] = value
        return found

    def _disk(self, pod_name: str) -> logic.Metrics:
        """``diskUsage`` from the chain node's kubelet stats summary, as the collector reads it."""
        try:
            return logic.data_volume_metrics(self.runtime.stats_summary(), namespace=CHAIN, pod=pod_name)
        except ValueError:
            return {}

    def _rpc(self, component: Component, now: float, work: Callable[[], logic.Metrics]) -> MetricSample:
        try:
            metrics = work()
        except (RuntimeError, ValueError) as exc:
            return self._sample(component, "rpc", now, {}, error=str(exc))
        return self._sample(component, "rpc", now, metrics)

    def _pod(self, component: Component, now: float) -> tuple[MetricSample, LogBatch | None]:
        state = self.runtime.state
        pods = [self.runtime.render_pod(component)] if state.pods[component].exists else []
        pod = logic.pick_pod(pods)
        if pod is None:
            error = f"no pod labelled app.kubernetes.io/name={component} in {CHAIN}"
            return self._sample(component, "k8s", now, {}, error=error), None
        usage = kube.pod_metrics(state, component)
        name = str(pod["metadata"]["name"])
        metrics = logic.pod_metrics(pod, usage, component=component)
        if component == DATA_VOLUME_OF:
            metrics |= self._disk(name)
        return self._sample(component, "k8s", now, metrics), self._new_logs(component, name, now)

    def _new_logs(self, component: Component, pod_name: str, now: float) -> LogBatch | None:
        pod = self.runtime.state.pods[component]
        if not pod.ready and pod.restart_count == 0:
            return None  # the twin answers 400 "waiting to start": the collector ships nothing
        ring = list(self.runtime.logs[component])
        tail = tuple(ring[-LOG_TAIL_LINES:])
        cursor = self.cursors.get(component)
        previous = cursor.lines if cursor is not None and cursor.pod == pod_name else None
        fresh = logic.new_log_lines(previous, tail)
        self.cursors[component] = _Cursor(pod=pod_name, lines=tail)
        if not fresh:
            return None
        event_id = _id(self.scenario_id, "logs", now, component)
        return LogBatch(
            event_id=event_id,
            correlation_id=event_id,
            chain_id=CHAIN,
            component=component,
            pod=pod_name,
            lines=fresh,
            occurred_at=_at(now),
        )

    def _sample(
        self,
        component: str,
        source: MetricSource,
        now: float,
        metrics: Mapping[str, float],
        *,
        error: str | None = None,
    ) -> MetricSample:
        event_id = _id(self.scenario_id, "metrics", now, component, source)
        return MetricSample(
            event_id=event_id,
            correlation_id=event_id,
            chain_id=CHAIN,
            component=component,
            source=source,
            metrics=dict(metrics),
            target_up=error is None,
            error=error,
            occurred_at=_at(now),
        )


def _print(runtime: ChainRuntime, line: LogLine) -> None:
    """A distractor line written into the component's log, in its own format and at sim time."""
    now = runtime.state.now
    text = line.line
    if text is None:
        msg = line.msg or ""
        if line.component == "op-geth":
            text = logs.geth(line.level, now, msg, **line.fields)
        else:
            text = logs.logfmt(line.level, now, msg, **line.fields)
    runtime.logs[line.component].append(text)


def _rollout(runtime: ChainRuntime, component: Component, now: float) -> None:
    """``kubectl rollout restart``: the restartedAt annotation patched onto the pod template."""
    resource = kube.kind_of(component).lower() + "s"
    stamp = _at(now).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": stamp}}}}}
    runtime.patch_workload(resource, component, json.dumps(body).encode(), kube.STRATEGIC)


@dataclass
class _Overrides:
    """Glitches and noise applied to what the collector read, never to the chain itself."""

    scenario: Scenario
    rng: Random
    glitches: list[tuple[float, float, Glitch]] = field(default_factory=list)

    def apply(self, sample: MetricSample, at: float) -> MetricSample:
        metrics = dict(sample.metrics)
        changed = False
        for noise in self.scenario.noise:
            active = noise.from_s <= at and (noise.to_s is None or at <= noise.to_s)
            if active and noise.component == sample.component and noise.metric in metrics:
                metrics[noise.metric] = max(0.0, metrics[noise.metric] + self.rng.gauss(0, noise.sigma))
                changed = True
        for start, end, glitch in self.glitches:
            if start <= at <= end and glitch.component == sample.component and glitch.metric in metrics:
                metrics[glitch.metric] = glitch.value
                changed = True
        return sample.model_copy(update={"metrics": metrics}) if changed else sample


def _apply(step: Step, runtime: ChainRuntime, overrides: _Overrides, *, next_poll: float) -> None:
    if step.inject is not None:
        runtime.inject(step.inject, step.params)
    elif step.clear is not None:
        runtime.clear(step.clear)
    elif step.traffic is not None:
        runtime.set_traffic(step.traffic)
    elif step.log is not None:
        _print(runtime, step.log)
    elif step.glitch is not None:
        # The poll that ends this tick is the first to read the glitched value.
        overrides.glitches.append((next_poll, next_poll + step.glitch.for_s, step.glitch))
    elif step.rollout is not None:
        _rollout(runtime, step.rollout, runtime.state.now)


def generate(scenario: Scenario) -> Iterator[Poll]:
    """Warm-up polls (healthy history), then one poll per block time until ``durationS``."""
    bt = scenario.block_time_s
    runtime = ChainRuntime(ChainConfig(chain=CHAIN, seed=scenario.seed, block_time_s=bt))
    collector = TwinCollector(runtime, scenario_id=scenario.id)
    overrides = _Overrides(scenario, Random(f"noise:{scenario.id}:{scenario.seed}"))
    warmup_ticks = int(scenario.warmup_s // bt)
    ticks = int(scenario.duration_s // bt)
    steps = sorted(scenario.timeline, key=lambda s: s.at_s)
    index = 0
    for tick in range(-warmup_ticks, ticks):
        t = tick * bt
        while index < len(steps) and steps[index].at_s < t + bt:
            _apply(steps[index], runtime, overrides, next_poll=float(t + bt))
            index += 1
        runtime.step()
        at = float(t + bt)
        samples, batches = collector.poll()
        warmup = tick < 0
        if not warmup:
            samples = [overrides.apply(s, at) for s in samples]
        yield Poll(at=at, now=runtime.state.now, samples=tuple(samples), logs=tuple(batches), warmup=warmup)

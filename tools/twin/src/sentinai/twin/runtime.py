"""The running twin: each chain's state, generator, workload specs and pod log rings, plus the clock."""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable, Hashable, Mapping, Sequence
from random import Random
from typing import Any, Final, TypeVar

from sentinai.common import quantity
from sentinai.twin import incidents, kube, rpc, sim
from sentinai.twin.faults import Faults
from sentinai.twin.model import COMPONENTS, ChainConfig, ChainState, Component, Incident, seed_for

T = TypeVar("T")
LOG_RING_LINES: Final = 2000
MAX_CATCH_UP_TICKS: Final = 1000


def encode(value: Any) -> bytes:
    """Compact UTF-8 JSON, as Starlette's ``JSONResponse`` renders it."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def _rpc_key(component: rpc.Target, method: str, params: Sequence[Any]) -> Hashable:
    return ("rpc", component, method, json.dumps(params))


class ChainRuntime:
    """One simulated chain; every mutation goes through here, on the event loop's thread."""

    def __init__(self, config: ChainConfig, *, log_lines: int = LOG_RING_LINES) -> None:
        self.rng = Random(seed_for(config.seed, config.chain))
        self.state: ChainState = sim.initial_state(config, self.rng)
        self.workloads = {c: kube.initial_workload(self.state, c) for c in COMPONENTS}
        self._log_lines = log_lines
        self.logs: dict[Component, deque[str]] = {c: deque(maxlen=log_lines) for c in COMPONENTS}
        self.previous_logs: dict[Component, deque[str] | None] = dict.fromkeys(COMPONENTS)
        self._containers = {c: self._container_key(c) for c in COMPONENTS}
        # Answers rendered from the current state, reused until it changes: collectors read the same
        # head, pods and metrics several times per block. States are immutable, so a new one is a
        # new object; a workload patch (which may leave the state alone) clears the memo itself.
        self._memo: dict[Hashable, Any] = {}
        self._memo_state: ChainState | None = None

    @property
    def chain(self) -> str:
        return self.state.config.chain

    def _memoised(self, key: Hashable, compute: Callable[[], T]) -> T:
        """``compute()`` once per state; callers only serialise the answer, never change it."""
        if self._memo_state is not self.state:
            self._memo.clear()
            self._memo_state = self.state
        if key not in self._memo:
            self._memo[key] = compute()
        answer: T = self._memo[key]
        return answer

    def _container_key(self, component: Component) -> tuple[int, int]:
        pod = self.state.pods[component]
        return pod.incarnation, pod.restart_count

    def _rotate_logs(self) -> None:
        """A new container starts with an empty log; a restarted one keeps the last as ``previous``."""
        for component in COMPONENTS:
            key = self._container_key(component)
            if key == self._containers[component]:
                continue
            same_pod = key[0] == self._containers[component][0]
            self.previous_logs[component] = self.logs[component] if same_pod else None
            self.logs[component] = deque(maxlen=self._log_lines)
            self._containers[component] = key

    def step(self, ticks: int = 1) -> None:
        for _ in range(ticks):
            self.state, lines = sim.step(self.state, self.rng)
            self._rotate_logs()
            for line in lines:
                self.logs[line.component].append(line.text)

    def inject(self, kind: str, params: Mapping[str, object] | None) -> Incident:
        incident = incidents.make(kind, params, tick=self.state.tick)
        self.state = sim.inject(self.state, incident)
        return incident

    def clear(self, kind: str | None = None) -> tuple[str, ...]:
        if kind is not None and kind not in incidents.KINDS:
            raise incidents.UnknownIncidentError(kind)
        self.state, cleared = sim.clear(self.state, kind)
        return cleared

    def set_traffic(self, multiplier: float) -> None:
        self.state = sim.set_traffic(self.state, multiplier)

    def call(self, component: rpc.Target, method: str, params: Sequence[Any]) -> Any:
        key = _rpc_key(component, method, params)
        if self._memo_state is self.state and key in self._memo:
            return self._memo[key]
        answer = rpc.call(self.state, component, method, params)
        if answer.state is self.state:  # a read: the same question gets the same answer until the state moves
            return self._memoised(key, lambda: answer.result)
        self.state = answer.state
        return answer.result

    def call_encoded(self, component: rpc.Target, method: str, params: Sequence[Any]) -> bytes:
        """:meth:`call`'s result as JSON; a read's is encoded once per state, like its answer."""
        state = self.state
        result = self.call(component, method, params)
        if self.state is not state:  # a write: its own answer
            return encode(result)
        return self.encoded(_rpc_key(component, method, params), lambda: result)

    def encoded(self, key: Hashable, compute: Callable[[], Any]) -> bytes:
        """``compute()`` as compact JSON, once per state: a collector asks for the same lists and the
        same head several times per block, and encoding them was most of what an answer cost."""
        return self._memoised(("json", key), lambda: encode(compute()))

    # --- Kubernetes ---

    def workload(self, resource: str, name: str) -> Component:
        """The component behind ``deployments/<name>`` or ``statefulsets/<name>``, else 404."""
        for component in COMPONENTS:
            kind = kube.kind_of(component)
            if name == component and resource == kind.lower() + "s":
                return component
        raise kube.not_found(resource, name, group="apps")

    def pod(self, name: str) -> Component:
        for component in COMPONENTS:
            pod = self.state.pods[component]
            if pod.exists and pod.name(self.chain) == name:
                return component
        raise kube.not_found("pods", name)

    def render_workload(self, component: Component) -> kube.Obj:
        return kube.render_workload(self.state, self.workloads[component], component)

    def render_pod(self, component: Component) -> kube.Obj:
        return self._memoised(
            ("pod", component), lambda: kube.render_pod(self.state, self.workloads[component], component)
        )

    def pod_metrics(self, component: Component) -> kube.Obj | None:
        return self._memoised(("metrics", component), lambda: kube.pod_metrics(self.state, component))

    def stats_summary(self) -> kube.Obj:
        """The kubelet stats summary of the chain's node."""
        return self._memoised("stats", lambda: kube.stats_summary(self.state))

    def patch_workload(self, resource: str, name: str, body: bytes, content_type: str) -> kube.Obj:
        component = self.workload(resource, name)
        before = self.workloads[component]
        after = kube.apply_patch(before, body, content_type)
        # The server owns identity, generation and status; a patch may only add labels/annotations.
        meta: kube.Obj = after["metadata"] if isinstance(after.get("metadata"), dict) else {}
        after["metadata"] = {
            **before["metadata"],
            "labels": meta.get("labels") or {},
            **({"annotations": meta["annotations"]} if meta.get("annotations") else {}),
        }
        after["apiVersion"], after["kind"] = before["apiVersion"], before["kind"]
        after.pop("status", None)
        resources, replicas = kube.validate(before, after, component)
        _canonical_quantities(after, component)
        if after["spec"] != before["spec"]:
            after["metadata"]["generation"] = before["metadata"]["generation"] + 1
            self.state = sim.roll(
                self.state,
                component,
                resources=resources,
                replicas=replicas,
                template_changed=after["spec"]["template"] != before["spec"]["template"],
            )
        self.workloads[component] = after
        self._memo_state = None
        self._rotate_logs()
        return self.render_workload(component)

    def delete_pod(self, name: str) -> kube.Obj:
        component = self.pod(name)
        deleted = self.render_pod(component)
        self.state = sim.restart_pod(self.state, component)
        self._rotate_logs()
        return deleted


def _canonical_quantities(workload: kube.Obj, component: Component) -> None:
    """Store quantities the way the API server does, so "2000m" and "2" are the same template."""
    container = kube.container_of(workload, component)
    if container is None:
        return
    for section in ("requests", "limits"):
        values = (container.get("resources") or {}).get(section) or {}
        if "cpu" in values:
            values["cpu"] = quantity.format_cpu(quantity.millicores(values["cpu"]))
        if "memory" in values:
            values["memory"] = quantity.format_memory(quantity.byte_count(values["memory"]))


class Twin:
    """All chains of one twin process and the clock that advances them."""

    def __init__(self, configs: Sequence[ChainConfig], *, token: str, speed: float = 1.0) -> None:
        self.chains = {c.chain: ChainRuntime(c) for c in configs}
        self.token = token
        self.speed = speed
        self.faults = Faults()

    def chain(self, chain: str) -> ChainRuntime | None:
        return self.chains.get(chain)

    def chain_on_node(self, node: str) -> ChainRuntime | None:
        """Each chain's pods run on a node of their own."""
        return next((r for r in self.chains.values() if kube.node_name(r.chain) == node), None)

    async def run_clock(self) -> None:
        """Map wall-clock time to ticks: each chain advances one tick per block time ÷ speed."""
        start = time.monotonic()
        done = dict.fromkeys(self.chains, 0)
        while True:
            elapsed = (time.monotonic() - start) * self.speed
            next_due = float("inf")
            for name, runtime in self.chains.items():
                block_time = runtime.state.config.block_time_s
                due = int(elapsed // block_time)
                behind = due - done[name]
                if behind > 0:
                    # A stalled loop catches up, but never freezes the server to replay hours.
                    runtime.step(min(behind, MAX_CATCH_UP_TICKS))
                    done[name] = due
                next_due = min(next_due, (due + 1) * block_time)
            await asyncio.sleep(max(0.01, (next_due - elapsed) / self.speed))

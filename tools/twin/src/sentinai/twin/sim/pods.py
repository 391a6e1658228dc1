"""The pods' processes during a tick: restart windows count down, memory drifts or leaks, OOM kills and
crash loops, and the lines a process prints when it starts."""

from __future__ import annotations

from dataclasses import replace
from random import Random
from typing import Final

from sentinai.common.quantity import GI, MI
from sentinai.twin.model import RESTART_TICKS, Component, Pod, Resources, Terminated
from sentinai.twin.sim.scratch import Tick

DEFAULT_RESOURCES: Final[dict[Component, Resources]] = {
    "op-geth": Resources(cpu_request_m=1000, memory_request=4 * GI, memory_limit=8 * GI),
    "op-node": Resources(cpu_request_m=500, memory_request=1 * GI, memory_limit=2 * GI),
    "op-batcher": Resources(cpu_request_m=100, memory_request=256 * MI, memory_limit=512 * MI),
    "op-proposer": Resources(cpu_request_m=100, memory_request=128 * MI, memory_limit=256 * MI),
}
MEMORY_BASELINE: Final[dict[Component, int]] = {
    "op-geth": int(3.2 * GI),
    "op-node": 700 * MI,
    "op-batcher": 180 * MI,
    "op-proposer": 110 * MI,
}
GETH_VERSION: Final = "Geth/v1.101503.2-stable-2ea8b6e2/linux-amd64/go1.23.6"
OP_NODE_VERSION: Final = "v1.13.2"


def advance_pods(t: Tick, rng: Random) -> None:
    """Restart windows count down; OOM kills and crash loops happen here."""
    tick = t.state.tick
    for component, current in t.pods.items():
        if not current.exists:
            continue
        pod = current
        if pod.down_ticks > 0:
            pod = replace(pod, down_ticks=pod.down_ticks - 1)
            if pod.down_ticks == 0:
                pod = replace(pod, started_tick=tick, memory_bytes=MEMORY_BASELINE[component] // 3)
                _startup_lines(t, component)
        elif component == "op-geth":
            pod = _geth_memory(t, pod, rng)
        elif component == "op-node" and t.fx.jwt_bad and tick - pod.started_tick >= 1:
            t.out.op(
                "op-node",
                "error",
                "Error initializing the rollup node",
                err="failed to initialize engine: 401 Unauthorized: signature is invalid",
            )
            pod = _killed(pod, tick=tick, reason="Error", exit_code=1, down=RESTART_TICKS + 1)
        else:
            drift = (MEMORY_BASELINE[component] - pod.memory_bytes) * 0.2
            pod = replace(pod, memory_bytes=int(pod.memory_bytes + drift + rng.gauss(0, 4 * MI)))
        t.pods[component] = pod


def _geth_memory(t: Tick, pod: Pod, rng: Random) -> Pod:
    leak = t.fx.leak_bytes_per_tick
    if leak:
        memory = pod.memory_bytes + leak + int(rng.gauss(0, 8 * MI))
    else:
        memory = int(pod.memory_bytes + (MEMORY_BASELINE["op-geth"] - pod.memory_bytes) * 0.2)
        memory += int(rng.gauss(0, 24 * MI))
    limit = pod.resources.memory_limit
    if limit is not None and memory >= limit:
        # The kernel kills the container with no last words; the pool lives in memory and is lost.
        t.pending = 0
        return _killed(pod, tick=t.state.tick, reason="OOMKilled", exit_code=137, down=RESTART_TICKS)
    return replace(pod, memory_bytes=memory)


def _killed(pod: Pod, *, tick: int, reason: str, exit_code: int, down: int) -> Pod:
    return replace(
        pod,
        restart_count=pod.restart_count + 1,
        last_terminated=Terminated(
            reason=reason, exit_code=exit_code, started_tick=pod.started_tick, finished_tick=tick
        ),
        down_ticks=down,
        waiting_reason="CrashLoopBackOff",
        memory_bytes=0,
        cpu_cores=0.0,
    )


def _startup_lines(t: Tick, component: Component) -> None:
    if component == "op-geth":
        t.out.geth("info", "Maximum peer count", ETH=50, total=50)
        t.out.geth("info", "Starting peer-to-peer node", instance=GETH_VERSION)
        t.out.geth("info", "Loaded most recent local block", number=t.blocks[-1].number)
    else:
        t.out.op(component, "info", "Starting " + component.removeprefix("op-"), version=OP_NODE_VERSION)
        if component == "op-node":
            t.out.op(component, "info", "Rollup node started")

"""The load on the chain during a tick: traffic, the CPU it costs each pod, and the transactions it
adds to op-geth's pool."""

from __future__ import annotations

import math
from dataclasses import replace
from random import Random

from sentinai.twin.incidents import Effects
from sentinai.twin.logs import short_hash
from sentinai.twin.model import TXPOOL_PENDING_CAP, ChainState, digest
from sentinai.twin.sim.scratch import Tick


def traffic(state: ChainState, fx: Effects, rng: Random) -> tuple[float, float]:
    """tx/s: a smooth daily cycle, slowly wandering noise, the operator's multiplier, incidents."""
    cfg = state.config
    # The cycle is counted from the twin's start (at its mean, rising), not from the wall clock's
    # midnight: what a run shows, and whether a cpu_spike saturates op-geth, must not depend on the
    # hour it was started. The manual epoch is a whole number of days, so manual runs are unchanged.
    cycle = 1 + 0.3 * math.sin(2 * math.pi * (state.now - cfg.epoch_s) / cfg.cycle_s)
    noise = 0.85 * state.traffic_noise + rng.gauss(0, 0.03)
    tps = cfg.base_tps * cycle * (1 + noise) * state.traffic_multiplier * fx.traffic_factor
    return max(0.0, tps), noise


def cpu_usage(t: Tick, tps: float, rng: Random) -> float:
    """CPU per pod; returns op-geth's demand over its request (above 1 the chain saturates)."""
    demand = {
        "op-geth": 0.1 + 0.02 * tps + 0.0004 * t.fx.spam_tps + abs(rng.gauss(0, 0.01)),
        "op-node": 0.08 + 0.002 * tps + abs(rng.gauss(0, 0.005)),
        "op-batcher": 0.02 + abs(rng.gauss(0, 0.002)),
        "op-proposer": 0.01 + abs(rng.gauss(0, 0.001)),
    }
    saturation = 0.0
    for component, pod in t.pods.items():
        if not pod.ready:
            continue
        request = pod.cpu_request_cores
        if component == "op-geth":
            saturation = demand[component] / request
        # Without a CPU limit a pod may burst a little past its request, but not much on a busy node.
        used = min(demand[component], request * 1.08)
        if pod.resources.cpu_limit_m is not None:
            used = min(used, pod.resources.cpu_limit_m / 1000)
        t.pods[component] = replace(pod, cpu_cores=used)
    return saturation


def fill_pool(t: Tick, tps: float, rng: Random) -> None:
    """This tick's transactions arrive in op-geth's pool; what does not fit is discarded."""
    if not t.pods["op-geth"].ready:
        return
    expected = (tps + t.fx.spam_tps) * t.state.config.block_time_s
    arrivals = max(0, round(expected + rng.gauss(0, math.sqrt(expected))))
    overflow = t.pending + arrivals - TXPOOL_PENDING_CAP
    t.pending = min(TXPOOL_PENDING_CAP, t.pending + arrivals)
    if overflow > 0:
        t.out.geth(
            "warn",
            "Discarding transaction",
            reason="txpool is full",
            err="txpool is full",
            discarded=overflow,
            hash=short_hash(digest("dropped", t.state.tick)),
        )

"""The simulation step: one tick (one L2 block time) of an OP Stack chain, as a pure function.

``step(state, rng)`` returns the next state and the log lines the components printed during the
tick. Nothing here reads a clock or does I/O: sim time is ``epoch + tick × block time`` and all
randomness comes from the ``rng`` passed in, so a seed reproduces a run line for line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from random import Random
from typing import Final

from sentinai.twin import incidents, logs
from sentinai.twin.incidents import CURED_BY_RESTART, Effects
from sentinai.twin.logs import Level, Value, block_id, short_hash
from sentinai.twin.model import (
    COMPONENTS,
    DEPOSIT_GAS,
    DISK_CAPACITY_BYTES,
    ELASTICITY,
    GAS_LIMIT,
    GAS_PER_TX,
    L1_BLOCK_TIME_S,
    L1_CONFS,
    L1_FINALITY_BLOCKS,
    MAX_SEQUENCER_DRIFT_S,
    MIN_BASE_FEE_WEI,
    RECENT_BLOCKS,
    RESTART_TICKS,
    TXPOOL_PENDING_CAP,
    Block,
    ChainConfig,
    ChainState,
    Component,
    Incident,
    LogLine,
    Pod,
    Resources,
    Terminated,
    digest,
)
from sentinai.twin.quantity import GI, MI

BASE_FEE_DENOMINATOR: Final = 250
PROPOSE_EVERY_TICKS: Final = 30
MAX_STRETCH: Final = 6.0
DISK_FREE_NORMAL: Final = 380 * GI
BATCHER_LOW_BALANCE_WEI: Final = 3 * 10**14
BATCHER_FUNDED_WEI: Final = 12 * 10**18
PROPOSAL_COST_WEI: Final = 9 * 10**14  # ~90k gas of proposeL2Output at ~10 gwei
PROPOSER_LOW_BALANCE_WEI: Final = 5 * 10**17
PROPOSER_FUNDED_WEI: Final = 5 * 10**18

DEFAULT_RESOURCES: Final[dict[Component, Resources]] = {
    "op-geth": Resources(cpu_request_m=1000, memory_request=4 * GI, memory_limit=8 * GI),
    "op-node": Resources(cpu_request_m=500, memory_request=1 * GI, memory_limit=2 * GI),
    "op-batcher": Resources(cpu_request_m=100, memory_request=256 * MI, memory_limit=512 * MI),
    "op-proposer": Resources(cpu_request_m=100, memory_request=128 * MI, memory_limit=256 * MI),
}
_MEMORY_BASELINE: Final[dict[Component, int]] = {
    "op-geth": int(3.2 * GI),
    "op-node": 700 * MI,
    "op-batcher": 180 * MI,
    "op-proposer": 110 * MI,
}
GETH_VERSION: Final = "Geth/v1.101503.2-stable-2ea8b6e2/linux-amd64/go1.23.6"
OP_NODE_VERSION: Final = "v1.13.2"


class _Printer:
    """Collects a tick's log lines, each a few milliseconds after the previous one."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.lines: list[LogLine] = []

    def _at(self) -> float:
        return self.now + 0.003 + 0.007 * len(self.lines)

    def geth(self, level: Level, msg: str, **fields: Value) -> None:
        self.lines.append(LogLine("op-geth", logs.geth(level, self._at(), msg, **fields)))

    def op(self, component: Component, level: Level, msg: str, **fields: Value) -> None:
        self.lines.append(LogLine(component, logs.logfmt(level, self._at(), msg, **fields)))


def initial_state(config: ChainConfig, rng: Random) -> ChainState:
    """A healthy chain that has been running for a day when the twin starts."""
    bt = config.block_time_s
    head_number = 4_000_000 + rng.randrange(1_000_000)
    l1_head = 21_000_000 + rng.randrange(500_000)
    now = int(config.epoch_s)
    state = ChainState(
        config=config,
        tick=0,
        pods={},
        blocks=(),
        l1_head=l1_head,
        l1_head_ts=now - rng.randrange(L1_BLOCK_TIME_S),
    )
    origin, seq = l1_head - L1_CONFS - 8, 0
    blocks: list[Block] = []
    for number in range(head_number - RECENT_BLOCKS + 1, head_number + 1):
        ts = now - (head_number - number) * bt
        if origin + 1 <= l1_head - L1_CONFS and state.l1_timestamp(origin + 1) <= ts:
            origin, seq = origin + 1, 0
        elif blocks:
            seq += 1
        txs = max(0, round(config.base_tps * bt + rng.gauss(0, 4)))
        blocks.append(
            Block(
                number=number,
                timestamp=ts,
                gas_used=DEPOSIT_GAS + txs * GAS_PER_TX,
                base_fee=MIN_BASE_FEE_WEI,
                tx_count=txs + 1,
                origin=origin,
                sequence_number=seq,
            )
        )
    pods = {
        c: Pod(
            component=c,
            resources=DEFAULT_RESOURCES[c],
            created_tick=-86_400 // bt,
            started_tick=-86_400 // bt,
            down_ticks=0,
            memory_bytes=_MEMORY_BASELINE[c],
        )
        for c in COMPONENTS
    }
    return replace(
        state,
        pods=pods,
        blocks=tuple(blocks),
        safe_l2=head_number - 12,
        confirmed_l2=head_number - 12,
        batched_to=head_number - 12,
        finalized_l2=head_number - 400,
        proposed_l2=head_number - 420,
        next_batch_size=rng.randint(24, 36),
        tps=config.base_tps,
    )


@dataclass
class _Tick:
    """Mutable scratch for one step; frozen into the next ChainState at the end."""

    state: ChainState
    fx: Effects
    out: _Printer
    pods: dict[Component, Pod]
    blocks: list[Block]
    pending: int
    l1_head: int
    l1_head_ts: int


def step(state: ChainState, rng: Random) -> tuple[ChainState, tuple[LogLine, ...]]:
    """Advance the chain by one tick."""
    tick = state.tick + 1
    state = replace(state, tick=tick)
    t = _Tick(
        state=state,
        fx=incidents.effects(state.incidents, tick=tick),
        out=_Printer(state.now),
        pods=dict(state.pods),
        blocks=list(state.blocks),
        pending=state.pending,
        l1_head=state.l1_head,
        l1_head_ts=state.l1_head_ts,
    )
    _pods(t, rng)
    tps, noise = _traffic(state, t.fx, rng)
    saturation = _cpu(t, tps, rng)
    reorgs = _l1(t)
    state = replace(state, l1_head=t.l1_head, l1_head_ts=t.l1_head_ts, l1_reorgs=reorgs)
    t.state = state
    _arrivals(t, tps, rng)
    progress = _sequence(t, saturation, rng)
    state = replace(
        t.state,
        pods=t.pods,
        blocks=tuple(t.blocks[-RECENT_BLOCKS:]),
        pending=t.pending,
        block_progress=progress,
        tps=tps,
        traffic_noise=noise,
        saturation=saturation,
        queued=max(0, min(24, state.queued + rng.choice((-1, 0, 0, 1)))),
    )
    state = _batcher(state, t, rng)
    state = _finality(state)
    state = _proposer(state, t)
    state = _peers_disk(state, t, rng)
    return state, tuple(t.out.lines)


def _pods(t: _Tick, rng: Random) -> None:
    """Restart windows count down; OOM kills and crash loops happen here."""
    tick = t.state.tick
    for component, current in t.pods.items():
        if not current.exists:
            continue
        pod = current
        if pod.down_ticks > 0:
            pod = replace(pod, down_ticks=pod.down_ticks - 1)
            if pod.down_ticks == 0:
                pod = replace(pod, started_tick=tick, memory_bytes=_MEMORY_BASELINE[component] // 3)
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
            drift = (_MEMORY_BASELINE[component] - pod.memory_bytes) * 0.2
            pod = replace(pod, memory_bytes=int(pod.memory_bytes + drift + rng.gauss(0, 4 * MI)))
        t.pods[component] = pod


def _geth_memory(t: _Tick, pod: Pod, rng: Random) -> Pod:
    leak = t.fx.leak_bytes_per_tick
    if leak:
        memory = pod.memory_bytes + leak + int(rng.gauss(0, 8 * MI))
    else:
        memory = int(pod.memory_bytes + (_MEMORY_BASELINE["op-geth"] - pod.memory_bytes) * 0.2)
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


def _startup_lines(t: _Tick, component: Component) -> None:
    if component == "op-geth":
        t.out.geth("info", "Maximum peer count", ETH=50, total=50)
        t.out.geth("info", "Starting peer-to-peer node", instance=GETH_VERSION)
        t.out.geth("info", "Loaded most recent local block", number=t.blocks[-1].number)
    else:
        t.out.op(component, "info", "Starting " + component.removeprefix("op-"), version=OP_NODE_VERSION)
        if component == "op-node":
            t.out.op(component, "info", "Rollup node started")


def _traffic(state: ChainState, fx: Effects, rng: Random) -> tuple[float, float]:
    """tx/s: a smooth daily cycle, slowly wandering noise, the operator's multiplier, incidents."""
    cfg = state.config
    # The cycle is counted from the twin's start (at its mean, rising), not from the wall clock's
    # midnight: what a run shows, and whether a cpu_spike saturates op-geth, must not depend on the
    # hour it was started. The manual epoch is a whole number of days, so manual runs are unchanged.
    cycle = 1 + 0.3 * math.sin(2 * math.pi * (state.now - cfg.epoch_s) / cfg.cycle_s)
    noise = 0.85 * state.traffic_noise + rng.gauss(0, 0.03)
    tps = cfg.base_tps * cycle * (1 + noise) * state.traffic_multiplier * fx.traffic_factor
    return max(0.0, tps), noise


def _cpu(t: _Tick, tps: float, rng: Random) -> float:
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


def _l1(t: _Tick) -> tuple[int, ...]:
    reorgs = t.state.l1_reorgs
    if t.fx.l1_down:
        if t.pods["op-node"].ready:
            err = "503 Service Unavailable"
            t.out.op("op-node", "warn", "failed to poll L1 block", label="latest", err=err)
            t.out.op(
                "op-node", "warn", "L1 temporary error", err=f"temp: failed to fetch L1 block info: {err}"
            )
        return reorgs
    while t.l1_head_ts + L1_BLOCK_TIME_S <= t.state.now:
        t.l1_head += 1
        t.l1_head_ts += L1_BLOCK_TIME_S
    if t.fx.reorg_depth and t.pods["op-node"].ready:
        old = t.state.l1_hash(t.l1_head)
        reorgs = (*reorgs, t.l1_head - t.fx.reorg_depth + 1)
        new = digest(t.state.config.chain, "l1", t.l1_head, sum(1 for r in reorgs if r <= t.l1_head))
        t.out.op(
            "op-node",
            "warn",
            "L1 head signal indicates a possible L1 re-org",
            old_l1_head=block_id(old, t.l1_head),
            new_l1_head_parent=block_id(new, t.l1_head - 1),
            new_l1_head=block_id(new, t.l1_head),
        )
        t.out.op("op-node", "info", "Walking back L1Block by hash", depth=t.fx.reorg_depth)
    return reorgs


def _arrivals(t: _Tick, tps: float, rng: Random) -> None:
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


def _sequence(t: _Tick, saturation: float, rng: Random) -> float:
    """Build this tick's L2 blocks; returns the carried block progress."""
    state, out, fx = t.state, t.out, t.fx
    bt = state.config.block_time_s
    geth_up, node_up = t.pods["op-geth"].ready, t.pods["op-node"].ready
    head = t.blocks[-1]
    if not node_up:
        return 0.0
    if not state.sequencer_active:
        return 0.0
    if fx.jwt_bad or not geth_up:
        err = "dial tcp 10.42.0.12:8551: connect: connection refused"
        out.op("op-node", "warn", "Engine temporary error", err=err)
        return 0.0
    if fx.engine_failing:
        out.op(
            "op-node",
            "error",
            "Failed to share forkchoice-updated signal",
            err='Post "http://op-geth-0.op-geth:8551": dial tcp 10.42.0.12:8551: i/o timeout',
        )
        out.op("op-node", "error", "Derivation process error", err="engine: forkchoice update failed")
        if state.tick % 5 == 0:
            out.geth(
                "warn",
                "Beacon client online, but no consensus updates received in a while. "
                "Please fix your beacon client to follow the chain!",
            )
        return 0.0
    if fx.sequencer_stalled:
        out.op(
            "op-node",
            "error",
            "Engine failed temporarily, backing off sequencer",
            err="temp: failed to start building on top of L2 chain "
            f"{block_id(state.l2_hash(head.number), head.number)}"
            ", error (*rpc.jsonError): context deadline exceeded",
        )
        return 0.0
    if head.timestamp + bt - state.l1_timestamp(
        head.origin
    ) > MAX_SEQUENCER_DRIFT_S and not _can_advance_origin(t, head.timestamp + bt, head.origin):
        out.op(
            "op-node",
            "error",
            "Next L2 block time is past the sequencer drift + current origin time",
            origin=block_id(state.l1_hash(head.origin), head.origin),
        )
        return 0.0

    stretch = min(MAX_STRETCH, max(1.0, saturation) ** 2.5)
    behind = int(state.now - head.timestamp) // bt
    rate = 2.0 if stretch == 1.0 and behind > 1 else 1.0 / stretch  # a healthy sequencer catches up
    progress = state.block_progress + rate
    count = min(int(progress), behind, 2)
    for _ in range(count):
        _build_block(t, rng)
    if saturation > 1.0 and state.tick % 2 == 0:
        out.geth("warn", "Database compacting, degraded performance", database="/data/geth/chaindata")
    return min(progress - count, 1.0)


def _can_advance_origin(t: _Tick, ts: int, origin: int) -> bool:
    return origin + 1 <= t.l1_head - L1_CONFS and t.state.l1_timestamp(origin + 1) <= ts


def next_base_fee(parent: Block) -> int:
    target = GAS_LIMIT // ELASTICITY
    delta = parent.base_fee * (parent.gas_used - target) // target // BASE_FEE_DENOMINATOR
    if parent.gas_used > target:
        delta = max(1, delta)
    return max(MIN_BASE_FEE_WEI, parent.base_fee + delta)


def _build_block(t: _Tick, rng: Random) -> None:
    state, out = t.state, t.out
    parent = t.blocks[-1]
    ts = parent.timestamp + state.config.block_time_s
    if _can_advance_origin(t, ts, parent.origin):
        origin, seq = parent.origin + 1, 0
    else:
        origin, seq = parent.origin, parent.sequence_number + 1
    capacity = (GAS_LIMIT - DEPOSIT_GAS) // GAS_PER_TX
    included = min(t.pending, capacity)
    t.pending -= included
    gas_used = min(GAS_LIMIT, DEPOSIT_GAS + int(included * GAS_PER_TX * rng.uniform(0.92, 1.0)))
    block = Block(
        number=parent.number + 1,
        timestamp=ts,
        gas_used=gas_used,
        base_fee=next_base_fee(parent),
        tx_count=included + 1,
        origin=origin,
        sequence_number=seq,
    )
    t.blocks.append(block)
    h = state.l2_hash(block.number)
    elapsed_ms = 4 + included * 0.09 * max(1.0, state.saturation)
    payload_id = digest("payload", block.number)[:18]
    out.geth("info", "Starting work on payload", id=payload_id)
    out.geth(
        "info",
        "Imported new potential chain segment",
        number=block.number,
        hash=short_hash(h),
        blocks=1,
        txs=block.tx_count,
        mgas=round(gas_used / 1e6, 3),
        elapsed=f"{elapsed_ms:.3f}ms",
        mgasps=round(gas_used / 1e3 / elapsed_ms, 3),
    )
    out.geth(
        "info",
        "Chain head was updated",
        number=block.number,
        hash=short_hash(h),
        root=short_hash(digest("root", block.number)),
        elapsed=f"{elapsed_ms / 20:.3f}ms",
    )
    out.op(
        "op-node",
        "info",
        "Sequencer inserted block",
        block=block_id(h, block.number),
        parent=block_id(state.l2_hash(parent.number), parent.number),
        txs=block.tx_count,
        time=ts,
        l1Origin=block_id(state.l1_hash(origin), origin),
    )


def _batcher(state: ChainState, t: _Tick, rng: Random) -> ChainState:
    """The batcher hands unsafe blocks to L1; op-node derives them back as the safe head."""
    fx, out = t.fx, t.out
    balance = (
        min(state.batcher_balance_wei, BATCHER_LOW_BALANCE_WEI)
        if fx.batcher_failing
        else (
            state.batcher_balance_wei
            if state.batcher_balance_wei > BATCHER_LOW_BALANCE_WEI
            else BATCHER_FUNDED_WEI
        )
    )
    state = replace(state, batcher_balance_wei=balance)
    if not (state.pods["op-batcher"].ready and state.batcher_active):
        return state
    if fx.l1_down:
        out.op("op-batcher", "warn", "Failed to query L1 tip", err="503 Service Unavailable")
        return state
    head = state.head.number
    if state.pending_batch is None and head - state.batched_to >= state.next_batch_size:
        if fx.batcher_failing:
            err = (
                "insufficient funds for gas * price + value: "
                f"balance {state.batcher_balance_wei}, tx cost 2113000000000000"
            )
            out.op("op-batcher", "warn", "unable to publish transaction", service="batcher", err=err)
            if state.tick % 3 == 0:
                out.op("op-batcher", "warn", "transaction is underpriced", service="batcher")
            out.op("op-batcher", "error", "Error publishing tx to l1", err=err)
            return state
        state = replace(
            state,
            pending_batch=(head, state.l1_head + 1),
            batched_to=head,
            next_batch_size=rng.randint(24, 36),
            batcher_balance_wei=state.batcher_balance_wei - 21 * 10**13,
        )
    if state.pending_batch is not None and state.l1_head >= state.pending_batch[1]:
        l2, l1 = state.pending_batch
        out.op(
            "op-batcher",
            "info",
            "Transaction confirmed",
            tx=digest("batch", l2),
            block=block_id(state.l1_hash(l1), l1),
        )
        state = replace(state, pending_batch=None, confirmed_l2=l2)
    if state.pods["op-node"].ready and state.confirmed_l2 > state.safe_l2:
        state = replace(
            state,
            safe_l2=state.confirmed_l2,
            safe_history=(*state.safe_history, (state.l1_head, state.confirmed_l2))[-128:],
        )
    return state


def _finality(state: ChainState) -> ChainState:
    finalized_l1 = state.l1_head - L1_FINALITY_BLOCKS
    final = [l2 for l1, l2 in state.safe_history if l1 <= finalized_l1]
    if not final:
        return state
    return replace(
        state,
        finalized_l2=max(state.finalized_l2, *final),
        safe_history=tuple((l1, l2) for l1, l2 in state.safe_history if l1 > finalized_l1),
    )


def _proposer(state: ChainState, t: _Tick) -> ChainState:
    if state.tick % PROPOSE_EVERY_TICKS or not (state.pods["op-proposer"].ready and state.proposer_active):
        return state
    out = t.out
    if t.fx.proposer_failing or t.fx.l1_down:
        out.op(
            "op-proposer",
            "error",
            "Failed to send proposal transaction",
            err="failed to send tx: context deadline exceeded",
            l2_block=state.safe_l2,
        )
        return state
    if state.safe_l2 <= state.proposed_l2:
        return state
    output = digest("output", state.safe_l2)
    out.op("op-proposer", "info", "Proposing output root", output=output, block=state.safe_l2)
    out.op(
        "op-proposer",
        "info",
        "Proposer tx successfully published",
        tx_hash=digest("proposal", state.safe_l2),
        l1blocknum=state.l1_head,
        l2blocknum=state.safe_l2,
    )
    balance = state.proposer_balance_wei - PROPOSAL_COST_WEI
    # An operator tops the key up before it runs dry; an empty proposer key is not one of the incidents.
    balance = balance if balance > PROPOSER_LOW_BALANCE_WEI else PROPOSER_FUNDED_WEI
    return replace(state, proposed_l2=state.safe_l2, proposer_balance_wei=balance)


def _peers_disk(state: ChainState, t: _Tick, rng: Random) -> ChainState:
    fx, out, tick = t.fx, t.out, state.tick
    if fx.peers_lost:
        node_peers, geth_peers = 0, 0
        if tick % 3 == 0 and state.pods["op-node"].ready:
            out.op(
                "op-node",
                "warn",
                "error reconnecting to static peer",
                peer="16Uiu2HAm" + digest("peer", tick)[2:40],
                err="failed to dial: context deadline exceeded",
            )
        if tick % 5 == 0 and state.pods["op-geth"].ready:
            out.geth("info", "Looking for peers", peercount=0, tried=12, static=2)
    else:
        node_peers = max(
            0,
            min(
                24,
                state.node_peers + 2
                if state.node_peers < 12
                else state.node_peers + rng.choice((-1, 0, 0, 1)),
            ),
        )
        geth_peers = max(
            0,
            min(
                10,
                state.geth_peers + 1
                if state.geth_peers < 4
                else state.geth_peers + rng.choice((-1, 0, 0, 1)),
            ),
        )
    if fx.disk_free_bytes is not None:
        disk = min(fx.disk_free_bytes, DISK_CAPACITY_BYTES)
        if tick % 5 == 0 and state.pods["op-geth"].ready:
            out.geth(
                "warn",
                "Disk space is running low. Geth will shutdown if disk space runs below critical level.",
                available=f"{disk / GI:.2f} GiB",
                critical_level="1.00 GiB",
                path="/data/geth",
            )
    else:
        # An operator cleared the pressure (pruned or expanded the volume); then slow growth again.
        disk = state.disk_free_bytes if state.disk_free_bytes > 50 * GI else DISK_FREE_NORMAL
        disk -= 2 * MI
    return replace(state, node_peers=node_peers, geth_peers=geth_peers, disk_free_bytes=disk)


# --- operations the control API and the Kubernetes API apply between ticks ---------------------------


def inject(state: ChainState, incident: Incident) -> ChainState:
    """Start ``incident``; injecting a kind that is already active replaces its parameters."""
    kept = tuple(i for i in state.incidents if i.kind != incident.kind)
    return replace(state, incidents=(*kept, incident))


def clear(state: ChainState, kind: str | None = None) -> tuple[ChainState, tuple[str, ...]]:
    """Stop one incident kind, or all of them; returns the kinds that were active."""
    cleared = tuple(i.kind for i in state.incidents if kind is None or i.kind == kind)
    remaining = tuple(i for i in state.incidents if i.kind not in cleared)
    return replace(state, incidents=remaining), cleared


def set_traffic(state: ChainState, multiplier: float) -> ChainState:
    return replace(state, traffic_multiplier=multiplier)


def roll(
    state: ChainState, component: Component, *, resources: Resources, replicas: int, template_changed: bool
) -> ChainState:
    """A workload spec change: a new pod template replaces the pod, as a rollout does."""
    before = state.pods[component]
    pod = replace(before, resources=resources, replicas=replicas)
    if template_changed:
        pod = _replaced(replace(pod, revision=pod.revision + 1), tick=state.tick)
        return _cured(replace(state, pods={**state.pods, component: pod}), component)
    if replicas > 0 and not before.exists:
        pod = _replaced(pod, tick=state.tick)
    return replace(state, pods={**state.pods, component: pod})


def restart_pod(state: ChainState, component: Component) -> ChainState:
    """The pod was deleted: its controller creates a fresh one (new name for a Deployment)."""
    pod = _replaced(state.pods[component], tick=state.tick)
    return _cured(replace(state, pods={**state.pods, component: pod}), component)


def _cured(state: ChainState, component: Component) -> ChainState:
    """A fresh process clears the faults that live in it (a wedged sequencer, lost peers …).

    Faults outside the process — L1 down, an empty batcher key, a wrong JWT, a full disk — survive a
    restart, as they do on a real chain; so does any incident injected with ``persist=1``.
    """
    cures = CURED_BY_RESTART.get(component, frozenset())
    kept = tuple(i for i in state.incidents if i.kind not in cures or i.param("persist", 0.0) > 0)
    return state if len(kept) == len(state.incidents) else replace(state, incidents=kept)


def _replaced(pod: Pod, *, tick: int) -> Pod:
    return replace(
        pod,
        incarnation=pod.incarnation + 1,
        restart_count=0,
        last_terminated=None,
        created_tick=tick,
        started_tick=tick,
        down_ticks=RESTART_TICKS,
        waiting_reason="ContainerCreating",
        cpu_cores=0.0,
        memory_bytes=0,
    )


def set_active(state: ChainState, component: Component, active: bool) -> ChainState:
    """admin_startSequencer / admin_stopBatcher and friends."""
    match component:
        case "op-node":
            return replace(state, sequencer_active=active)
        case "op-batcher":
            return replace(state, batcher_active=active)
        case "op-proposer":
            return replace(state, proposer_active=active)
    return state


def block_at(state: ChainState, number: int) -> Block | None:
    """Block ``number`` from the recent window, or rebuilt from the chain's rules if older."""
    first = state.blocks[0]
    if number > state.head.number or number < 0:
        return None
    if number >= first.number:
        return state.blocks[number - first.number]
    back = first.number - number
    bt = state.config.block_time_s
    txs = int(digest(state.config.chain, "txs", number)[2:6], 16) % 48
    per_origin = max(1, L1_BLOCK_TIME_S // bt)
    return Block(
        number=number,
        timestamp=first.timestamp - back * bt,
        gas_used=DEPOSIT_GAS + txs * GAS_PER_TX,
        base_fee=MIN_BASE_FEE_WEI,
        tx_count=txs + 1,
        origin=first.origin - math.ceil(back / per_origin),
        sequence_number=number % per_origin,
    )


def gas_used_ratio(block: Block) -> float:
    return block.gas_used / GAS_LIMIT


def snapshot(state: ChainState) -> dict[str, object]:
    """Everything an operator (or a test) wants to see at once, JSON-ready."""
    head = state.head
    geth = state.pods["op-geth"]
    return {
        "chain": state.config.chain,
        "tick": state.tick,
        "simTime": state.now,
        "blockTimeS": state.config.block_time_s,
        "heights": {
            "unsafeL2": head.number,
            "safeL2": state.safe_l2,
            "finalizedL2": state.finalized_l2,
            "l1Head": state.l1_head,
            "proposedL2": state.proposed_l2,
            "unsafeSafeLag": head.number - state.safe_l2,
        },
        "traffic": {"tps": round(state.tps, 3), "multiplier": state.traffic_multiplier},
        "txpool": {"pending": state.pending, "queued": state.queued},
        "gasUsedRatio": round(gas_used_ratio(head), 4),
        "baseFeeWei": head.base_fee,
        "cpu": {
            "opGethCores": round(geth.cpu_cores, 4),
            "opGethRequestCores": geth.cpu_request_cores,
            "opGethUsagePct": round(100 * geth.cpu_cores / geth.cpu_request_cores, 2),
            "saturation": round(state.saturation, 4),
        },
        "peers": {"opNode": state.node_peers, "opGeth": state.geth_peers},
        "diskFreeBytes": state.disk_free_bytes,
        "diskCapacityBytes": DISK_CAPACITY_BYTES,
        "batcherBalanceWei": state.batcher_balance_wei,
        "proposerBalanceWei": state.proposer_balance_wei,
        "active": {
            "sequencer": state.sequencer_active,
            "batcher": state.batcher_active,
            "proposer": state.proposer_active,
        },
        "incidents": [
            {"kind": i.kind, "params": dict(i.params), "sinceTick": i.since_tick} for i in state.incidents
        ],
        "pods": [
            {
                "component": c,
                "name": pod.name(state.config.chain),
                "ready": pod.ready,
                "replicas": pod.replicas,
                "restartCount": pod.restart_count,
                "cpuCores": round(pod.cpu_cores, 4),
                "cpuRequest": pod.resources.cpu_request_m / 1000,
                "memoryBytes": pod.memory_bytes,
                "memoryLimit": pod.resources.memory_limit,
                "lastTerminated": pod.last_terminated.reason if pod.last_terminated else None,
            }
            for c, pod in state.pods.items()
        ],
    }

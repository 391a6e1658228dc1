"""Blocks: the L1 head advancing (and re-orging), the sequencer building L2 blocks from the pool, the
base fee, and blocks older than the recent window rebuilt from the chain's rules."""

from __future__ import annotations

import math
from random import Random
from typing import Final

from sentinai.twin.logs import block_id, short_hash
from sentinai.twin.model import (
    DEPOSIT_GAS,
    ELASTICITY,
    GAS_LIMIT,
    GAS_PER_TX,
    L1_BLOCK_TIME_S,
    L1_CONFS,
    MAX_SEQUENCER_DRIFT_S,
    MIN_BASE_FEE_WEI,
    Block,
    ChainState,
    digest,
)
from sentinai.twin.sim.scratch import Tick

BASE_FEE_DENOMINATOR: Final = 250
MAX_STRETCH: Final = 6.0


def advance_l1(t: Tick) -> tuple[int, ...]:
    """The L1 head follows sim time unless L1 is down; a re-org incident walks op-node back."""
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


def sequence(t: Tick, saturation: float, rng: Random) -> float:
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


def _can_advance_origin(t: Tick, ts: int, origin: int) -> bool:
    return origin + 1 <= t.l1_head - L1_CONFS and t.state.l1_timestamp(origin + 1) <= ts


def next_base_fee(parent: Block) -> int:
    target = GAS_LIMIT // ELASTICITY
    delta = parent.base_fee * (parent.gas_used - target) // target // BASE_FEE_DENOMINATOR
    if parent.gas_used > target:
        delta = max(1, delta)
    return max(MIN_BASE_FEE_WEI, parent.base_fee + delta)


def _build_block(t: Tick, rng: Random) -> None:
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

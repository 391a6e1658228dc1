"""One tick of the whole chain: the order of its phases, and the healthy chain the twin starts from."""

from __future__ import annotations

from dataclasses import replace
from random import Random

from sentinai.twin import incidents
from sentinai.twin.model import (
    COMPONENTS,
    DEPOSIT_GAS,
    GAS_PER_TX,
    L1_BLOCK_TIME_S,
    L1_CONFS,
    MIN_BASE_FEE_WEI,
    RECENT_BLOCKS,
    Block,
    ChainConfig,
    ChainState,
    LogLine,
    Pod,
)
from sentinai.twin.sim.blocks import advance_l1, sequence
from sentinai.twin.sim.load import cpu_usage, fill_pool, traffic
from sentinai.twin.sim.node import peers_and_disk
from sentinai.twin.sim.pods import DEFAULT_RESOURCES, MEMORY_BASELINE, advance_pods
from sentinai.twin.sim.scratch import Printer, Tick
from sentinai.twin.sim.settlement import batch, finalize, propose


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
            memory_bytes=MEMORY_BASELINE[c],
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


def step(state: ChainState, rng: Random) -> tuple[ChainState, tuple[LogLine, ...]]:
    """Advance the chain by one tick."""
    tick = state.tick + 1
    state = replace(state, tick=tick)
    t = Tick(
        state=state,
        fx=incidents.effects(state.incidents, tick=tick),
        out=Printer(state.now),
        pods=dict(state.pods),
        blocks=list(state.blocks),
        pending=state.pending,
        l1_head=state.l1_head,
        l1_head_ts=state.l1_head_ts,
    )
    advance_pods(t, rng)
    tps, noise = traffic(state, t.fx, rng)
    saturation = cpu_usage(t, tps, rng)
    reorgs = advance_l1(t)
    state = replace(state, l1_head=t.l1_head, l1_head_ts=t.l1_head_ts, l1_reorgs=reorgs)
    t.state = state
    fill_pool(t, tps, rng)
    progress = sequence(t, saturation, rng)
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
    state = batch(state, t, rng)
    state = finalize(state)
    state = propose(state, t)
    state = peers_and_disk(state, t, rng)
    return state, tuple(t.out.lines)

"""Settlement on L1 after a tick's blocks: the batcher posts batches (op-node derives them back as the
safe head), L1 finality finalizes them, the proposer proposes output roots."""

from __future__ import annotations

from dataclasses import replace
from random import Random
from typing import Final

from sentinai.twin.logs import block_id
from sentinai.twin.model import L1_FINALITY_BLOCKS, ChainState, digest
from sentinai.twin.sim.scratch import Tick

PROPOSE_EVERY_TICKS: Final = 30
BATCHER_LOW_BALANCE_WEI: Final = 3 * 10**14
BATCHER_FUNDED_WEI: Final = 12 * 10**18
PROPOSAL_COST_WEI: Final = 9 * 10**14  # ~90k gas of proposeL2Output at ~10 gwei
PROPOSER_LOW_BALANCE_WEI: Final = 5 * 10**17
PROPOSER_FUNDED_WEI: Final = 5 * 10**18


def batch(state: ChainState, t: Tick, rng: Random) -> ChainState:
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


def finalize(state: ChainState) -> ChainState:
    """Safe blocks whose L1 inclusion is final become finalized."""
    finalized_l1 = state.l1_head - L1_FINALITY_BLOCKS
    final = [l2 for l1, l2 in state.safe_history if l1 <= finalized_l1]
    if not final:
        return state
    return replace(
        state,
        finalized_l2=max(state.finalized_l2, *final),
        safe_history=tuple((l1, l2) for l1, l2 in state.safe_history if l1 > finalized_l1),
    )


def propose(state: ChainState, t: Tick) -> ChainState:
    """Every ``PROPOSE_EVERY_TICKS`` the proposer proposes the safe head's output root."""
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

"""The simulation step: one tick (one L2 block time) of an OP Stack chain, as a pure function.

``step(state, rng)`` returns the next state and the log lines the components printed during the
tick. Nothing here reads a clock or does I/O: sim time is ``epoch + tick × block time`` and all
randomness comes from the ``rng`` passed in, so a seed reproduces a run line for line.

This module is the surface the rest of the twin (and the eval) uses. ``chain`` orders a tick's
phases — ``pods``, ``load``, ``blocks``, ``settlement``, ``node`` — over the scratch in ``scratch``;
``operations`` are what the APIs apply between ticks and ``views`` what an operator reads.
"""

from sentinai.twin.sim.blocks import (
    BASE_FEE_DENOMINATOR,
    MAX_STRETCH,
    block_at,
    gas_used_ratio,
    next_base_fee,
)
from sentinai.twin.sim.chain import initial_state, step
from sentinai.twin.sim.node import DISK_FREE_NORMAL
from sentinai.twin.sim.operations import clear, inject, restart_pod, roll, set_active, set_traffic
from sentinai.twin.sim.pods import DEFAULT_RESOURCES, GETH_VERSION, OP_NODE_VERSION
from sentinai.twin.sim.settlement import (
    BATCHER_FUNDED_WEI,
    BATCHER_LOW_BALANCE_WEI,
    PROPOSAL_COST_WEI,
    PROPOSE_EVERY_TICKS,
    PROPOSER_FUNDED_WEI,
    PROPOSER_LOW_BALANCE_WEI,
)
from sentinai.twin.sim.views import snapshot

__all__ = [
    "BASE_FEE_DENOMINATOR",
    "BATCHER_FUNDED_WEI",
    "BATCHER_LOW_BALANCE_WEI",
    "DEFAULT_RESOURCES",
    "DISK_FREE_NORMAL",
    "GETH_VERSION",
    "MAX_STRETCH",
    "OP_NODE_VERSION",
    "PROPOSAL_COST_WEI",
    "PROPOSER_FUNDED_WEI",
    "PROPOSER_LOW_BALANCE_WEI",
    "PROPOSE_EVERY_TICKS",
    "block_at",
    "clear",
    "gas_used_ratio",
    "initial_state",
    "inject",
    "next_base_fee",
    "restart_pod",
    "roll",
    "set_active",
    "set_traffic",
    "snapshot",
    "step",
]

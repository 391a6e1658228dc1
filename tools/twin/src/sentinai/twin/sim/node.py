"""The node around the processes: op-node's and op-geth's peers, and the free space of op-geth's disk."""

from __future__ import annotations

from dataclasses import replace
from random import Random
from typing import Final

from sentinai.common.quantity import GI, MI
from sentinai.twin.model import DISK_CAPACITY_BYTES, ChainState, digest
from sentinai.twin.sim.scratch import Tick

DISK_FREE_NORMAL: Final = 380 * GI


def peers_and_disk(state: ChainState, t: Tick, rng: Random) -> ChainState:
    """Peer counts wander (or drop to zero when peers are lost); the disk fills slowly (or fast)."""
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

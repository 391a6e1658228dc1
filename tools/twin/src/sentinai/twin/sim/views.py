"""What an operator (or a test) reads of a chain at once: the JSON-ready snapshot."""

from __future__ import annotations

from sentinai.twin.model import DISK_CAPACITY_BYTES, ChainState
from sentinai.twin.sim.blocks import gas_used_ratio


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

"""The kubelet's stats summary of a chain's node (GET /api/v1/nodes/{node}/proxy/stats/summary)."""

from __future__ import annotations

from typing import Final

from sentinai.common import quantity
from sentinai.twin.kube.errors import Obj
from sentinai.twin.kube.meta import node_name, timestamp, uid
from sentinai.twin.model import DISK_CAPACITY_BYTES, STATEFUL, ChainState, Pod, digest

_NODE_FS_BYTES: Final = 200 * quantity.GI
_TMPFS_BYTES: Final = 8 * quantity.GI  # what a secret or projected volume's tmpfs reports as capacity


def _fs(at: str, *, capacity: int, used: int, inodes: int = 33_554_432) -> Obj:
    inodes_used = max(1, used // (1 << 20))
    return {
        "time": at,
        "availableBytes": capacity - used,
        "capacityBytes": capacity,
        "usedBytes": used,
        "inodesFree": inodes - inodes_used,
        "inodes": inodes,
        "inodesUsed": inodes_used,
    }


def _volumes(state: ChainState, pod: Pod, at: str) -> list[Obj]:
    chain = state.config.chain
    token = f"kube-api-access-{digest(chain, pod.component, 'token')[2:7]}"
    volumes = [{**_fs(at, capacity=_TMPFS_BYTES, used=12_288, inodes=2_097_152), "name": token}]
    if pod.component in STATEFUL:
        volumes.append({**_fs(at, capacity=_TMPFS_BYTES, used=4_096, inodes=2_097_152), "name": "jwt-secret"})
    if pod.component == "op-geth":
        # The StatefulSet's volumeClaimTemplate "data": the chain database.
        used = DISK_CAPACITY_BYTES - min(state.disk_free_bytes, DISK_CAPACITY_BYTES)
        claim = {"name": f"data-{pod.name(chain)}", "namespace": chain}
        volumes.append({**_fs(at, capacity=DISK_CAPACITY_BYTES, used=used), "name": "data", "pvcRef": claim})
    return volumes


def _pod_stats(state: ChainState, pod: Pod, at: str) -> Obj:
    chain = state.config.chain
    cpu = {"time": at, "usageNanoCores": int(pod.cpu_cores * 1e9)}
    memory = {"time": at, "workingSetBytes": pod.memory_bytes, "usageBytes": pod.memory_bytes}
    container = {
        "name": pod.component,
        "startTime": timestamp(state.time_at(pod.started_tick)),
        "cpu": cpu,
        "memory": memory,
    }
    return {
        "podRef": {
            "name": pod.name(chain),
            "namespace": chain,
            "uid": uid(chain, "pod", pod.component, pod.incarnation),
        },
        "startTime": timestamp(state.time_at(pod.created_tick)),
        # A container that is not running has no stats yet; the pod's volumes are there all the same.
        "containers": [container] if pod.ready else [],
        "cpu": cpu,
        "memory": memory,
        "volume": _volumes(state, pod, at),
        "ephemeral-storage": _fs(at, capacity=_NODE_FS_BYTES, used=48 * quantity.MI),
    }


def stats_summary(state: ChainState) -> Obj:
    """The kubelet's ``Summary`` of the chain's node: the node, then each of its pods with volumes.

    op-geth's ``data`` volume is the chain database: its free space is the simulation's, so a
    ``disk_pressure`` incident fills it.
    """
    at = timestamp(state.now)
    pods = [p for p in state.pods.values() if p.exists]
    used_cores = sum(p.cpu_cores for p in pods)
    used_memory = sum(p.memory_bytes for p in pods)
    return {
        "node": {
            "nodeName": node_name(state.config.chain),
            "systemContainers": [],
            "startTime": timestamp(state.config.epoch_s - 86_400),
            "cpu": {"time": at, "usageNanoCores": int((0.2 + used_cores) * 1e9)},
            "memory": {"time": at, "workingSetBytes": 900 * quantity.MI + used_memory},
            "fs": _fs(at, capacity=_NODE_FS_BYTES, used=61 * quantity.GI),
        },
        "pods": [_pod_stats(state, pod, at) for pod in pods],
    }

"""Pure core of the collector: raw RPC and Kubernetes answers in, metric dicts out (no I/O, no clock)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from sentinai.common import catalog, quantity, subjects
from sentinai.common.chains import ChainConfig

Metrics = dict[str, float]
GWEI = 1e9
WEI_PER_ETH = 10**18
# L2OutputOracle.latestBlockNumber(): the first 4 bytes of keccak256("latestBlockNumber()").
LATEST_BLOCK_NUMBER = "0x4599c788"


def hex_int(value: object) -> int:
    """A JSON-RPC quantity (``"0x1a"``) as an int; plain ints pass through (op-node prints them so)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a hex quantity, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.lower().startswith("0x"):
        try:
            return int(value, 16)
        except ValueError:
            pass
    raise ValueError(f"expected a hex quantity, got {value!r}")


# ---- op-geth -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HeadTracker:
    """What the collector remembers about one chain's head between polls (wall-clock epoch seconds)."""

    height: int | None = None
    changed_at: float | None = None
    # The first poll only tells us the height, not when it was reached; an interval measured from
    # that moment would be an artefact of when the collector started.
    change_observed: bool = False
    interval_s: float | None = None
    polled_at: float | None = None


def track_head(tracker: HeadTracker, height: int, *, now: float) -> tuple[HeadTracker, Metrics]:
    """Advance the tracker with the height seen at ``now``; return it with the head metrics.

    Intervals come from the wall clock, not block timestamps: anvil and a lagging sequencer can
    stamp blocks ahead of real time. A poll may see several blocks at once, so the interval is the
    time between the last two observed head changes divided by the blocks between them.
    """
    metrics: Metrics = {catalog.BLOCK_HEIGHT: float(height)}
    if tracker.height is None or tracker.changed_at is None or tracker.polled_at is None:
        updated = HeadTracker(height=height, changed_at=now, polled_at=now)
        metrics[catalog.SECONDS_SINCE_HEAD] = 0.0
        return updated, metrics

    elapsed = now - tracker.polled_at
    if elapsed > 0 and height >= tracker.height:
        metrics[catalog.BLOCK_RATE] = (height - tracker.height) / elapsed

    updated = replace(tracker, polled_at=now)
    if height != tracker.height:
        interval = tracker.interval_s
        if tracker.change_observed and height > tracker.height:
            interval = (now - tracker.changed_at) / (height - tracker.height)
        updated = replace(updated, height=height, changed_at=now, change_observed=True, interval_s=interval)

    metrics[catalog.SECONDS_SINCE_HEAD] = max(0.0, now - (updated.changed_at or now))
    if updated.interval_s is not None:
        metrics[catalog.BLOCK_INTERVAL] = updated.interval_s
    return updated, metrics


def block_metrics(block: Mapping[str, Any]) -> tuple[int, Metrics]:
    """Height and gas/fee metrics of an ``eth_getBlockByNumber(latest)`` answer."""
    if not isinstance(block, Mapping):
        raise ValueError(f"latest block is not an object: {block!r:.200}")
    height = hex_int(block.get("number"))
    metrics: Metrics = {}
    gas_limit = hex_int(block.get("gasLimit"))
    if gas_limit > 0:
        metrics[catalog.GAS_USED_RATIO] = hex_int(block.get("gasUsed")) / gas_limit
    if block.get("baseFeePerGas") is not None:
        metrics[catalog.BASE_FEE_GWEI] = hex_int(block["baseFeePerGas"]) / GWEI
    return height, metrics


def txpool_metrics(status: Mapping[str, Any]) -> Metrics:
    """``txpool_status`` → pending (the seed's txPoolCount) and queued."""
    if not isinstance(status, Mapping):
        raise ValueError(f"txpool_status is not an object: {status!r:.200}")
    return {
        catalog.TX_POOL_COUNT: float(hex_int(status.get("pending"))),
        catalog.TX_POOL_QUEUED: float(hex_int(status.get("queued"))),
    }


def peer_count_metrics(peer_count: object) -> Metrics:
    """``net_peerCount`` (a hex quantity) → peerCount."""
    return {catalog.PEER_COUNT: float(hex_int(peer_count))}


# ---- op-node -----------------------------------------------------------------------------------

_Quantity = Annotated[int, BeforeValidator(lambda v: hex_int(v) if isinstance(v, str) else v)]


class _BlockRef(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    number: _Quantity
    timestamp: _Quantity


class _SyncStatus(BaseModel):
    """The fields of ``optimism_syncStatus`` we use; others (and older builds' extras) are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    head_l1: _BlockRef | None = None
    unsafe_l2: _BlockRef | None = None
    safe_l2: _BlockRef | None = None
    finalized_l2: _BlockRef | None = None


def sync_status_metrics(status: Mapping[str, Any], *, now: float) -> Metrics:
    """``optimism_syncStatus`` → heads, the unsafe–safe lag and head ages (``now`` in epoch seconds)."""
    try:
        sync = _SyncStatus.model_validate(status)
    except ValidationError as exc:
        raise ValueError(f"unexpected optimism_syncStatus shape: {exc.errors()[0]['msg']}") from exc
    metrics: Metrics = {}
    if sync.unsafe_l2 is not None:
        metrics[catalog.UNSAFE_L2] = float(sync.unsafe_l2.number)
        metrics[catalog.UNSAFE_L2_AGE] = now - sync.unsafe_l2.timestamp
    if sync.safe_l2 is not None:
        metrics[catalog.SAFE_L2] = float(sync.safe_l2.number)
        metrics[catalog.SAFE_L2_AGE] = now - sync.safe_l2.timestamp
    if sync.finalized_l2 is not None:
        metrics[catalog.FINALIZED_L2] = float(sync.finalized_l2.number)
    if sync.head_l1 is not None:
        metrics[catalog.L1_HEAD] = float(sync.head_l1.number)
        metrics[catalog.L1_HEAD_AGE] = now - sync.head_l1.timestamp
    if sync.unsafe_l2 is not None and sync.safe_l2 is not None:
        metrics[catalog.UNSAFE_SAFE_LAG] = float(sync.unsafe_l2.number - sync.safe_l2.number)
    return metrics


def peer_stats_metrics(stats: Mapping[str, Any]) -> Metrics:
    """``opp2p_peerStats`` → peerCount from ``connected``."""
    if not isinstance(stats, Mapping) or "connected" not in stats:
        raise ValueError(f"opp2p_peerStats has no 'connected': {stats!r:.200}")
    return {catalog.PEER_COUNT: float(hex_int(stats["connected"]))}


# ---- L1: the batcher's and proposer's accounts, the output oracle -------------------------------


@dataclass(frozen=True, slots=True)
class L1Read:
    """One JSON-RPC call on L1 and the metric of ``component`` its answer becomes."""

    component: str
    metric: str
    method: str
    params: tuple[Any, ...]


def l1_reads(chain: ChainConfig) -> tuple[L1Read, ...]:
    """The L1 calls a chain's config asks for (none without ``l1Rpc``), in one batch's order.

    ``proposedL2`` is read from the L2OutputOracle rather than from op-proposer's own
    ``refs_number{type="proposed"}`` gauge: the oracle holds what actually landed on L1, while the
    gauge is also set when the proposal transaction reverted, is gone while op-proposer is down or
    restarting, and starts empty after a restart: exactly when a flat proposal height matters.
    """
    if chain.l1_rpc is None:
        return ()
    reads: list[L1Read] = []
    accounts = (("op-batcher", chain.batcher_address), ("op-proposer", chain.proposer_address))
    for component, address in accounts:
        if address is not None:
            reads.append(L1Read(component, catalog.BALANCE, "eth_getBalance", (address, "latest")))
    if chain.l2_output_oracle_address is not None:
        call = {"to": chain.l2_output_oracle_address, "data": LATEST_BLOCK_NUMBER}
        reads.append(L1Read("op-proposer", catalog.PROPOSED_L2, "eth_call", (call, "latest")))
    return tuple(reads)


def balance_eth(balance: object) -> float:
    """``eth_getBalance`` (hex wei) in ETH."""
    return hex_int(balance) / WEI_PER_ETH


def abi_uint(data: object) -> int:
    """The single ``uint256`` an ``eth_call`` of a view function returns, ABI-encoded in 32 bytes."""
    if not isinstance(data, str) or not data.startswith("0x"):
        raise ValueError(f"eth_call returned {data!r:.80}, not 0x-prefixed hex data")
    word = data[2:]
    if not word:
        # What a node answers for a call to an address without code.
        raise ValueError("eth_call returned no data: is there a contract at that address?")
    if len(word) != 64:
        raise ValueError(f"eth_call returned {len(word) // 2} bytes, not one 32-byte word")
    try:
        return int(word, 16)
    except ValueError as exc:
        raise ValueError(f"eth_call returned {data!r:.80}, not hex data") from exc


def l1_value(read: L1Read, result: object) -> float:
    """The metric value of one L1 read's answer."""
    if read.metric == catalog.BALANCE:
        return balance_eth(result)
    return float(abi_uint(result))


# ---- Kubernetes --------------------------------------------------------------------------------


def _created(pod: Mapping[str, Any]) -> datetime:
    stamp = pod.get("metadata", {}).get("creationTimestamp") or "1970-01-01T00:00:00Z"
    return datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))


def pick_pod(pods: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The pod that speaks for a component: not terminating, running if any is, newest first.

    During a rolling restart the old pod lingers while the new one starts; the new one is the one
    whose health matters.
    """
    live = [p for p in pods if not p.get("metadata", {}).get("deletionTimestamp")] or list(pods)
    if not live:
        return None
    return max(live, key=lambda p: (p.get("status", {}).get("phase") == "Running", _created(p)))


def main_container(pod: Mapping[str, Any], component: str) -> str | None:
    """The container named after the component, else the pod's first container (sidecars come later)."""
    names = [str(c.get("name")) for c in pod.get("spec", {}).get("containers", []) if c.get("name")]
    if component in names:
        return component
    return names[0] if names else None


def _by_name(items: object, name: str) -> Mapping[str, Any]:
    if isinstance(items, list):
        for item in items:
            if isinstance(item, Mapping) and item.get("name") == name:
                return item
    return {}


def pod_metrics(pod: Mapping[str, Any], usage: Mapping[str, Any] | None, *, component: str) -> Metrics:
    """Pod status (and its ``metrics.k8s.io`` usage, when available) → the K8s metrics of a component."""
    container = main_container(pod, component)
    if container is None:
        raise ValueError(f"pod {pod.get('metadata', {}).get('name')!r} has no containers")
    status = pod.get("status", {})
    conditions = status.get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    container_status = _by_name(status.get("containerStatuses"), container)
    metrics: Metrics = {
        catalog.POD_READY: 1.0 if ready else 0.0,
        catalog.RESTARTS: float(container_status.get("restartCount", 0)),
    }
    resources = _by_name(pod.get("spec", {}).get("containers"), container).get("resources") or {}
    cpu_request = (resources.get("requests") or {}).get("cpu")
    memory_limit = (resources.get("limits") or {}).get("memory")
    request_cores = quantity.as_float(cpu_request) if cpu_request is not None else None
    limit_bytes = quantity.as_float(memory_limit) if memory_limit is not None else None
    if request_cores is not None:
        metrics[catalog.CPU_REQUEST_CORES] = request_cores

    used = _by_name((usage or {}).get("containers"), container).get("usage") or {}
    if "cpu" in used:
        cores = quantity.as_float(used["cpu"])
        metrics[catalog.CPU_CORES] = cores
        if request_cores:
            metrics[catalog.CPU_USAGE] = 100.0 * cores / request_cores
    if "memory" in used:
        memory = quantity.as_float(used["memory"])
        metrics[catalog.MEMORY_BYTES] = memory
        if limit_bytes:
            metrics[catalog.MEMORY_USAGE] = 100.0 * memory / limit_bytes
    return metrics


def node_of(pod: Mapping[str, Any]) -> str | None:
    """The node a pod was scheduled on (``None`` while it is pending)."""
    node = pod.get("spec", {}).get("nodeName")
    return str(node) if node else None


def _bytes(volume: Mapping[str, Any], key: str) -> float | None:
    value = volume.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def data_volume_metrics(summary: Mapping[str, Any], *, namespace: str, pod: str) -> Metrics:
    """The kubelet stats summary of a node (``/api/v1/nodes/{node}/proxy/stats/summary``) →
    ``diskUsage`` of ``pod``'s data volume.

    The data volume is the pod's PVC-backed volume (the largest, if it has several; the largest of
    any kind if it has none: the secret and token volumes are tiny). Usage is ``df``'s: used over
    used + available, so a full disk reads 100 % even when the filesystem reserves blocks for root
    (what op-geth checks is the space it can still write); used over capacity when the kubelet does
    not report what is available.
    """
    pods = summary.get("pods") if isinstance(summary, Mapping) else None
    entry = next(
        (
            p
            for p in (pods if isinstance(pods, list) else [])
            if isinstance(p, Mapping)
            and isinstance(p.get("podRef"), Mapping)
            and p["podRef"].get("name") == pod
            and p["podRef"].get("namespace") == namespace
        ),
        None,
    )
    if entry is None:
        raise ValueError(f"the stats summary has no pod {namespace}/{pod}")
    listed = entry.get("volume")
    volumes = [
        v
        for v in (listed if isinstance(listed, list) else [])
        if isinstance(v, Mapping)
        and (_bytes(v, "capacityBytes") or 0) > 0
        and _bytes(v, "usedBytes") is not None
    ]
    if not volumes:
        raise ValueError(f"the stats summary reports no volume usage for pod {namespace}/{pod}")
    claimed = [v for v in volumes if v.get("pvcRef")]
    volume = max(claimed or volumes, key=lambda v: _bytes(v, "capacityBytes") or 0.0)
    used = _bytes(volume, "usedBytes") or 0.0
    available = _bytes(volume, "availableBytes")
    room = used + available if available is not None else 0.0
    if room <= 0:
        room = _bytes(volume, "capacityBytes") or 1.0  # > 0: volumes without a capacity were left out
    return {catalog.DISK_USAGE: 100.0 * used / room}


# ---- logs and timing ---------------------------------------------------------------------------


def split_log(text: str) -> tuple[str, ...]:
    """Log text as lines, without the empty string after the final newline."""
    return tuple(text.splitlines())


def new_log_lines(previous: Sequence[str] | None, current: Sequence[str]) -> tuple[str, ...]:
    """The lines of ``current`` (a fresh tail) not already in ``previous`` (the last tail read).

    The fresh tail is a suffix of the old one followed by what was written since, so the new lines
    start after the longest overlap of the old tail's end with the fresh tail's start. No overlap
    means more than a whole tail was written in between: all of it is new.
    """
    if not previous:
        return tuple(current)
    for overlap in range(min(len(previous), len(current)), 0, -1):
        if list(previous[-overlap:]) == list(current[:overlap]):
            return tuple(current[overlap:])
    return tuple(current)


def shard_of(chain_id: str, shards: int) -> int:
    """The collector shard that polls ``chain_id``: the detector partition it lands in, for as many."""
    return subjects.partition_of(chain_id, shards)


def start_offset(index: int, count: int, interval_s: float) -> float:
    """When the ``index``-th of ``count`` chains first polls: spread evenly over one interval.

    Chains that all tick at the same instant send every request of a round at once; the answers
    then queue behind each other (in the collector, the nodes and NATS), and at a few hundred
    chains the round takes longer than the interval, so polls overrun and skip their next tick.
    """
    if count <= 1:
        return 0.0
    return interval_s * (index % count) / count


def next_delay(elapsed_s: float, interval_s: float) -> float:
    """Seconds to wait before the next poll; an overrun skips the missed ticks instead of bunching up."""
    if elapsed_s < interval_s:
        return interval_s - elapsed_s
    return interval_s - (elapsed_s % interval_s)

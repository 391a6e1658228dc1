"""The collector's pure core: metric extraction, head tracking, new log lines, cadence."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from sentinai.collector import logic
from sentinai.collector.settings import CollectorSettings
from sentinai.common import catalog, subjects
from sentinai.common.chains import ChainConfig

# ---- op-geth -----------------------------------------------------------------------------------

# eth_getBlockByNumber(["latest", false]) as anvil answers it (OPSTACK.md).
LATEST_BLOCK = {
    "number": "0x26",
    "hash": "0x" + "ab" * 32,
    "parentHash": "0x" + "cd" * 32,
    "timestamp": "0x6745f1a7",
    "gasUsed": "0x5fcf58",
    "gasLimit": "0x1c9c380",
    "baseFeePerGas": "0x3b9aca00",
    "transactions": [],
    "withdrawalsRoot": "0x" + "00" * 32,
    "blobGasUsed": "0x0",
    "excessBlobGas": "0x0",
    "miner": "0x4200000000000000000000000000000000000011",
}


def test_block_metrics_reads_height_gas_ratio_and_base_fee() -> None:
    height, metrics = logic.block_metrics(LATEST_BLOCK)
    assert height == 0x26
    assert metrics == {
        catalog.GAS_USED_RATIO: pytest.approx(6_279_000 / 30_000_000),
        catalog.BASE_FEE_GWEI: pytest.approx(1.0),
    }


def test_block_without_base_fee_omits_it() -> None:
    block = {k: v for k, v in LATEST_BLOCK.items() if k != "baseFeePerGas"}
    assert catalog.BASE_FEE_GWEI not in logic.block_metrics(block)[1]


def test_block_with_malformed_number_is_an_error() -> None:
    with pytest.raises(ValueError, match="hex quantity"):
        logic.block_metrics({**LATEST_BLOCK, "number": "38"})


def test_txpool_status_hex_counts() -> None:
    assert logic.txpool_metrics({"pending": "0x12c", "queued": "0x0"}) == {
        catalog.TX_POOL_COUNT: 300.0,
        catalog.TX_POOL_QUEUED: 0.0,
    }


def test_net_peer_count_is_hex() -> None:
    assert logic.peer_count_metrics("0x19") == {catalog.PEER_COUNT: 25.0}


# ---- head tracking -----------------------------------------------------------------------------


def test_first_poll_knows_height_but_no_interval_or_rate() -> None:
    tracker, metrics = logic.track_head(logic.HeadTracker(), 100, now=1000.0)
    assert metrics == {catalog.BLOCK_HEIGHT: 100.0, catalog.SECONDS_SINCE_HEAD: 0.0}
    assert tracker.height == 100


def test_interval_comes_from_wall_clock_between_observed_changes() -> None:
    tracker, _ = logic.track_head(logic.HeadTracker(), 100, now=1000.0)
    tracker, first_change = logic.track_head(tracker, 101, now=1002.0)
    # The first change is measured from collector start, not from a real head change: no interval yet.
    assert catalog.BLOCK_INTERVAL not in first_change
    assert first_change[catalog.BLOCK_RATE] == pytest.approx(0.5)
    tracker, metrics = logic.track_head(tracker, 104, now=1008.0)
    assert metrics[catalog.BLOCK_INTERVAL] == pytest.approx(2.0)  # 6 s for 3 blocks
    assert metrics[catalog.BLOCK_RATE] == pytest.approx(0.5)
    assert metrics[catalog.SECONDS_SINCE_HEAD] == 0.0


def test_stalled_head_grows_seconds_since_head_and_keeps_last_interval() -> None:
    tracker = logic.HeadTracker()
    for height, now in [(100, 1000.0), (101, 1002.0), (102, 1004.0)]:
        tracker, _ = logic.track_head(tracker, height, now=now)
    tracker, at_10 = logic.track_head(tracker, 102, now=1010.0)
    tracker, at_20 = logic.track_head(tracker, 102, now=1020.0)
    assert at_10[catalog.SECONDS_SINCE_HEAD] == pytest.approx(6.0)
    assert at_20[catalog.SECONDS_SINCE_HEAD] == pytest.approx(16.0)
    assert at_20[catalog.BLOCK_HEIGHT] == 102.0
    assert at_20[catalog.BLOCK_RATE] == 0.0
    assert at_20[catalog.BLOCK_INTERVAL] == pytest.approx(2.0)


def test_rewound_head_counts_as_a_change_without_a_negative_rate() -> None:
    tracker = logic.HeadTracker()
    for height, now in [(100, 1000.0), (101, 1002.0), (102, 1004.0)]:
        tracker, _ = logic.track_head(tracker, height, now=now)
    tracker, metrics = logic.track_head(tracker, 99, now=1006.0)
    assert metrics[catalog.BLOCK_HEIGHT] == 99.0
    assert metrics[catalog.SECONDS_SINCE_HEAD] == 0.0
    assert catalog.BLOCK_RATE not in metrics
    assert metrics[catalog.BLOCK_INTERVAL] == pytest.approx(2.0)


# ---- op-node -----------------------------------------------------------------------------------


def _l1(number: int, timestamp: int) -> dict[str, object]:
    return {
        "hash": "0x" + "11" * 32,
        "number": number,
        "parentHash": "0x" + "22" * 32,
        "timestamp": timestamp,
    }


def _l2(number: int, timestamp: int) -> dict[str, object]:
    return _l1(number, timestamp) | {"l1origin": {"hash": "0x" + "33" * 32, "number": 7}, "sequenceNumber": 3}


SYNC_STATUS = {
    "current_l1": _l1(1000, 9_988),
    "current_l1_finalized": _l1(990, 9_868),
    "head_l1": _l1(1001, 9_988),
    "safe_l1": _l1(995, 9_900),
    "finalized_l1": _l1(990, 9_868),
    "unsafe_l2": _l2(5000, 9_998),
    "safe_l2": _l2(4940, 9_878),
    "finalized_l2": _l2(4800, 9_600),
    "pending_safe_l2": _l2(4940, 9_878),
    "cross_unsafe_l2": _l2(5000, 9_998),
    "local_safe_l2": _l2(4940, 9_878),
}


def test_sync_status_metrics() -> None:
    metrics = logic.sync_status_metrics(SYNC_STATUS, now=10_000.0)
    assert metrics == {
        catalog.UNSAFE_L2: 5000.0,
        catalog.SAFE_L2: 4940.0,
        catalog.FINALIZED_L2: 4800.0,
        catalog.L1_HEAD: 1001.0,
        catalog.UNSAFE_SAFE_LAG: 60.0,
        catalog.L1_HEAD_AGE: 12.0,
        catalog.UNSAFE_L2_AGE: 2.0,
        catalog.SAFE_L2_AGE: 122.0,
    }


def test_sync_status_of_older_builds_parses_and_ignores_extras() -> None:
    older = {k: v for k, v in SYNC_STATUS.items() if k not in {"cross_unsafe_l2", "local_safe_l2"}}
    older |= {"queued_unsafe_l2": _l2(0, 0), "engine_sync_target": _l2(5000, 9_998)}
    assert logic.sync_status_metrics(older, now=10_000.0)[catalog.UNSAFE_SAFE_LAG] == 60.0


def test_sync_status_with_missing_heads_reports_what_it_has() -> None:
    metrics = logic.sync_status_metrics({"unsafe_l2": _l2(10, 100)}, now=101.0)
    assert metrics == {catalog.UNSAFE_L2: 10.0, catalog.UNSAFE_L2_AGE: 1.0}


def test_sync_status_with_a_malformed_head_is_an_error() -> None:
    with pytest.raises(ValueError, match="optimism_syncStatus"):
        logic.sync_status_metrics({"unsafe_l2": {"hash": "0x1"}}, now=0.0)


def test_peer_stats_connected() -> None:
    stats = {"connected": 12, "table": 40, "blocksTopic": 11, "banned": 0, "known": 90}
    assert logic.peer_stats_metrics(stats) == {catalog.PEER_COUNT: 12.0}


# ---- L1 ----------------------------------------------------------------------------------------

BATCHER = "0x" + "ba" * 20
PROPOSER = "0x" + "0b" * 20
ORACLE = "0x" + "0c" * 20


def test_l1_reads_follow_the_chain_config() -> None:
    chain = ChainConfig.model_validate(
        {
            "id": "c",
            "l1Rpc": "http://l1:8545",
            "batcherAddress": BATCHER.upper().replace("0X", "0x"),
            "proposerAddress": PROPOSER,
            "l2OutputOracleAddress": ORACLE,
        }
    )
    reads = logic.l1_reads(chain)
    assert [(r.component, r.metric, r.method, r.params) for r in reads] == [
        ("op-batcher", catalog.BALANCE, "eth_getBalance", (BATCHER, "latest")),
        ("op-proposer", catalog.BALANCE, "eth_getBalance", (PROPOSER, "latest")),
        # latestBlockNumber(): keccak256("latestBlockNumber()")[:4], checked on anvil's web3_sha3.
        ("op-proposer", catalog.PROPOSED_L2, "eth_call", ({"to": ORACLE, "data": "0x4599c788"}, "latest")),
    ]


def test_without_an_l1_rpc_nothing_is_read_on_l1() -> None:
    assert logic.l1_reads(ChainConfig(id="c")) == ()
    only_batcher = ChainConfig.model_validate({"id": "c", "l1Rpc": "http://l1", "batcherAddress": BATCHER})
    assert [r.component for r in logic.l1_reads(only_batcher)] == ["op-batcher"]


@pytest.mark.parametrize(
    ("answer", "eth"),
    [
        pytest.param("0xa688906bd8b00000", 12.0, id="12-eth"),
        pytest.param("0x110d9316ec000", 0.0003, id="nearly-empty-key"),
        pytest.param("0x0", 0.0, id="empty"),
        pytest.param("0x21e19e0c9bab2400000", 10_000.0, id="anvil-dev-account"),
    ],
)
def test_balance_is_wei_in_eth(answer: str, eth: float) -> None:
    read = logic.L1Read("op-batcher", catalog.BALANCE, "eth_getBalance", (BATCHER, "latest"))
    assert logic.l1_value(read, answer) == pytest.approx(eth)


def test_proposed_height_is_the_oracle_word() -> None:
    read = logic.l1_reads(
        ChainConfig.model_validate({"id": "c", "l1Rpc": "http://l1", "l2OutputOracleAddress": ORACLE})
    )[0]
    assert logic.l1_value(read, "0x" + f"{4_836_402:064x}") == 4_836_402.0


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        pytest.param("0x", "no data: is there a contract", id="no-code-at-the-address"),
        pytest.param("0x" + "00" * 31, "31 bytes", id="short-word"),
        pytest.param("0x" + "zz" * 32, "not hex", id="not-hex"),
        pytest.param(None, "not 0x-prefixed", id="null"),
    ],
)
def test_a_malformed_oracle_answer_is_an_error(answer: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        logic.abi_uint(answer)


def test_a_malformed_balance_is_an_error() -> None:
    with pytest.raises(ValueError, match="hex quantity"):
        logic.balance_eth("12")


# ---- Kubernetes --------------------------------------------------------------------------------


def _pod(
    name: str,
    *,
    created: str = "2026-11-26T23:00:00Z",
    phase: str = "Running",
    ready: bool = True,
    restarts: int = 0,
    deleting: bool = False,
    limits: dict[str, str] | None = None,
) -> dict[str, object]:
    metadata: dict[str, object] = {
        "name": name,
        "namespace": "twin",
        "creationTimestamp": created,
        "labels": {"app.kubernetes.io/name": "op-geth"},
    }
    if deleting:
        metadata["deletionTimestamp"] = "2026-11-26T23:30:00Z"
    return {
        "metadata": metadata,
        "spec": {
            "containers": [
                {
                    "name": "op-geth",
                    "image": "us-docker.pkg.dev/oplabs-tools-artifacts/images/op-geth:v1.101411.0",
                    "resources": {
                        "requests": {"cpu": "500m", "memory": "1Gi"},
                        "limits": {"memory": "2Gi"} if limits is None else limits,
                    },
                },
                {"name": "exporter", "resources": {"requests": {"cpu": "10m"}}},
            ]
        },
        "status": {
            "phase": phase,
            "conditions": [
                {"type": "Initialized", "status": "True"},
                {"type": "Ready", "status": "True" if ready else "False"},
            ],
            "containerStatuses": [
                {"name": "exporter", "restartCount": 9, "ready": True},
                {"name": "op-geth", "restartCount": restarts, "ready": ready},
            ],
        },
    }


POD_USAGE = {
    "kind": "PodMetrics",
    "apiVersion": "metrics.k8s.io/v1beta1",
    "metadata": {"name": "op-geth-0", "namespace": "twin"},
    "timestamp": "2026-11-26T23:14:15Z",
    "window": "30s",
    "containers": [
        {"name": "exporter", "usage": {"cpu": "5m", "memory": "10Mi"}},
        {"name": "op-geth", "usage": {"cpu": "425000000n", "memory": "1572864Ki"}},
    ],
}


def test_pod_metrics_of_the_component_container() -> None:
    metrics = logic.pod_metrics(_pod("op-geth-0", restarts=2), POD_USAGE, component="op-geth")
    assert metrics == {
        catalog.POD_READY: 1.0,
        catalog.RESTARTS: 2.0,
        catalog.CPU_REQUEST_CORES: pytest.approx(0.5),
        catalog.CPU_CORES: pytest.approx(0.425),
        catalog.CPU_USAGE: pytest.approx(85.0),
        catalog.MEMORY_BYTES: 1.5 * 1024**3,
        catalog.MEMORY_USAGE: pytest.approx(75.0),
    }


def test_pod_metrics_without_limit_or_usage() -> None:
    metrics = logic.pod_metrics(_pod("op-geth-0", ready=False, limits={}), None, component="op-geth")
    assert metrics == {catalog.POD_READY: 0.0, catalog.RESTARTS: 0.0, catalog.CPU_REQUEST_CORES: 0.5}


def test_pod_metrics_memory_without_limit_has_bytes_but_no_percent() -> None:
    metrics = logic.pod_metrics(_pod("op-geth-0", limits={}), POD_USAGE, component="op-geth")
    assert metrics[catalog.MEMORY_BYTES] == 1.5 * 1024**3
    assert catalog.MEMORY_USAGE not in metrics


def test_pod_metrics_refuse_usage_that_is_no_quantity() -> None:
    usage = {"containers": [{"name": "op-geth", "usage": {"cpu": "lots"}}]}
    with pytest.raises(ValueError, match="not a Kubernetes quantity: 'lots'"):
        logic.pod_metrics(_pod("op-geth-0"), usage, component="op-geth")


def test_pick_pod_prefers_the_new_running_pod_over_a_terminating_one() -> None:
    old = _pod("op-geth-old", created="2026-11-26T20:00:00Z", deleting=True)
    starting = _pod("op-geth-new", created="2026-11-26T23:20:00Z", phase="Pending", ready=False)
    running = _pod("op-geth-mid", created="2026-11-26T22:00:00Z")
    chosen = logic.pick_pod([old, starting, running])
    assert chosen is not None and chosen["metadata"]["name"] == "op-geth-mid"  # type: ignore[index]
    chosen = logic.pick_pod([old, starting])
    assert chosen is not None and chosen["metadata"]["name"] == "op-geth-new"  # type: ignore[index]
    assert logic.pick_pod([]) is None


def test_main_container_is_the_component_else_the_first() -> None:
    pod = _pod("op-geth-0")
    assert logic.main_container(pod, "op-geth") == "op-geth"
    assert logic.main_container(pod, "op-node") == "op-geth"
    assert logic.main_container({"spec": {"containers": []}}, "op-geth") is None


# The kubelet's stats summary (/api/v1/nodes/{node}/proxy/stats/summary), trimmed to what matters:
# op-geth's pod with a service-account token (tmpfs), its JWT secret and its chain database (a PVC).
GIB = 2**30


def _volume(name: str, *, capacity: int, used: int, available: int | None, pvc: str | None = None) -> dict:
    volume: dict[str, object] = {"time": "2026-11-26T23:14:15Z", "name": name, "capacityBytes": capacity}
    volume |= {"usedBytes": used, "inodesFree": 1000, "inodes": 2000, "inodesUsed": 1000}
    if available is not None:
        volume["availableBytes"] = available
    if pvc is not None:
        volume["pvcRef"] = {"name": pvc, "namespace": "op-stack"}
    return volume


def _summary(*volumes: dict, pod: str = "op-geth-0", namespace: str = "op-stack") -> dict:
    other = {"podRef": {"name": pod, "namespace": "elsewhere", "uid": "u0"}, "volume": [volumes[0]]}
    return {
        "node": {"nodeName": "node-1", "fs": {"capacityBytes": 200 * GIB}},
        "pods": [
            other,
            {
                "podRef": {"name": pod, "namespace": namespace, "uid": "u1"},
                "startTime": "x",
                "volume": list(volumes),
            },
        ],
    }


TOKEN = _volume("kube-api-access-x7k2p", capacity=8 * GIB, used=12_288, available=8 * GIB - 12_288)
JWT = _volume("jwt-secret", capacity=8 * GIB, used=4096, available=8 * GIB - 4096)


@pytest.mark.parametrize(
    ("volumes", "expected"),
    [
        pytest.param(
            [
                TOKEN,
                JWT,
                _volume(
                    "data", capacity=512 * GIB, used=132 * GIB, available=380 * GIB, pvc="data-op-geth-0"
                ),
            ],
            100 * 132 / 512,
            id="the-pvc-not-the-tmpfs-volumes",
        ),
        pytest.param(
            # ext4 keeps 5 % for root: with nothing left to write, df (and op-geth) see a full disk.
            [TOKEN, _volume("data", capacity=100 * GIB, used=95 * GIB, available=0, pvc="data-op-geth-0")],
            100.0,
            id="reserved-blocks-count-as-full",
        ),
        pytest.param(
            [_volume("data", capacity=100 * GIB, used=40 * GIB, available=None, pvc="data-op-geth-0")],
            40.0,
            id="no-available-bytes-used-over-capacity",
        ),
        pytest.param(
            [
                _volume("snapshots", capacity=50 * GIB, used=45 * GIB, available=5 * GIB, pvc="snap"),
                _volume(
                    "data", capacity=512 * GIB, used=256 * GIB, available=256 * GIB, pvc="data-op-geth-0"
                ),
            ],
            50.0,
            id="the-largest-of-several-pvcs",
        ),
        pytest.param(
            [TOKEN, _volume("datadir", capacity=200 * GIB, used=150 * GIB, available=50 * GIB)],
            75.0,
            id="no-pvc-the-largest-volume",
        ),
    ],
)
def test_disk_usage_of_the_data_volume(volumes: list[dict], expected: float) -> None:
    metrics = logic.data_volume_metrics(_summary(*volumes), namespace="op-stack", pod="op-geth-0")
    assert metrics == {catalog.DISK_USAGE: pytest.approx(expected)}


@pytest.mark.parametrize(
    ("summary", "message"),
    [
        pytest.param(_summary(TOKEN, pod="op-geth-1"), "no pod op-stack/op-geth-0", id="pod-not-on-the-node"),
        pytest.param(
            _summary(TOKEN, namespace="other"), "no pod op-stack/op-geth-0", id="same-name-elsewhere"
        ),
        pytest.param(
            {"pods": [{"podRef": {"name": "op-geth-0", "namespace": "op-stack"}}]},
            "no volume",
            id="no-volumes",
        ),
        pytest.param({"node": {}}, "no pod", id="no-pods"),
        pytest.param({"pods": 5}, "no pod", id="pods-not-a-list"),
        pytest.param(
            {"pods": [{"podRef": {"name": "op-geth-0", "namespace": "op-stack"}, "volume": 5}]},
            "no volume",
            id="volumes-not-a-list",
        ),
    ],
)
def test_a_summary_without_the_pods_volume_is_an_error(summary: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        logic.data_volume_metrics(summary, namespace="op-stack", pod="op-geth-0")


def test_node_of_a_scheduled_and_a_pending_pod() -> None:
    assert logic.node_of({"spec": {"nodeName": "ip-10-0-1-7"}}) == "ip-10-0-1-7"
    assert logic.node_of({"spec": {}}) is None


# ---- logs and cadence --------------------------------------------------------------------------

GETH = [
    "INFO [11-26|23:14:15.123] Imported new potential chain segment number=100 hash=0xaa",
    "INFO [11-26|23:14:17.120] Imported new potential chain segment number=101 hash=0xbb",
    "INFO [11-26|23:14:19.118] Imported new potential chain segment number=102 hash=0xcc",
    "WARN [11-26|23:14:20.001] Database compacting, degraded performance",
    "INFO [11-26|23:14:21.121] Imported new potential chain segment number=103 hash=0xdd",
]


@pytest.mark.parametrize(
    ("previous", "current", "expected"),
    [
        pytest.param(None, GETH[:3], GETH[:3], id="first-read-is-all-new"),
        pytest.param(GETH[:3], GETH[:3], [], id="nothing-written"),
        pytest.param(GETH[:3], GETH[:5], GETH[3:5], id="appended"),
        pytest.param(GETH[:3], GETH[2:5], GETH[3:5], id="tail-window-slid"),
        pytest.param(GETH[:2], GETH[3:5], GETH[3:5], id="more-than-a-tail-written"),
        pytest.param(["a", "b", "a"], ["b", "a", "c"], ["c"], id="repeated-line-longest-overlap"),
        pytest.param(GETH[:3], [], [], id="empty-log"),
    ],
)
def test_new_log_lines(previous: list[str] | None, current: list[str], expected: list[str]) -> None:
    assert logic.new_log_lines(previous, current) == tuple(expected)


def test_split_log_drops_the_final_newline() -> None:
    assert logic.split_log("a\nb\n") == ("a", "b")
    assert logic.split_log("") == ()


@pytest.mark.parametrize(
    ("elapsed", "expected"),
    [
        pytest.param(0.5, 1.5, id="on-time"),
        pytest.param(2.0, 2.0, id="exactly-one-interval-waits-a-full-tick"),
        pytest.param(5.5, 0.5, id="overrun-skips-missed-ticks"),
    ],
)
def test_next_delay(elapsed: float, expected: float) -> None:
    assert logic.next_delay(elapsed, 2.0) == pytest.approx(expected)


@pytest.mark.parametrize("shards", [1, 2, 3, 5])
def test_every_chain_is_polled_by_exactly_one_shard(shards: int) -> None:
    chains = [f"chain-{i}" for i in range(200)]
    owners = {chain: [k for k in range(shards) if logic.shard_of(chain, shards) == k] for chain in chains}
    assert all(len(owned) == 1 for owned in owners.values())
    # With as many shards as detector partitions, shard k feeds exactly detector partition k.
    assert all(owned == [subjects.partition_of(chain, shards)] for chain, owned in owners.items())
    if shards > 1:
        assert len({owned[0] for owned in owners.values()}) == shards  # no shard sits idle


def test_a_shard_outside_the_shard_count_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"shard 2 is not one of 0\.\.1"):
        CollectorSettings(chains_file=tmp_path / "chains.yaml", shards=2, shard=2)


def test_chains_start_spread_evenly_over_one_interval() -> None:
    offsets = [logic.start_offset(i, 4, 1.0) for i in range(4)]
    assert offsets == [0.0, 0.25, 0.5, 0.75]  # no two chains poll at the same instant
    assert logic.start_offset(0, 1, 30.0) == 0.0  # a lone chain polls at once

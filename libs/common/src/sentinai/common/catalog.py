"""Metric names shared by the collector (which measures them) and the detector (which judges them).

Units: seconds for times and ages, blocks for heights and lags, percent (0–100) for ``cpuUsage``,
``memoryUsage`` and ``diskUsage``, gwei for fees, ETH for balances. The seed's five headline
metrics are ``blockHeight``, ``cpuUsage``, ``txPoolCount``, ``gasUsedRatio`` and ``blockInterval``.
"""

from __future__ import annotations

from typing import Final

# op-geth, from JSON-RPC (source "rpc")
BLOCK_HEIGHT: Final = "blockHeight"  # eth_blockNumber
BLOCK_INTERVAL: Final = "blockInterval"  # wall-clock seconds between the last two observed heads
SECONDS_SINCE_HEAD: Final = "secondsSinceHead"  # wall-clock seconds since the head last moved
BLOCK_RATE: Final = "blockRate"  # blocks per second since the previous poll
GAS_USED_RATIO: Final = "gasUsedRatio"  # latest block gasUsed / gasLimit
TX_POOL_COUNT: Final = "txPoolCount"  # pending transactions (the seed's txPoolCount)
TX_POOL_QUEUED: Final = "txPoolQueued"
BASE_FEE_GWEI: Final = "baseFeeGwei"
PEER_COUNT: Final = "peerCount"  # net_peerCount (op-geth) or opp2p_peerStats.connected (op-node)

# op-node, from optimism_syncStatus (source "rpc")
UNSAFE_L2: Final = "unsafeL2"
SAFE_L2: Final = "safeL2"
FINALIZED_L2: Final = "finalizedL2"
L1_HEAD: Final = "l1Head"
UNSAFE_SAFE_LAG: Final = "unsafeSafeLag"  # unsafe_l2.number - safe_l2.number, in blocks
L1_HEAD_AGE: Final = "l1HeadAge"  # now - head_l1.timestamp, seconds
UNSAFE_L2_AGE: Final = "unsafeL2Age"  # now - unsafe_l2.timestamp, seconds
SAFE_L2_AGE: Final = "safeL2Age"  # now - safe_l2.timestamp, seconds

# op-batcher and op-proposer, read on L1 (source "rpc", in the component's own RPC sample)
BALANCE: Final = "balance"  # the component's L1 account (batcher / proposer key), ETH: eth_getBalance
PROPOSED_L2: Final = "proposedL2"  # latest L2 block proposed to L1: L2OutputOracle.latestBlockNumber()

# any component's pod, from the Kubernetes API (source "k8s")
CPU_USAGE: Final = "cpuUsage"  # percent of the CPU request
CPU_CORES: Final = "cpuCores"
CPU_REQUEST_CORES: Final = "cpuRequestCores"
MEMORY_BYTES: Final = "memoryBytes"
MEMORY_USAGE: Final = "memoryUsage"  # percent of the memory limit
RESTARTS: Final = "restarts"  # container restart count
POD_READY: Final = "podReady"  # 1 ready, 0 not
DISK_USAGE: Final = "diskUsage"  # op-geth only: percent of its data volume in use (kubelet stats summary)
# Not published: the series rca and the detector derive from a sample's ``targetUp`` flag (1 up, 0 down).
TARGET_UP: Final = "targetUp"

# Counters and heights only ever grow: a z-score over them is meaningless (every new block would be
# "3 sigma above baseline"). Their rate and time-since-change are judged instead.
MONOTONIC: Final = frozenset({BLOCK_HEIGHT, UNSAFE_L2, SAFE_L2, FINALIZED_L2, L1_HEAD, PROPOSED_L2, RESTARTS})

# Descriptions use these words (the seed: "CPU spike detected: 87.3% (3.2σ above baseline)").
LABELS: Final = {
    CPU_USAGE: ("CPU", "%"),
    TX_POOL_COUNT: ("TxPool", " txs"),
    GAS_USED_RATIO: ("Gas used ratio", ""),
    BLOCK_INTERVAL: ("Block interval", "s"),
    MEMORY_USAGE: ("Memory", "%"),
    BASE_FEE_GWEI: ("Base fee", " gwei"),
    UNSAFE_SAFE_LAG: ("Unsafe-safe lag", " blocks"),
    L1_HEAD_AGE: ("L1 head age", "s"),
    BALANCE: ("Balance", " ETH"),
    DISK_USAGE: ("Disk", "%"),
}

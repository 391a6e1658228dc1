"""One signature per incident of the catalogue: metric and log evidence weighed into a 0..1 score.

Weights follow how specific a fact is: a message only one fault prints (``401 Unauthorized``,
``Disk space is running low``) weighs most; a symptom many faults share (a flat head, a growing pool)
weighs little, so the fault that explains the symptom outranks the symptom's own class. Log strings
are the ones the OP Stack components print (OPSTACK.md).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from sentinai.common import catalog
from sentinai.common.events import Severity
from sentinai.common.incidents import IncidentClass
from sentinai.common.loglines import INFO
from sentinai.rca.evidence import RECENT, Case, Facts, flat, fmt, rising

TXPOOL_CAP: Final = 5120.0  # geth legacypool's default pending slots


@dataclass(frozen=True, slots=True)
class ClassSpec:
    """What the catalogue says about a class: its name for people, its risk, the plan, who is hit."""

    title: str
    risk: Severity
    action_plan: str
    affected: tuple[str, ...]


SPECS: Final[Mapping[IncidentClass, ClassSpec]] = {
    "sequencer_stall": ClassSpec(
        "Sequencer stall: op-node stopped producing unsafe blocks",
        "high",
        "Restart op-node (needs approval); check op-geth engine API health",
        ("op-node", "op-geth"),
    ),
    "l1_rpc_outage": ClassSpec(
        "L1 RPC outage: op-node cannot read L1, so the safe head stopped",
        "high",
        "Switch op-node to a healthy L1 RPC endpoint or restart op-node (needs approval); "
        "check the L1 provider",
        ("op-node", "op-batcher", "op-proposer"),
    ),
    "batcher_failure": ClassSpec(
        "Batcher cannot post batches to L1: the safe head falls behind",
        "medium",
        "Notify: fund or fix the batcher key (a human must); "
        "restart op-batcher only if it is funded and still stuck",
        ("op-batcher", "op-node"),
    ),
    "proposer_failure": ClassSpec(
        "Proposer failure: output roots are not being proposed to L1",
        "medium",
        "Restart op-proposer; notify if proposals keep failing (check its L1 balance and RPC)",
        ("op-proposer",),
    ),
    "op_geth_cpu_saturation": ClassSpec(
        "op-geth CPU saturation: block production slows under load",
        "low",
        "Scale op-geth CPU up one ladder step; verify the block interval returns to the block time",
        ("op-geth",),
    ),
    "op_geth_oom": ClassSpec(
        "op-geth out of memory: the container is OOM-killed and restarts",
        "high",
        "Raise op-geth's memory limit (needs approval) and notify; a restart alone will be killed again",
        ("op-geth",),
    ),
    "engine_api_failure": ClassSpec(
        "Engine API failure: op-node cannot drive op-geth over the engine API (8551)",
        "medium",
        "Restart op-geth; check that its engine API (port 8551) is reachable from op-node",
        ("op-geth", "op-node"),
    ),
    "jwt_mismatch": ClassSpec(
        "JWT mismatch: op-geth rejects op-node's engine API token, op-node crash-loops",
        "critical",
        "Notify operators: a restart will not fix it: fix the shared JWT secret of op-node and op-geth",
        ("op-node", "op-geth"),
    ),
    "disk_pressure": ClassSpec(
        "Disk pressure: op-geth's data volume is nearly full",
        "critical",
        "Notify; expand the op-geth data volume or prune (needs approval) before geth shuts down",
        ("op-geth",),
    ),
    "peer_loss": ClassSpec(
        "P2P peer loss: the node has no peers",
        "low",
        "Restart the replica op-node; check static peers, bootnodes and the firewall",
        ("op-node",),
    ),
    "l1_reorg": ClassSpec(
        "L1 reorg: op-node saw the L1 head change and re-derives",
        "low",
        "Observe only: op-node walks back and re-derives by itself; no action unless it repeats deeply",
        ("op-node",),
    ),
    "txpool_spam": ClassSpec(
        "Tx pool spam: the pool is at its cap, blocks are full and the base fee rises",
        "medium",
        "Observe; rate-limit at the RPC edge; never restart (it would drop the pool, not the spam)",
        ("op-geth",),
    ),
}
UNKNOWN_SPEC: Final = ClassSpec(
    "Inconclusive: no incident signature is supported by enough evidence",
    "low",
    "Observe and collect more evidence; no automatic action",
    (),
)

_BY_NAME: Final[Mapping[str, ClassSpec]] = {str(cls): spec for cls, spec in SPECS.items()}


def spec_of(cause: str) -> ClassSpec:
    """The catalogue entry of a class name; ``unknown`` (or anything else) gets the inconclusive one."""
    return _BY_NAME.get(cause, UNKNOWN_SPEC)


def sequencer_stall(f: Facts) -> Case:
    case = Case()
    if stalled := f.head_stalled():
        case.add(0.45, *stalled)
    for component, metric in (("op-node", catalog.UNSAFE_L2), ("op-geth", catalog.BLOCK_HEIGHT)):
        values = f.series(component, metric)
        if flat(values):
            case.add(0.1, f"{component} {metric} flat at {values[-1]:.0f} over the last 3 samples")
            break
    if pool := f.rising_quote("op-geth", catalog.TX_POOL_COUNT, min_step=20):
        case.add(0.15, pool)
    case.log(f.logged(r"Engine failed temporarily, backing off sequencer", components=["op-node"]), 0.35)
    case.log(
        f.logged(
            r"Sequencer temporarily could not seal block|Sequencer encountered reset signal"
            r"|sequencer has fallen behind safe head|Sequencer has been stopped",
            components=["op-node"],
        ),
        0.25,
    )
    return case


def l1_rpc_outage(f: Facts) -> Case:
    case = Case()
    if stale := f.l1_stale():
        case.add(0.3, stale)
    l1 = f.series("op-node", catalog.L1_HEAD)
    if flat(l1, points=6):
        case.add(0.1, f"op-node l1Head flat at {l1[-1]:.0f} over the last 6 samples")
    if split := f.safe_flat_unsafe_moving():
        case.add(0.15, split)
    case.log(f.logged(r"L1 temporary error", components=["op-node"]), 0.3)
    case.log(f.logged(r"failed to poll L1 block|l1 heads subscription error"), 0.25)
    case.log(f.logged(r"Failed to query L1 tip", components=["op-batcher"]), 0.1)
    return case


def batcher_failure(f: Facts) -> Case:
    case = Case()
    # An L1 outage stops the batcher too; then the lag is L1's symptom, not the batcher's fault.
    lag_weight = 0.15 if f.l1_trouble() else 0.3
    lag = f.series("op-node", catalog.UNSAFE_SAFE_LAG)
    lag_anomaly = f.anomaly(catalog.UNSAFE_SAFE_LAG)
    if rising(lag, min_step=20) and lag[-1] > 60:
        case.add(lag_weight, f"op-node unsafeSafeLag growing {lag[0]:.0f} → {lag[-1]:.0f} blocks")
    elif lag_anomaly is not None:
        case.add(lag_weight, f"{lag_anomaly.component}: {lag_anomaly.description}")
    if split := f.safe_flat_unsafe_moving():
        case.add(0.5 * lag_weight, split)
    batcher = ["op-batcher"]
    case.log(f.logged(r"insufficient funds", components=batcher), 0.4)
    case.log(f.logged(r"unable to publish transaction", components=batcher), 0.25)
    case.log(f.logged(r"Error publishing tx to l1|Transaction failed to send", components=batcher), 0.15)
    case.log(
        f.logged(r"transaction is underpriced|replacement is underpriced|nonce too low", components=batcher),
        0.1,
    )
    balance = f.latest("op-batcher", "balance")
    if balance is not None and balance < 0.1:
        case.add(0.2, f"op-batcher balance={balance:.4f} ETH")
    return case


def proposer_failure(f: Facts) -> Case:
    case = Case()
    # The catalogue's defining line: repeated, it names the incident by itself.
    case.log(f.logged(r"Failed to send proposal transaction", components=["op-proposer"]), 0.6)
    case.log(f.logged(r"Error getting output", components=["op-proposer"]), 0.2)
    case.log(f.logged(r"Proposer tx successfully published but reverted", min_level=INFO), 0.3)
    proposed = f.series("op-proposer", "proposedL2")
    if flat(proposed, points=6):
        case.add(0.2, f"op-proposer proposedL2 flat at {proposed[-1]:.0f}")
    if f.l1_trouble():
        case.score *= 0.5
    return case


def op_geth_cpu_saturation(f: Facts) -> Case:
    case = Case()
    cpu = f.latest("op-geth", catalog.CPU_USAGE)
    if cpu is not None and cpu >= 80:
        case.add(0.35 if cpu >= 90 else 0.2, f"op-geth cpuUsage={cpu:.1f}% of its CPU request")
        if cpu >= 98:
            # Pinned at its allocation op-geth is being throttled: saturated by definition, and the
            # remedy (one ladder step up, auto tier, verified, rolled back on failure) is cheap.
            case.add(0.2, "op-geth is pinned at its CPU allocation (throttled)")
        recent = f.series("op-geth", catalog.CPU_USAGE)[-3:]
        if len(recent) == 3 and min(recent) >= 80:
            case.add(
                0.1, f"op-geth cpuUsage ≥ 80% for the last 3 samples ({', '.join(fmt(v) for v in recent)})"
            )
    interval = f.latest("op-geth", catalog.BLOCK_INTERVAL)
    if interval is not None and interval > 1.25 * f.block_time_s:
        case.add(0.2, f"op-geth blockInterval={interval:.1f}s (block time {f.block_time_s:g}s)")
    if pool := f.rising_quote("op-geth", catalog.TX_POOL_COUNT, min_step=20):
        case.add(0.1, pool)
    case.log(f.logged(r"Database compacting, degraded performance", components=["op-geth"]), 0.3)
    return case


def op_geth_oom(f: Facts) -> Case:
    case = Case()
    # The peak, not the latest value: after an OOM kill the fresh container starts low again.
    memory = max(
        f.series("op-geth", catalog.MEMORY_USAGE)[-RECENT:], default=f.latest("op-geth", catalog.MEMORY_USAGE)
    )
    if memory is not None and memory >= 95:
        case.add(0.45, f"op-geth memoryUsage peaked at {memory:.1f}% of its limit")
    elif memory is not None and memory >= 85:
        case.add(0.25, f"op-geth memoryUsage peaked at {memory:.1f}% of its limit")
    if growth := f.rising_quote("op-geth", catalog.MEMORY_USAGE, min_step=10):
        case.add(0.1, growth)
    if restarts := f.restarted("op-geth"):
        case.add(0.3, restarts)
    if killed := f.text_mentions(r"OOMKilled|out of memory|exit code 137"):
        case.add(0.35, killed)
    if down := f.down("op-geth"):
        case.add(0.1, down)
    return case


def engine_api_failure(f: Facts) -> Case:
    case = Case()
    case.log(f.logged(r"Failed to share forkchoice-updated signal"), 0.6)
    case.log(f.logged(r"Beacon client online, but no consensus updates", components=["op-geth"]), 0.2)
    case.log(f.logged(r"Served engine_forkchoiceUpdated\S*.*err="), 0.2)
    case.log(f.logged(r"Derivation process error|Engine temporary error", components=["op-node"]), 0.1)
    if case.score and (stalled := f.head_stalled()):
        case.add(0.1, *stalled)
    return case


def jwt_mismatch(f: Facts) -> Case:
    case = Case()
    case.log(
        f.logged(r"401 Unauthorized|signature is invalid|missing token|token is expired|stale token"), 0.6
    )
    case.log(f.logged(r"Error initializing the rollup node", components=["op-node"]), 0.1)
    # A restarting op-node is what a JWT mismatch looks like, but also what every rollout looks like:
    # it only supports the diagnosis once the 401 itself was seen.
    if case.score and (crash := f.restarted("op-node") or f.down("op-node")):
        case.add(0.2, crash)
    return case


def disk_pressure(f: Facts) -> Case:
    case = Case()
    case.log(f.logged(r"Disk space is running low"), 0.6)
    case.log(f.logged(r"Low disk space\. Gracefully shutting down"), 0.7)
    disk = f.latest("op-geth", "diskUsage")
    if disk is not None and disk >= 90:
        case.add(0.3, f"op-geth diskUsage={disk:.1f}%")
    return case


def peer_loss(f: Facts) -> Case:
    case = Case()
    for component, weight in (("op-node", 0.45), ("op-geth", 0.15)):
        peers = f.latest(component, catalog.PEER_COUNT)
        if peers is not None and peers <= 0:
            case.add(weight, f"{component} peerCount=0")
    case.log(f.logged(r"error reconnecting to static peer|static peer disconnected"), 0.3)
    case.log(f.logged(r"Looking for peers\s+peercount=0\b", min_level=INFO), 0.2)
    return case


def l1_reorg(f: Facts) -> Case:
    case = Case()
    case.log(f.logged(r"L1 head signal indicates a possible L1 re-org", components=["op-node"]), 0.6)
    case.log(f.logged(r"Walking back L1Block by hash", components=["op-node"], min_level=INFO), 0.15)
    case.log(f.logged(r"L2 reorg: existing unsafe block does not match", min_level=INFO), 0.2)
    l1 = f.series("op-node", catalog.L1_HEAD)
    if any(b < a for a, b in itertools.pairwise(l1)):
        case.add(0.2, f"op-node l1Head went backwards ({' → '.join(fmt(v) for v in l1[-4:])})")
    return case


def txpool_spam(f: Facts) -> Case:
    case = Case()
    pool = f.latest("op-geth", catalog.TX_POOL_COUNT)
    if pool is not None and pool >= 0.9 * TXPOOL_CAP:
        case.add(0.35, f"op-geth txPoolCount={pool:.0f} (cap {TXPOOL_CAP:.0f})")
    elif pool is not None and pool >= 0.6 * TXPOOL_CAP:
        case.add(0.15, f"op-geth txPoolCount={pool:.0f} (cap {TXPOOL_CAP:.0f})")
    ratios = f.series("op-geth", catalog.GAS_USED_RATIO)[-3:]
    if ratios and min(ratios) >= 0.9:
        case.add(0.25, f"op-geth gasUsedRatio={ratios[-1]:.2f} (full blocks)")
    fees = f.series("op-geth", catalog.BASE_FEE_GWEI)
    if fees and fees[-1] > fees[0] and rising(fees, min_step=0.05 * fees[0]):
        case.add(0.2, f"op-geth baseFeeGwei rising {fees[0]:.3g} → {fees[-1]:.3g}")
    case.log(f.logged(r"txpool is full", components=["op-geth"], min_level=INFO), 0.3)
    # A stalled sequencer also fills the pool; that is the stall's symptom, not spam.
    if f.head_stalled():
        case.score *= 0.5
    return case


SIGNATURES: Final[Mapping[IncidentClass, Callable[[Facts], Case]]] = {
    "sequencer_stall": sequencer_stall,
    "l1_rpc_outage": l1_rpc_outage,
    "batcher_failure": batcher_failure,
    "proposer_failure": proposer_failure,
    "op_geth_cpu_saturation": op_geth_cpu_saturation,
    "op_geth_oom": op_geth_oom,
    "engine_api_failure": engine_api_failure,
    "jwt_mismatch": jwt_mismatch,
    "disk_pressure": disk_pressure,
    "peer_loss": peer_loss,
    "l1_reorg": l1_reorg,
    "txpool_spam": txpool_spam,
}

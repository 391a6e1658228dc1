"""One signature per incident of the catalogue: metric and log evidence weighed into a 0..1 score.

Weights follow how specific a fact is: a message only one fault prints (``401 Unauthorized``,
``Disk space is running low``) weighs most; a symptom many faults share (a flat head, a growing pool)
weighs little, so the fault that explains the symptom outranks the symptom's own class. Log markers,
titles and evidence rules are the incident catalogue's (``sentinai.common.incidents``); each signal a
signature adds is named, with how long it has held, so the diagnosis can say whether the class's
evidence rule is met.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import Final

from sentinai.common import catalog
from sentinai.common.incidents import SPECS, UNKNOWN_SPEC, ClassSpec, IncidentClass, spec_of
from sentinai.rca.evidence import RECENT, Case, Facts, Held, batch_cadence_blocks, flat, fmt, rising

__all__ = ["SIGNATURES", "SPECS", "UNKNOWN_SPEC", "ClassSpec", "spec_of"]


def _stall(f: Facts) -> Held:
    limit = f.stall_limit_s
    return max(
        f.held("op-geth", catalog.SECONDS_SINCE_HEAD, lambda age: age > limit),
        f.held("op-node", catalog.UNSAFE_L2_AGE, lambda age: age > limit),
        key=lambda h: (h.polls, h.span_s),
    )


def sequencer_stall(f: Facts) -> Case:
    case = Case()
    if stalled := f.head_stalled():
        case.add(0.45, *stalled, signal="head stalled", held=_stall(f))
    for component, metric in (("op-node", catalog.UNSAFE_L2), ("op-geth", catalog.BLOCK_HEIGHT)):
        values = f.series(component, metric)
        if flat(values):
            case.add(0.1, f"{component} {metric} flat at {values[-1]:.0f} over the last 3 samples")
            break
    if pool := f.rising_quote("op-geth", catalog.TX_POOL_COUNT, min_step=20):
        case.add(0.15, pool, signal="pool growing")
    case.markers(f, "sequencer_stall")
    return case


def l1_rpc_outage(f: Facts) -> Case:
    case = Case()
    if stale := f.l1_stale():
        case.add(
            0.3, stale, signal="L1 head stale", held=f.held("op-node", catalog.L1_HEAD_AGE, lambda a: a > 60)
        )
    l1 = f.series("op-node", catalog.L1_HEAD)
    if flat(l1, points=6):
        case.add(0.1, f"op-node l1Head flat at {l1[-1]:.0f} over the last 6 samples")
    if split := f.safe_flat_unsafe_moving():
        case.add(0.15, split, signal="safe head stuck")
    case.markers(f, "l1_rpc_outage")
    return case


def batcher_failure(f: Facts) -> Case:
    case = Case()
    # An L1 outage stops the batcher too; then the lag is L1's symptom, not the batcher's fault.
    lag_weight = 0.15 if f.l1_trouble() else 0.3
    lag = f.series("op-node", catalog.UNSAFE_SAFE_LAG)
    lag_anomaly = f.anomaly(catalog.UNSAFE_SAFE_LAG)
    cadence = batch_cadence_blocks(f.block_time_s)
    if rising(lag, min_step=cadence / 3) and lag[-1] > cadence:
        case.add(
            lag_weight,
            f"op-node unsafeSafeLag growing {lag[0]:.0f} → {lag[-1]:.0f} blocks",
            signal="lag growing",
            held=f.held("op-node", catalog.UNSAFE_SAFE_LAG, lambda v: v > cadence),
        )
    elif lag_anomaly is not None:
        case.add(lag_weight, f"{lag_anomaly.component}: {lag_anomaly.description}", signal="lag growing")
    if split := f.safe_flat_unsafe_moving():
        case.add(0.5 * lag_weight, split, signal="safe head stuck")
    case.markers(f, "batcher_failure")
    balance = f.latest("op-batcher", catalog.BALANCE)
    if balance is not None and balance < 0.1:
        case.add(
            0.2,
            f"op-batcher balance={balance:.4f} ETH",
            signal="balance low",
            held=f.held("op-batcher", catalog.BALANCE, lambda b: b < 0.1),
        )
    return case


def proposer_failure(f: Facts) -> Case:
    case = Case()
    case.markers(f, "proposer_failure")
    proposed = f.series("op-proposer", catalog.PROPOSED_L2)
    if flat(proposed, points=6) and case.score:
        case.add(0.2, f"op-proposer proposedL2 flat at {proposed[-1]:.0f}", signal="proposals flat")
    balance = f.latest("op-proposer", catalog.BALANCE)
    if balance is not None and balance < 0.05:
        case.add(0.2, f"op-proposer balance={balance:.4f} ETH", signal="balance low")
    if f.l1_trouble():
        case.score *= 0.5
    return case


def op_geth_cpu_saturation(f: Facts) -> Case:
    case = Case()
    cpu = f.latest("op-geth", catalog.CPU_USAGE)
    if cpu is not None and cpu >= 80:
        held = f.held("op-geth", catalog.CPU_USAGE, lambda v: v >= 80)
        case.add(
            0.35 if cpu >= 90 else 0.2,
            f"op-geth cpuUsage={cpu:.1f}% of its CPU request",
            signal="cpu high",
            held=held,
        )
        if held.polls >= 3:
            shown = ", ".join(fmt(v) for v in f.series("op-geth", catalog.CPU_USAGE)[-3:])
            case.add(0.1, f"op-geth cpuUsage ≥ 80% for the last {held.polls} samples (… {shown})")
    late = 1.25 * f.block_time_s
    interval = f.latest("op-geth", catalog.BLOCK_INTERVAL)
    if interval is not None and interval > late:
        # Late blocks corroborate a pinned op-geth: the throttling is costing the chain, not just the pod.
        case.add(
            0.2,
            f"op-geth blockInterval={interval:.1f}s (block time {f.block_time_s:g}s)",
            signal="blocks late",
            held=f.held("op-geth", catalog.BLOCK_INTERVAL, lambda v: v > late),
        )
    if pool := f.rising_quote("op-geth", catalog.TX_POOL_COUNT, min_step=20):
        case.add(0.1, pool, signal="pool growing")
    case.markers(f, "op_geth_cpu_saturation")
    if not case.signals.get("cpu high"):
        # Without op-geth busy there is no saturation to fix: late blocks alone are someone else's symptom.
        case.score *= 0.5
    return case


def op_geth_oom(f: Facts) -> Case:
    case = Case()
    # The peak, not the latest value: after an OOM kill the fresh container starts low again.
    memory = max(
        f.series("op-geth", catalog.MEMORY_USAGE)[-RECENT:], default=f.latest("op-geth", catalog.MEMORY_USAGE)
    )
    high = f.held("op-geth", catalog.MEMORY_USAGE, lambda v: v >= 85, recurring=True)
    if memory is not None and memory >= 95:
        case.add(
            0.45, f"op-geth memoryUsage peaked at {memory:.1f}% of its limit", signal="memory high", held=high
        )
    elif memory is not None and memory >= 85:
        case.add(
            0.25, f"op-geth memoryUsage peaked at {memory:.1f}% of its limit", signal="memory high", held=high
        )
    if growth := f.rising_quote("op-geth", catalog.MEMORY_USAGE, min_step=10):
        case.add(0.1, growth, signal="memory growing")
    if restarts := f.restarted("op-geth"):
        case.add(0.3, restarts, signal="restarts")
    if killed := f.text_mentions(r"OOMKilled|out of memory|exit code 137"):
        case.add(0.35, killed, signal="killed")
    if down := f.down("op-geth"):
        case.add(0.1, down, signal="down")
    return case


def engine_api_failure(f: Facts) -> Case:
    case = Case()
    case.markers(f, "engine_api_failure")
    if case.score and (stalled := f.head_stalled()):
        case.add(0.1, *stalled, signal="head stalled", held=_stall(f))
    return case


def jwt_mismatch(f: Facts) -> Case:
    case = Case()
    case.markers(f, "jwt_mismatch")
    # A restarting op-node is what a JWT mismatch looks like, but also what every rollout looks like:
    # it only supports the diagnosis once the 401 itself was seen.
    if case.score and (crash := f.restarted("op-node") or f.down("op-node")):
        case.add(0.2, crash, signal="op-node crash loop")
    return case


def disk_pressure(f: Facts) -> Case:
    case = Case()
    case.markers(f, "disk_pressure")
    disk = f.latest("op-geth", catalog.DISK_USAGE)
    if disk is not None and disk >= 90:
        case.add(
            0.45 if disk >= 95 else 0.3,
            f"op-geth diskUsage={disk:.1f}%",
            signal="disk full",
            held=f.held("op-geth", catalog.DISK_USAGE, lambda v: v >= 90),
        )
    return case


def peer_loss(f: Facts) -> Case:
    case = Case()
    for component, weight in (("op-node", 0.45), ("op-geth", 0.15)):
        peers = f.latest(component, catalog.PEER_COUNT)
        if peers is not None and peers <= 0:
            held = f.held(component, catalog.PEER_COUNT, lambda p: p <= 0)
            case.add(weight, f"{component} peerCount=0", signal=f"{component} no peers", held=held)
    case.markers(f, "peer_loss")
    return case


def l1_reorg(f: Facts) -> Case:
    case = Case()
    case.markers(f, "l1_reorg")
    l1 = f.series("op-node", catalog.L1_HEAD)
    if any(b < a for a, b in itertools.pairwise(l1)):
        case.add(
            0.2,
            f"op-node l1Head went backwards ({' → '.join(fmt(v) for v in l1[-4:])})",
            signal="L1 head back",
        )
    return case


def txpool_spam(f: Facts) -> Case:
    case = Case()
    pool = f.latest("op-geth", catalog.TX_POOL_COUNT)
    cap = f.txpool_cap
    near = 0.6 * cap
    if pool is not None and pool >= near:
        held = f.held("op-geth", catalog.TX_POOL_COUNT, lambda v: v >= near)
        weight = 0.35 if pool >= 0.9 * cap else 0.15
        case.add(
            weight,
            f"op-geth txPoolCount={pool:.0f} (cap {cap:.0f})",
            signal="pool near cap",
            held=held,
        )
    case.markers(f, "txpool_spam")
    if not case.score:
        # Full blocks and a rising base fee with a pool far from its cap are demand, not spam.
        return case
    ratios = f.series("op-geth", catalog.GAS_USED_RATIO)[-3:]
    if ratios and min(ratios) >= 0.9:
        case.add(0.25, f"op-geth gasUsedRatio={ratios[-1]:.2f} (full blocks)", signal="full blocks")
    fees = f.series("op-geth", catalog.BASE_FEE_GWEI)
    if fees and fees[-1] > fees[0] and rising(fees, min_step=0.05 * fees[0]):
        case.add(0.2, f"op-geth baseFeeGwei rising {fees[0]:.3g} → {fees[-1]:.3g}", signal="base fee rising")
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

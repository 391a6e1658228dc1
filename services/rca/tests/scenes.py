"""Realistic chain contexts for the tests: a healthy baseline and each incident of the catalogue on top.

Log lines are written in the components' real formats (geth terminal format for op-geth, op-service
logfmt for the others) with the message strings the components print.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime

from sentinai.common.events import AnomalyDetected, DetectionRule
from sentinai.rca.model import RcaContext

T0 = datetime(2026, 11, 26, 23, 14, 15, tzinfo=UTC)
N = 20  # samples per series: 40 s of history at a 2 s poll
CHAIN = "opmain"

Series = dict[str, list[float]]


def geth(level: str, msg: str, **fields: object) -> str:
    """``WARN [11-26|23:14:15.123] Database compacting, degraded performance  database=/data``."""
    head = f"{level.upper():<5}[11-26|23:14:15.123] "
    if not fields:
        return head + msg
    return f"{head}{msg:<40} " + " ".join(f"{k}={v}" for k, v in fields.items())


def op(level: str, msg: str, **fields: object) -> str:
    """``t=2026-11-26T23:14:15+0000 lvl=warn msg="L1 temporary error" err="…"``."""
    parts = ["t=2026-11-26T23:14:15+0000", f"lvl={level}", f'msg="{msg}"']
    parts += [f'{k}="{v}"' if " " in str(v) else f"{k}={v}" for k, v in fields.items()]
    return " ".join(parts)


def ramp(start: float, stop: float, n: int = N) -> list[float]:
    return [start + (stop - start) * i / (n - 1) for i in range(n)]


def healthy_metrics() -> dict[str, Series]:
    geth_height = [1000.0 + i for i in range(N)]
    return {
        "op-geth": {
            "blockHeight": geth_height,
            "secondsSinceHead": [1.0, 0.5] * (N // 2),
            "blockInterval": [2.0] * N,
            "txPoolCount": [120.0, 131.0, 118.0, 125.0] * (N // 4),
            "gasUsedRatio": [0.31, 0.28, 0.33, 0.30] * (N // 4),
            "baseFeeGwei": [0.001] * N,
            "peerCount": [8.0] * N,
            "cpuUsage": [45.0, 52.0, 48.0, 50.0] * (N // 4),
            "memoryUsage": [55.0, 56.0] * (N // 2),
            "restarts": [0.0] * N,
            "podReady": [1.0] * N,
        },
        "op-node": {
            "unsafeL2": geth_height,
            "safeL2": [970.0] * 10 + [1000.0] * 10,
            "l1Head": [500.0 + i // 6 for i in range(N)],
            "unsafeSafeLag": [30.0 + i for i in range(10)] + [10.0 + i for i in range(10)],
            "l1HeadAge": [6.0, 10.0, 2.0] * 6 + [6.0, 10.0],
            "unsafeL2Age": [1.0, 0.5] * (N // 2),
            "peerCount": [12.0] * N,
            "restarts": [0.0] * N,
            "podReady": [1.0] * N,
        },
        "op-batcher": {"restarts": [0.0] * N, "podReady": [1.0] * N},
        "op-proposer": {"restarts": [0.0] * N, "podReady": [1.0] * N},
    }


def healthy_logs() -> dict[str, list[str]]:
    return {
        "op-geth": [
            geth("info", "Imported new potential chain segment", number=1019, hash="ab12cd..ef3456", txs=12),
            geth("info", "Chain head was updated", number=1019, hash="ab12cd..ef3456"),
        ],
        "op-node": [
            op("info", "Sequencer inserted block", block="0xab12:1019", txs=12),
            op("info", "Sequencer inserted block", block="0xcd34:1020", txs=9),
        ],
        "op-batcher": [op("info", "Transaction confirmed", tx="0x77aa", block="0x1b:512")],
        "op-proposer": [op("info", "Proposing output root", output="0x99ff", block=1000)],
    }


def anomaly(
    component: str,
    metric: str,
    value: float,
    *,
    rule: DetectionRule = "liveness",
    description: str = "",
    evidence: Sequence[str] = (),
    event_id: str | None = None,
    at: datetime = T0,
) -> AnomalyDetected:
    eid = event_id or f"a-{component}-{metric}"
    return AnomalyDetected(
        event_id=eid,
        correlation_id=eid,
        episode_id=eid,
        occurred_at=at,
        chain_id=CHAIN,
        component=component,
        metric=metric,
        value=value,
        z_score=1.0,
        direction="up",
        severity="high",
        description=description or f"{metric} anomaly on {component}",
        rule=rule,
        evidence=tuple(evidence),
    )


def context(
    trigger: AnomalyDetected,
    *,
    metrics: Mapping[str, Series] | None = None,
    logs: Mapping[str, list[str]] | None = None,
    active: Sequence[AnomalyDetected] = (),
) -> RcaContext:
    """The healthy baseline with ``metrics`` series and ``logs`` lines laid over it."""
    merged = healthy_metrics()
    for component, series in (metrics or {}).items():
        merged.setdefault(component, {}).update(series)
    lines = healthy_logs()
    for component, extra in (logs or {}).items():
        lines[component] = [*lines.get(component, []), *extra]
    return RcaContext(
        chain_id=CHAIN,
        anomaly=trigger,
        active=(trigger, *active),
        metrics=merged,
        logs={c: tuple(ls[-50:]) for c, ls in lines.items()},
    )


# ---- one scene per incident class ----------------------------------------------------------------

STALL_AGE = [1.0] * 12 + [2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0, 16.0]
FLAT_HEAD = [1000.0 + min(i, 11) for i in range(N)]


def sequencer_stall() -> RcaContext:
    line = op(
        "error",
        "Engine failed temporarily, backing off sequencer",
        err="temp: failed to start building on top of L2 chain 0xab12:1011, error (*rpc.jsonError): "
        "context deadline exceeded",
    )
    return context(
        anomaly("op-geth", "secondsSinceHead", 9.0, description="Sequencer stall: unsafe head flat for 9.0s"),
        metrics={
            "op-geth": {
                "secondsSinceHead": STALL_AGE,
                "blockHeight": FLAT_HEAD,
                "txPoolCount": ramp(120, 900),
            },
            "op-node": {"unsafeL2Age": STALL_AGE, "unsafeL2": FLAT_HEAD},
        },
        logs={"op-node": [line] * 4},
    )


def l1_rpc_outage() -> RcaContext:
    return context(
        anomaly("op-node", "l1HeadAge", 150.0, description="L1 head stale: newest L1 block seen is 150s old"),
        metrics={
            "op-node": {
                "l1HeadAge": ramp(40, 150),
                "l1Head": [503.0] * N,
                "safeL2": [1000.0] * N,
                "unsafeL2": ramp(1000, 1095),
                "unsafeSafeLag": ramp(20, 95),
            }
        },
        logs={
            "op-node": [
                op("warn", "failed to poll L1 block", label="latest", err="503 Service Unavailable"),
                op(
                    "warn",
                    "L1 temporary error",
                    err="temp: failed to fetch L1 block info: 503 Service Unavailable",
                ),
            ]
            * 3,
            "op-batcher": [op("warn", "Failed to query L1 tip", err="503 Service Unavailable")] * 2,
            "op-proposer": [
                op(
                    "error",
                    "Failed to send proposal transaction",
                    err="failed to send tx: context deadline exceeded",
                )
            ],
        },
    )


def batcher_failure() -> RcaContext:
    err = "insufficient funds for gas * price + value: balance 1000000000000, tx cost 2113000000000000"
    return context(
        anomaly("op-node", "unsafeSafeLag", 420.0, description="Safe head falling behind: lag 420 blocks"),
        metrics={
            "op-node": {"unsafeSafeLag": ramp(200, 420), "safeL2": [1000.0] * N, "unsafeL2": ramp(1200, 1420)}
        },
        logs={
            "op-batcher": [
                op("warn", "unable to publish transaction", service="batcher", err=err),
                op("warn", "transaction is underpriced", service="batcher"),
                op("error", "Error publishing tx to l1", err=err),
            ]
            * 2
        },
    )


def proposer_failure() -> RcaContext:
    line = op(
        "error",
        "Failed to send proposal transaction",
        err="failed to send tx: context deadline exceeded",
        l2_block=1000,
    )
    return context(
        anomaly("op-proposer", "log:proposer_failure", 2.0, rule="log", evidence=[line]),
        logs={"op-proposer": [line, line]},
    )


def op_geth_cpu_saturation() -> RcaContext:
    return context(
        anomaly("op-geth", "cpuUsage", 97.5, rule="zscore", description="CPU spike detected: 97.5% (4.1σ)"),
        metrics={
            "op-geth": {
                "cpuUsage": [48.0] * 14 + [88.0, 93.0, 96.0, 97.0, 98.0, 97.5],
                "blockInterval": [2.0] * 14 + [2.2, 2.6, 3.0, 3.4, 3.6, 3.8],
                "txPoolCount": ramp(120, 1400),
            }
        },
        logs={
            "op-geth": [
                geth("warn", "Database compacting, degraded performance", database="/data/geth/chaindata")
            ]
            * 3
        },
    )


def op_geth_oom() -> RcaContext:
    return context(
        anomaly("op-geth", "restarts", 2.0, description="Pod restarted: op-geth restart count is 2"),
        metrics={
            "op-geth": {
                # Climbs to the limit, killed, climbs again: the OOM saw-tooth.
                "memoryUsage": [
                    *ramp(60, 97, 10),
                    20.0,
                    45.0,
                    70.0,
                    96.0,
                    30.0,
                    55.0,
                    80.0,
                    95.0,
                    98.0,
                    30.0,
                ],
                "restarts": [0.0] * 10 + [1.0] * 9 + [2.0],
                "podReady": [1.0] * 19 + [0.0],
                "blockHeight": FLAT_HEAD,
            },
            "op-node": {"unsafeL2Age": [1.0] * 17 + [4.0, 6.0, 8.0], "unsafeL2": FLAT_HEAD},
        },
        logs={
            "op-node": [
                op(
                    "warn",
                    "Engine temporary error",
                    err="dial tcp 10.42.0.12:8551: connect: connection refused",
                )
            ]
        },
    )


def engine_api_failure() -> RcaContext:
    err = 'Post "http://op-geth-0.op-geth:8551": dial tcp 10.42.0.12:8551: i/o timeout'
    return context(
        anomaly("op-node", "log:engine_api_failure", 3.0, rule="log"),
        metrics={
            "op-geth": {"secondsSinceHead": STALL_AGE, "blockHeight": FLAT_HEAD},
            "op-node": {"unsafeL2Age": STALL_AGE, "unsafeL2": FLAT_HEAD},
        },
        logs={
            "op-node": [
                op("error", "Failed to share forkchoice-updated signal", err=err),
                op("error", "Derivation process error", err="engine: forkchoice update failed"),
            ]
            * 3,
            "op-geth": [
                geth(
                    "warn",
                    "Beacon client online, but no consensus updates received in a while. "
                    "Please fix your beacon client to follow the chain!",
                )
            ],
        },
    )


def jwt_mismatch() -> RcaContext:
    line = op(
        "error",
        "Error initializing the rollup node",
        err="failed to initialize engine: 401 Unauthorized: signature is invalid",
    )
    return context(
        anomaly("op-node", "log:jwt_mismatch", 2.0, rule="log", evidence=[line]),
        metrics={
            "op-node": {"restarts": [0.0] * 12 + [1.0] * 4 + [2.0] * 4, "podReady": [1.0] * 10 + [0.0] * 10},
            "op-geth": {"secondsSinceHead": STALL_AGE, "blockHeight": FLAT_HEAD},
        },
        logs={"op-node": [line, line]},
    )


def disk_pressure() -> RcaContext:
    line = geth(
        "warn",
        "Disk space is running low. Geth will shutdown if disk space runs below critical level.",
        available="1.20 GiB",
        critical_level="1.00 GiB",
        path="/data/geth",
    )
    return context(
        anomaly("op-geth", "log:disk_pressure", 1.0, rule="log", evidence=[line]),
        logs={"op-geth": [line, line]},
    )


def peer_loss() -> RcaContext:
    return context(
        anomaly("op-node", "peerCount", 0.0, description="Peer loss: op-node has no peers"),
        metrics={
            "op-node": {"peerCount": [12.0] * 10 + [0.0] * 10},
            "op-geth": {"peerCount": [8.0] * 10 + [0.0] * 10},
        },
        logs={
            "op-node": [
                op(
                    "warn",
                    "error reconnecting to static peer",
                    peer="16Uiu2HAm9f3c1d2e",
                    err="failed to dial: context deadline exceeded",
                )
            ]
            * 3,
            "op-geth": [geth("info", "Looking for peers", peercount=0, tried=12, static=2)],
        },
    )


def l1_reorg() -> RcaContext:
    line = op(
        "warn",
        "L1 head signal indicates a possible L1 re-org",
        old_l1_head="0xaa11:503",
        new_l1_head_parent="0xbb22:502",
        new_l1_head="0xbb33:503",
    )
    return context(
        anomaly("op-node", "log:l1_reorg", 1.0, rule="log", evidence=[line]),
        logs={"op-node": [line, op("info", "Walking back L1Block by hash", depth=3)]},
    )


def txpool_spam() -> RcaContext:
    return context(
        anomaly(
            "op-geth", "txPoolCount", 5120.0, rule="zscore", description="TxPool spike detected: 5120 txs"
        ),
        metrics={
            "op-geth": {
                "txPoolCount": ramp(120, 5120, 12) + [5120.0] * 8,
                "gasUsedRatio": [0.3] * 10 + [1.0] * 10,
                "baseFeeGwei": [0.001] * 10 + [0.001 * 1.125**i for i in range(1, 11)],
                "cpuUsage": [50.0] * 10 + [62.0] * 10,
            }
        },
        logs={
            "op-geth": [
                geth(
                    "warn",
                    "Discarding transaction",
                    reason="txpool is full",
                    err="txpool is full",
                    discarded=140,
                )
            ]
            * 3
        },
    )


SCENES = {
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
HARMLESS_ERROR = op("error", "Failed to fetch receipts", err="context canceled", block="0x9c:4411")


def timed(ctx: RcaContext, *, poll_s: float = 20.0) -> RcaContext:
    """The scene as the rca service sees it: samples ``poll_s`` apart, each log line in its own poll
    (the default, a slow poll, makes every signal of the scene one that has held for a while)."""
    end = ctx.anomaly.occurred_at.timestamp()
    metric_times = {
        c: {m: tuple(end - (len(v) - 1 - i) * poll_s for i in range(len(v))) for m, v in ms.items()}
        for c, ms in ctx.metrics.items()
    }
    log_times = {
        c: tuple(end - (len(ls) - 1 - i) * poll_s for i in range(len(ls))) for c, ls in ctx.logs.items()
    }
    return replace(ctx, metric_times=metric_times, log_times=log_times)

"""Two realistic incidents as telemetry (after the rca's test scenes): one auto-heals, one waits.

An op-geth CPU saturation's remedy (one ladder step more CPU) is low tier and runs at once; a
sequencer stall's (restart op-node) is high tier and waits for a human. Values are oldest first,
one every 2 s; log lines are in the components' real formats.
"""

from __future__ import annotations

from dataclasses import dataclass

from sentinai.common.actions import Action, RestartComponent, ScaleCpu
from sentinai.common.events import DetectionRule

N = 20
Series = dict[str, list[float]]


def geth(level: str, msg: str, **fields: object) -> str:
    head = f"{level.upper():<5}[11-26|23:14:15.123] "
    return f"{head}{msg:<40} " + " ".join(f"{k}={v}" for k, v in fields.items())


def op(level: str, msg: str, **fields: object) -> str:
    parts = ["t=2026-11-26T23:14:15+0000", f"lvl={level}", f'msg="{msg}"']
    return " ".join(parts + [f'{k}="{v}"' if " " in str(v) else f"{k}={v}" for k, v in fields.items()])


def ramp(start: float, stop: float) -> list[float]:
    return [start + (stop - start) * i / (N - 1) for i in range(N)]


def _healthy() -> dict[str, Series]:
    height = [1000.0 + i for i in range(N)]
    return {
        "op-geth": {
            "blockHeight": height,
            "secondsSinceHead": [1.0, 0.5] * (N // 2),
            "blockInterval": [2.0] * N,
            "txPoolCount": [120.0, 131.0, 118.0, 125.0] * (N // 4),
            "gasUsedRatio": [0.31, 0.28, 0.33, 0.30] * (N // 4),
            "peerCount": [8.0] * N,
            "cpuUsage": [45.0, 52.0, 48.0, 50.0] * (N // 4),
            "memoryUsage": [55.0, 56.0] * (N // 2),
            "restarts": [0.0] * N,
            "podReady": [1.0] * N,
        },
        "op-node": {
            "unsafeL2": height,
            "safeL2": [970.0] * 10 + [1000.0] * 10,
            "l1Head": [500.0 + i // 6 for i in range(N)],
            "l1HeadAge": [6.0, 10.0, 2.0] * 6 + [6.0, 10.0],
            "unsafeL2Age": [1.0, 0.5] * (N // 2),
            "peerCount": [12.0] * N,
            "restarts": [0.0] * N,
            "podReady": [1.0] * N,
        },
        "op-batcher": {"restarts": [0.0] * N, "podReady": [1.0] * N},
        "op-proposer": {"restarts": [0.0] * N, "podReady": [1.0] * N},
    }


def _healthy_logs() -> dict[str, list[str]]:
    return {
        "op-geth": [
            geth("info", "Imported new potential chain segment", number=1019, hash="ab12..ef34", txs=12)
        ],
        "op-node": [op("info", "Sequencer inserted block", block="0xab12:1019", txs=12)],
        "op-batcher": [op("info", "Transaction confirmed", tx="0x77aa", block="0x1b:512")],
        "op-proposer": [op("info", "Proposing output root", output="0x99ff", block=1000)],
    }


@dataclass(frozen=True)
class Incident:
    name: str
    rules_class: str
    remedy: Action
    auto: bool
    metrics: dict[str, Series]
    logs: dict[str, list[str]]
    # The trigger anomaly as the detector reports it: component, metric, value, rule, description.
    component: str
    metric: str
    value: float
    rule: DetectionRule
    description: str


def _overlay(
    metrics: dict[str, Series], logs: dict[str, list[str]]
) -> tuple[dict[str, Series], dict[str, list[str]]]:
    merged, lines = _healthy(), _healthy_logs()
    for component, series in metrics.items():
        merged[component].update(series)
    for component, extra in logs.items():
        lines[component] = [*lines[component], *extra]
    return merged, lines


def cpu_saturation() -> Incident:
    metrics, logs = _overlay(
        {
            "op-geth": {
                # Pinned and late for 22 s: long enough for the class's evidence rule (20 s, 2 signals).
                "cpuUsage": [48.0] * 8
                + [88.0, 93.0, 96.0, 97.0, 98.0, 97.5, 98.0, 99.0, 98.5, 97.0, 98.0, 97.5],
                "blockInterval": [2.0] * 8 + [2.6, 3.0, 3.4, 3.6, 3.8, 3.6, 3.8, 3.9, 3.7, 3.8, 3.6, 3.8],
                "txPoolCount": ramp(120, 1400),
            }
        },
        {"op-geth": [geth("warn", "Database compacting, degraded performance", database="/data/geth")] * 3},
    )
    return Incident(
        "cpu",
        "op_geth_cpu_saturation",
        ScaleCpu(component="op-geth", vcpu=2),
        True,
        metrics,
        logs,
        "op-geth",
        "cpuUsage",
        97.5,
        "zscore",
        "CPU spike detected: 97.5% (4.1σ)",
    )


def sequencer_stall() -> Incident:
    # Stalled for 18 s, over 3 block times for 16 s: the class's evidence rule (6 block times) is met.
    age = [1.0] * 9 + [2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0, 16.0, 18.0, 20.0, 22.0]
    flat = [1000.0 + min(i, 8) for i in range(N)]
    line = op(
        "error",
        "Engine failed temporarily, backing off sequencer",
        err="temp: failed to start building on top of L2 chain 0xab12:1011: context deadline exceeded",
    )
    metrics, logs = _overlay(
        {
            "op-geth": {"secondsSinceHead": age, "blockHeight": flat, "txPoolCount": ramp(120, 900)},
            "op-node": {"unsafeL2Age": age, "unsafeL2": flat},
        },
        {"op-node": [line] * 4},
    )
    return Incident(
        "stall",
        "sequencer_stall",
        RestartComponent(component="op-node"),
        False,
        metrics,
        logs,
        "op-geth",
        "secondsSinceHead",
        22.0,
        "liveness",
        "Sequencer stall: unsafe head flat for 22.0s",
    )

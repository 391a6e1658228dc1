"""``make bench-scaling``: vCPU scaling policies replayed side by side over demand traces.

Each trace is the cores op-geth needs, step by step. A contender sees only the past (one
observation per step: used CPU capped by the allocation, the allocation, and on L2 traces the tx
pool, gas used ratio and block interval, which react to under-provisioning) and may ask for a ladder
step. An accepted step lands after the contender's own decision time plus ``PATCH_S``; the pod then
restarts for ``RESTART_S``, counted as under-provisioned. The harness holds back steps asked within
the policy cooldown for contenders that do not keep it themselves. The first day of every trace is
warm-up (VPA's histogram and the predictor's history fill) and is not scored.

Prints one table (test half unless ``--split``), writes ``.reports/scaling.json`` and
``.reports/scaling.png`` (under-provisioned minutes vs core-hours per day, every contender).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench import ROOT
from bench.nabdata import nab_folder
from bench.scaling.contenders import Contender, Live, Reactive, SeedScore, Static, Vpa, tier
from bench.scaling.traces import LEAD_STEPS, Array, Split, Trace, load
from sentinai.common.actions import ScaleCpu
from sentinai.common.policy import Policy, classify, load_policy
from sentinai.predictor.logic import Point
from sentinai.predictor.settings import PredictorSettings

PATCH_S = 15.0  # API call, admission, kubelet picking up the new spec
RESTART_S = 30.0  # op-geth down while its pod is recreated with the new request
WARMUP_S = 86_400.0
FLAP_S = 900.0
NOMINAL_BLOCK_S = 2.0
START_VCPU = 4.0


@dataclass
class Run:
    """Per-step accounting of one contender on one trace."""

    under_s: Array  # seconds of the step under-provisioned (demand above allocation, or restarting)
    core_s: Array  # core-seconds allocated during the step
    changes: list[tuple[float, float, float]] = field(default_factory=list)  # (effective t, from, to)
    latency_s: list[float] = field(default_factory=list)
    bounds: list[tuple[float, float]] = field(default_factory=list)


def observe(trace: Trace, k: int, *, t: float, alloc: float) -> Point:
    """What the collector would report for step ``k`` under allocation ``alloc``."""
    d = float(trace.demand[k])
    used = min(d, alloc)
    if trace.arrivals is None or trace.gas_capacity is None:
        return Point(
            t=t, cpu_cores=used, cpu_request=alloc, tx_pool=None, gas_used_ratio=None, block_interval=None
        )
    a = trace.arrivals
    rising = max(0.0, float(a[k] - a[max(0, k - LEAD_STEPS)]))
    short = max(0.0, 1 - alloc / d) if d > 0 else 0.0
    return Point(
        t=t,
        cpu_cores=used,
        cpu_request=alloc,
        # Arrivals outrunning the CPU they will cost back the pool up first; a starved op-geth more.
        tx_pool=40.0 + 300.0 * rising + 3000.0 * short,
        gas_used_ratio=min(1.0, 0.3 * float(a[k]) / float(trace.gas_capacity[k])),
        block_interval=min(20.0, NOMINAL_BLOCK_S * max(1.0, d / alloc) ** 2),
    )


def simulate(trace: Trace, contender: Contender, *, ladder: Sequence[float], cooldown_s: float) -> Run:
    dt = trace.step_s
    n = len(trace.demand)
    run = Run(under_s=np.zeros(n), core_s=np.zeros(n))
    alloc = START_VCPU
    pending: tuple[float, float, float] | None = None  # (lands, ready, vcpu)
    last_asked = -np.inf
    contender.start(ladder=ladder, vcpu=alloc)
    for k in range(n):
        a, b = k * dt, (k + 1) * dt
        d = float(trace.demand[k])
        under = core = 0.0
        cursor = a
        if pending is not None and pending[0] < b:
            lands, ready, vcpu = pending
            before = max(0.0, lands - cursor)
            under += before * (d > alloc + 1e-9)
            core += before * alloc
            down = max(0.0, min(b, ready) - max(cursor, lands))
            under += down
            core += down * max(alloc, vcpu)
            cursor = min(b, max(cursor, ready))
            if ready <= b:
                run.changes.append((ready, alloc, vcpu))
                alloc, pending = vcpu, None
                contender.executed(t=ready, vcpu=vcpu)
        rest = b - cursor
        under += rest * (d > alloc + 1e-9)
        core += rest * alloc
        run.under_s[k], run.core_s[k] = under, core
        point = observe(trace, k, t=b, alloc=alloc)
        started = time.perf_counter()
        wanted = contender.decide(point)
        took = time.perf_counter() - started
        run.latency_s.append(took)
        if wanted is None or wanted == alloc or pending is not None:
            continue
        if not contender.own_cooldown and b - last_asked < cooldown_s:
            continue
        last_asked = b
        lands = b + took + PATCH_S
        pending = (lands, lands + RESTART_S, wanted)
    if isinstance(contender, Live):
        run.bounds = contender.bounds
    return run


def oracle(trace: Trace, *, ladder: Sequence[float]) -> Run:
    """The smallest sufficient step at every step, changed instantly and for free."""
    alloc = np.array([tier(float(d), ladder) for d in trace.demand])
    dt = trace.step_s
    run = Run(under_s=dt * (trace.demand > alloc + 1e-9), core_s=dt * alloc)
    moved = np.flatnonzero(np.diff(alloc)) + 1
    run.changes = [(k * dt, float(alloc[k - 1]), float(alloc[k])) for k in moved]
    return run


def metrics(run: Run, trace: Trace, *, horizon_s: float) -> dict[str, float]:
    dt = trace.step_s
    first = int(WARMUP_S / dt)
    days = (len(trace.demand) - first) * dt / 86_400
    scored_from = first * dt
    changes = [c for c in run.changes if c[0] >= scored_from]
    ups = [t for t, old, new in changes if new > old]
    flaps = sum(1 for t_up in ups if any(t_up < t <= t_up + FLAP_S and new < old for t, old, new in changes))
    demand_core_s = float(np.sum(trace.demand[first:])) * dt
    core_s = float(np.sum(run.core_s[first:]))
    out = {
        "underProvisionedMinPerDay": float(np.sum(run.under_s[first:])) / 60 / days,
        "coreHoursPerDay": core_s / 3600 / days,
        "slackPct": 100 * max(0.0, 1 - min(demand_core_s, core_s) / core_s),
        "actionsPerDay": len(changes) / days,
        "flaps": float(flaps),
        "p99DecisionMs": 1000 * float(np.percentile(run.latency_s[first:], 99)) if run.latency_s else 0.0,
    }
    if run.bounds:
        h = round(horizon_s / dt)
        # A bound published after step k holds for the demand of step k + h (its horizon).
        checks = [
            trace.demand[round(t / dt) - 1 + h] <= u + 1e-9
            for t, u in run.bounds
            if t >= scored_from and round(t / dt) - 1 + h < len(trace.demand)
        ]
        out["boundCoverage"] = float(np.mean(checks)) if checks else float("nan")
    return out


# --------------------------------------------------------------------------------- step response


def step_response(
    make: Callable[[], Contender], *, ladder: Sequence[float], cooldown_s: float
) -> dict[str, Any]:
    """Demand doubles from 1.5 cores (2 vCPU holds it) to 3.0 (4 vCPU needed), sampled every 10 s.

    Measured from the first sample at or over 80 % of the allocation after the step to when a step
    that holds the demand is patched in (lands) and serving (after the restart).
    """
    dt, before, after = 10.0, 2 * 360, 30 * 6
    rng = np.random.default_rng(11)
    demand = np.r_[np.full(before, 1.5), np.full(after, 3.0)] * np.exp(rng.normal(0, 0.02, before + after))
    trace = Trace(name="step", split="test", step_s=dt, demand=demand, arrivals=None, gas_capacity=None)
    contender = make()
    alloc_start = 2.0
    global START_VCPU  # noqa: PLW0603 - the step starts from the step that holds the old demand
    saved, START_VCPU = START_VCPU, alloc_start
    try:
        run = simulate(trace, contender, ladder=ladder, cooldown_s=cooldown_s)
    finally:
        START_VCPU = saved
    stepped = before * dt
    over = stepped + dt  # the first sample of the new demand is over 80 % of 2 vCPU (it is pinned)
    adequate = [(t, new) for t, _, new in run.changes if t > stepped and new >= 3.0 * 1.05]
    ready = adequate[0][0] - over if adequate else None
    return {
        "contender": contender.name,
        "patchedAfterS": None if ready is None else round(ready - RESTART_S, 1),
        "servingAfterS": None if ready is None else round(ready, 1),
        "vcpu": adequate[0][1] if adequate else None,
        "flaps": sum(1 for t, old, new in run.changes if t > stepped and new < old),
    }


# --------------------------------------------------------------------------------------- report


def contenders(policy: Policy) -> list[Callable[[], Contender]]:
    return [
        lambda: Static(4.0),
        lambda: Vpa("VPA default"),
        lambda: Vpa("VPA p99", target=0.99),
        Reactive,
        SeedScore,
        lambda: Live(policy=policy),
    ]


def mean(rows: Sequence[dict[str, float]], key: str) -> float:
    values = [r[key] for r in rows if key in r and not np.isnan(r[key])]
    return float(np.mean(values)) if values else float("nan")


def bars(results: dict[str, dict[str, dict[str, float]]], step: dict[str, Any]) -> list[dict[str, Any]]:
    ours, vpa, orc = (results[n] for n in ("SentinAI", "VPA default", "oracle"))
    traces = [t for t in ours if t != "mean"]
    m = {name: r["mean"] for name, r in results.items()}
    under, core = "underProvisionedMinPerDay", "coreHoursPerDay"
    worse_both = [t for t in traces if ours[t][under] > vpa[t][under] + 1e-9 and ours[t][core] > vpa[t][core]]
    worse_either = [
        t for t in traces if ours[t][under] > vpa[t][under] + 1e-9 or ours[t][core] > vpa[t][core] + 1e-9
    ]
    busiest = max(traces, key=lambda t: ours[t]["actionsPerDay"])
    max_actions = ours[busiest]["actionsPerDay"]
    flaps = sum(ours[t]["flaps"] for t in traces)
    excess = 100 * (m["SentinAI"][core] / m["oracle"][core] - 1)
    mean_excess = m["SentinAI"]["excessOverOraclePct"]
    worst_excess = max(100 * (ours[t][core] / orc[t][core] - 1) for t in traces)
    coverage = m["SentinAI"].get("boundCoverage", float("nan"))
    checks = [
        ("under-provisioned ≤ 1/3 of VPA default", m["SentinAI"][under] <= m["VPA default"][under] / 3,
         f"{m['SentinAI'][under]:.1f} vs {m['VPA default'][under]:.1f} / 3"),
        ("core-hours ≤ VPA default", m["SentinAI"][core] <= m["VPA default"][core],
         f"{m['SentinAI'][core]:.1f} vs {m['VPA default'][core]:.1f}"),
        ("under-provisioned ≤ VPA p99", m["SentinAI"][under] <= m["VPA p99"][under],
         f"{m['SentinAI'][under]:.1f} vs {m['VPA p99'][under]:.1f}"),
        ("core-hours ≥ 3 % below VPA p99", m["SentinAI"][core] <= 0.97 * m["VPA p99"][core],
         f"{100 * (1 - m['SentinAI'][core] / m['VPA p99'][core]):.1f} % below"),
        ("no trace worse than VPA default on both", not worse_both, ", ".join(worse_both) or "none"),
        ("(strict) no trace worse than VPA default on either", not worse_either,
         ", ".join(worse_either) or "none"),
        ("core-hours ≤ oracle + 15 % (mean core-hours and mean per-trace excess)",
         excess <= 15 and mean_excess <= 15,
         f"+{excess:.1f} % of mean core-hours, per-trace mean +{mean_excess:.1f} %, "
         f"worst trace +{worst_excess:.1f} %"),
        ("≤ 6 actions per day (mean of the traces)", m["SentinAI"]["actionsPerDay"] <= 6,
         f"{m['SentinAI']['actionsPerDay']:.2f} a day"),
        ("(strict) ≤ 6 actions per day on every trace", max_actions <= 6,
         f"max {max_actions:.1f} ({busiest})"),
        ("0 flaps", flaps == 0, f"{flaps:.0f}"),
        ("90 % bound covers 88-92 %", 0.88 <= coverage <= 0.92, f"{100 * coverage:.1f} %"),
        ("p99 decision ≤ 5 ms", m["SentinAI"]["p99DecisionMs"] <= 5,
         f"{m['SentinAI']['p99DecisionMs']:.2f} ms"),
        ("2x→4x step: adequate step patched within 60 s",
         step["patchedAfterS"] is not None and step["patchedAfterS"] <= 60,
         f"patched {step['patchedAfterS']} s, serving {step['servingAfterS']} s"),
    ]  # fmt: skip
    return [{"bar": name, "met": bool(ok), "value": value} for name, ok, value in checks]


COLUMNS = [
    ("underProvisionedMinPerDay", "under min/d", "{:9.1f}"),
    ("coreHoursPerDay", "core-h/d", "{:8.1f}"),
    ("excessOverOraclePct", "vs oracle", "{:+8.1f}%"),
    ("slackPct", "slack", "{:5.1f}%"),
    ("actionsPerDay", "actions/d", "{:9.1f}"),
    ("flaps", "flaps", "{:5.0f}"),
    ("p99DecisionMs", "p99 ms", "{:7.3f}"),
    ("boundCoverage", "cover", "{:6.1%}"),
]


def table(results: dict[str, dict[str, dict[str, float]]]) -> str:
    header = f"{'contender':<16}" + "".join(f"{label:>11}" for _, label, _ in COLUMNS)
    lines = [header, "-" * len(header)]
    for name, rows in results.items():
        m = rows["mean"]
        cells = [
            f"{fmt.format(m[key]):>11}" if key in m and not np.isnan(m[key]) else f"{'':>11}"
            for key, _, fmt in COLUMNS
        ]
        lines.append(f"{name:<16}" + "".join(cells))
    return "\n".join(lines)


def per_trace(results: dict[str, dict[str, dict[str, float]]], names: Sequence[str]) -> str:
    traces = [t for t in results["oracle"] if t != "mean"]
    header = f"{'trace':<28}" + "".join(f"{n[:14]:>16}" for n in names)
    lines = ["under-provisioned min/day | core-hours/day per test trace", header]
    for t in traces:
        cells = "".join(
            f"{results[n][t]['underProvisionedMinPerDay']:>7.1f} |{results[n][t]['coreHoursPerDay']:>6.1f} "
            for n in names
        )
        lines.append(f"{t:<28}{cells}")
    return "\n".join(lines)


def plot(results: dict[str, dict[str, dict[str, float]]], path: Path, *, split: Split) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    for i, (name, rows) in enumerate(results.items()):
        colour = f"C{i}"
        traces = [r for t, r in rows.items() if t != "mean"]
        ax.scatter(
            [r["coreHoursPerDay"] for r in traces],
            [r["underProvisionedMinPerDay"] for r in traces],
            color=colour,
            alpha=0.25,
            s=14,
        )
        m = rows["mean"]
        ax.scatter(m["coreHoursPerDay"], m["underProvisionedMinPerDay"], color=colour, s=80, label=name,
                   edgecolor="black", zorder=3)  # fmt: skip
    ax.set_yscale("symlog", linthresh=1)
    ax.set_xlabel("core-hours per day")
    ax.set_ylabel("under-provisioned minutes per day (symlog)")
    ax.set_title(f"op-geth vCPU scaling, {split} traces: mean (large) and per trace (small)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__.splitlines()[0])
    parser.add_argument("--nab", type=Path, help="NAB data folder (default: SENTINAI_NAB)")
    parser.add_argument("--split", choices=["tune", "test"], default="test")
    parser.add_argument("--out", type=Path, default=ROOT / ".reports" / "scaling.json")
    parser.add_argument("--only", nargs="*", help="contender names to run (oracle always runs)")
    args = parser.parse_args(argv)
    args.nab = nab_folder(args.nab)
    if hasattr(os, "sched_setaffinity"):
        # One core: the decision-time bar is for one core, and the machine is shared.
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    policy = load_policy()
    ladder = sorted(policy.vcpu_ladder)
    cooldown_s = classify(ScaleCpu(component="op-geth", vcpu=ladder[-1]), policy).cooldown_s
    horizon_s = PredictorSettings().horizon_s
    traces, flat = load(args.nab, split=args.split)
    makers = [m for m in contenders(policy) if not args.only or m().name in args.only]
    started = time.perf_counter()
    results: dict[str, dict[str, dict[str, float]]] = {"oracle": {}}
    for trace in traces:
        base = oracle(trace, ladder=ladder)
        results["oracle"][trace.name] = metrics(base, trace, horizon_s=horizon_s)
        for make in makers:
            contender = make()
            run = simulate(trace, contender, ladder=ladder, cooldown_s=cooldown_s)
            results.setdefault(contender.name, {})[trace.name] = metrics(run, trace, horizon_s=horizon_s)
        print(f"  {trace.name}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    for rows in results.values():
        for t, row in rows.items():
            oracle_core = results["oracle"][t]["coreHoursPerDay"]
            row["excessOverOraclePct"] = 100 * (row["coreHoursPerDay"] / oracle_core - 1)
        keys = {k for row in rows.values() for k in row}
        rows["mean"] = {k: mean(list(rows.values()), k) for k in sorted(keys)}
    step = step_response(lambda: Live(policy=policy), ladder=ladder, cooldown_s=cooldown_s)
    steps = [step_response(m, ladder=ladder, cooldown_s=cooldown_s) for m in makers if m().name != "SentinAI"]
    elapsed = time.perf_counter() - started
    print(table(results))
    print()
    print(per_trace(results, [n for n in ("oracle", "VPA default", "VPA p99", "SentinAI") if n in results]))
    print()
    print("2x→4x step (s from the first over-threshold sample): ", end="")
    print("; ".join(f"{s['contender']} patched {s['patchedAfterS']}" for s in [*steps, step]))
    report_bars = bars(results, step) if "SentinAI" in results and "VPA p99" in results else []
    for bar in report_bars:
        print(f"  [{'x' if bar['met'] else ' '}] {bar['bar']}: {bar['value']}")
    print(f"{len(traces)} {args.split} traces ({', '.join(flat)} left out as near-flat) in {elapsed:.0f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    png = args.out.with_suffix(".png")
    plot(results, png, split=args.split)
    report = {
        "split": args.split,
        "traces": {
            t.name: {"days": t.days, "stepS": t.step_s, "l2Signals": t.arrivals is not None} for t in traces
        },
        "leftOutNearFlat": flat,
        "ladder": ladder,
        "cooldownS": cooldown_s,
        "patchS": PATCH_S,
        "restartS": RESTART_S,
        "warmupS": WARMUP_S,
        "contenders": results,
        "stepResponse": [*steps, step],
        "bars": report_bars,
        "png": str(png.relative_to(ROOT)) if png.is_relative_to(ROOT) else str(png),
        "elapsedS": round(elapsed, 1),
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine()},
    }
    args.out.write_text(json.dumps(report, indent=2, allow_nan=False, default=float) + "\n")
    print(f"wrote {args.out} and {png}")
    return 0

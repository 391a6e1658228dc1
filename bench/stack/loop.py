"""End-to-end loop timings on the twin: first anomalous sample → action.proposed, and to verified.

Starts the whole stack with ``sentinai up`` (embedded nats-server, the OP Stack twin with several
chains, every service) with simulation mode OFF and no LLM, then on each chain in turn injects an
incident and watches the bus:

* ``cpu_spike`` (low tier: auto scale-up) → time to ``action.proposed`` and to ``action.executed``;
* ``sequencer_stall`` (high tier: waits for approval) → time to ``action.proposed``.

"First anomalous sample" is the ``occurredAt`` of the earliest ``anomaly.detected`` on that chain
after the injection (the detector stamps an anomaly with its triggering sample's time); if the seed
z-score fired on noise just after the injection, that earlier anomaly counts, so the figure errs long.
"Deciding anomalous sample" is the sample behind the anomaly whose RCA the planner acted on (the RCA
with the proposal's correlation id, published last before it): the pipeline's own latency once the
evidence is there, collector poll to proposal. Prints a table and writes ``.reports/loop.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import nats
from nats.aio.client import Client

from bench import ROOT
from bench.stack.upstack import running
from sentinai.devkit.waits import eventually

T = TypeVar("T")


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


class Bus:
    """Everything the loop publishes, with arrival times, per chain."""

    def __init__(self) -> None:
        self.events: dict[str, list[tuple[float, dict[str, Any]]]] = defaultdict(list)

    async def watch(self, url: str, *, options: dict[str, Any]) -> Client:
        """Subscribe with ``options`` (as the stack's NATS admin: ``UpStack.nats_options``)."""
        nc = await nats.connect(url, **options)

        async def on_msg(msg: Any) -> None:
            self.events[msg.subject].append((time.time(), json.loads(msg.data)))

        for subject in ("anomaly.detected.*", "action.proposed.*", "action.executed.*", "rca.completed.*"):
            await nc.subscribe(subject, cb=on_msg)
        return nc

    def after(self, subject: str, since: float) -> list[tuple[float, dict[str, Any]]]:
        return [(t, e) for t, e in self.events[subject] if t >= since]


async def within(check: Callable[[], T | None], *, timeout_s: float, what: str) -> T | None:
    """``check``'s first truthy answer within ``timeout_s``, else None: a trial may miss."""
    try:
        return await eventually(check, timeout_s=timeout_s, what=what, every_s=0.1)
    except AssertionError:
        return None


def _ts(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["occurredAt"]).timestamp()


async def trial(
    bus: Bus, twin: httpx.AsyncClient, chain: str, kind: str, *, expect: str, timeout_s: float
) -> dict[str, Any]:
    injected = time.time()
    (
        await twin.post(f"/control/chains/{chain}/incidents", json={"kind": kind, "params": {}})
    ).raise_for_status()

    def proposed() -> list[tuple[float, dict[str, Any]]]:
        return [
            (t, e)
            for t, e in bus.after(f"action.proposed.{chain}", injected)
            if e["action"]["kind"] == expect
        ]

    hit = await within(proposed, timeout_s=timeout_s, what=f"{expect} proposed on {chain}")
    row: dict[str, Any] = {"chain": chain, "incident": kind, "expected": expect, "proposed": bool(hit)}
    anomalies = bus.after(f"anomaly.detected.{chain}", injected)
    # What the loop concluded on the way, so a miss can be read off the report.
    row["rcas"] = [
        f"{e['rootCauseClass']}:{e['confidence']:.2f}"
        for _, e in bus.after(f"rca.completed.{chain}", injected)
    ]
    if hit:
        arrived, proposal = hit[0]
        first_sample = min((_ts(e) for _, e in anomalies), default=arrived)
        row |= {
            "tier": proposal["tier"],
            "status": proposal["status"],
            "action": proposal["action"],
            "sample_to_proposed_s": round(arrived - first_sample, 3),
            "deciding_sample_to_proposed_s": _deciding(bus, chain, proposal, arrived=arrived, since=injected),
            "inject_to_proposed_s": round(arrived - injected, 3),
        }
        if proposal["status"] == "auto_approved":
            action_id = proposal["actionId"]

            def executed() -> list[tuple[float, dict[str, Any]]]:
                return [
                    (t, e)
                    for t, e in bus.after(f"action.executed.{chain}", injected)
                    if e["actionId"] == action_id
                ]

            done = await within(executed, timeout_s=180, what=f"{action_id} executed")
            if done:
                row |= {
                    "outcome": done[0][1]["outcome"],
                    "inject_to_executed_s": round(done[0][0] - injected, 3),
                }
    (await twin.delete(f"/control/chains/{chain}/incidents")).raise_for_status()
    return row


def _deciding(
    bus: Bus, chain: str, proposal: dict[str, Any], *, arrived: float, since: float
) -> float | None:
    """Proposal arrival − the sample time of the anomaly whose RCA the planner acted on."""
    rcas = [
        e
        for t, e in bus.after(f"rca.completed.{chain}", since)
        if t <= arrived and e["correlationId"] == proposal["correlationId"]
    ]
    if not rcas:
        return None
    trigger = rcas[-1]["anomalyEventId"]
    for _, anomaly in bus.events[f"anomaly.detected.{chain}"]:
        if anomaly["eventId"] == trigger:
            return round(arrived - _ts(anomaly), 3)
    return None


async def run(args: argparse.Namespace) -> dict[str, Any]:
    chains = [f"c{i}" for i in range(1, args.chains + 1)]
    env = {"SCALING_SIMULATION_MODE": "false", "SENTINAI_EXECUTOR_VERIFY_WINDOW_S": "60"}
    bus = Bus()
    async with running(chains, env=env, prefix="sentinai-loop-") as stack:
        runtime = await stack.wait_started(timeout_s=60)
        nc = await bus.watch(runtime["natsUrl"], options=stack.nats_options())
        await stack.wait_healthy(timeout_s=90)
        # Let the detector's windows fill (its minimum points) before judging anything.
        await asyncio.sleep(args.warmup_s)
        rows = []
        async with httpx.AsyncClient(base_url=runtime["twinUrl"], timeout=5) as twin:
            for kind, expect in (("cpu_spike", "scale_cpu"), ("sequencer_stall", "restart_component")):
                for chain in chains:
                    rows.append(await trial(bus, twin, chain, kind, expect=expect, timeout_s=60))
                    print(json.dumps(rows[-1]), flush=True)
        await nc.close()
    latencies = [r["sample_to_proposed_s"] for r in rows if r["proposed"]]
    deciding = [
        r["deciding_sample_to_proposed_s"] for r in rows if r.get("deciding_sample_to_proposed_s") is not None
    ]
    spikes = [r for r in rows if r["incident"] == "cpu_spike"]
    executed = [r["inject_to_executed_s"] for r in spikes if "inject_to_executed_s" in r]
    return {
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "chains": len(chains),
        "llm": None,
        "simulation_mode": False,
        "trials": rows,
        "proposed": sum(r["proposed"] for r in rows),
        "sample_to_proposed_p50_s": statistics.median(latencies) if latencies else None,
        "sample_to_proposed_p95_s": p95(latencies) if latencies else None,
        "deciding_sample_to_proposed_p50_s": statistics.median(deciding) if deciding else None,
        "deciding_sample_to_proposed_p95_s": p95(deciding) if deciding else None,
        "cpu_spike_succeeded": sum(r.get("outcome") == "succeeded" for r in spikes),
        "cpu_spike_trials": len(spikes),
        "inject_to_executed_median_s": statistics.median(executed) if executed else None,
        "target_p95_s": 2.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, default=6)
    parser.add_argument("--warmup-s", type=float, default=40.0)
    parser.add_argument("--out", type=Path, default=ROOT / ".reports" / "loop.json")
    args = parser.parse_args()
    report = asyncio.run(run(args))
    print()
    print(f"{'measurement':<48}{'result':>16}  target")
    print("-" * 72)
    print(f"{'trials proposed':<48}{report['proposed']:>13} / {len(report['trials'])}")
    for q, target in (("p50", ""), ("p95", "  <= 2 s")):
        value = report[f"sample_to_proposed_{q}_s"]
        print(f"{'first anomalous sample → action.proposed ' + q:<48}{value:>14.2f} s{target}")
    for q in ("p50", "p95"):
        value = report[f"deciding_sample_to_proposed_{q}_s"]
        print(f"{'deciding anomalous sample → action.proposed ' + q:<48}{value:>14.2f} s")
    spikes = f"{report['cpu_spike_succeeded']} / {report['cpu_spike_trials']}"
    print(f"{'cpu_spike auto scale-up verified (succeeded)':<48}{spikes:>16}")
    print(f"{'cpu_spike inject → verified, median':<48}{report['inject_to_executed_median_s'] or 0:>14.1f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"\nwritten {args.out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

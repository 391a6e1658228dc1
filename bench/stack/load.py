"""Load benchmark: N twin chains polled at 1 Hz through the whole stack (`sentinai up`), per N.

For each N in ``--chains`` it starts `sentinai up` with N twin chains and the collector polling
every second (pod logs every ``--log-interval`` seconds; ``--collector-shards`` collector and
``--partitions`` detector processes), lets it warm up, then for ``--duration`` seconds samples
every few seconds:

- samples/s reaching the bus (TELEMETRY's metric sequence, from the stream's per-subject counts);
- every durable consumer's backlog (``num_pending + num_ack_pending``) on TELEMETRY and EVENTS;
- RSS and CPU time of every process of the stack (from ``/proc``);
- sample→anomaly latency: a ``cpu_spike`` is injected on a few chains periodically; each
  ``anomaly.detected`` carries the deciding sample's ``occurredAt`` (stamped by the collector at
  the poll), so latency is the anomaly's arrival here minus that;
- the machine's CPU outside the stack (``/proc/stat`` minus the stack's processes), since a shared
  machine's other work shows up in every figure.

A run holds when the bus gets at least ``RATE_OK`` of the samples a 1 Hz poll makes (8 per chain:
4 RPC targets and 4 pods), every backlog is bounded (its least-squares slope after warm-up would add less
than ``LAG_GROWTH_S`` seconds of traffic over the run, and it ends under ``LAG_END_S`` seconds of
traffic) and memory is flat (the RSS slope after warm-up of every process but the twin is under
``RSS_SLOPE_MIB_MIN``; the twin stands in for the chains, and its pod log rings keep filling for an
hour at 2 s blocks, so its RSS is reported, not judged).
Prints a table and writes ``.reports/load.json``.

``--ingest-only`` runs only what produces the samples (nats-server, the twin, the collector shards)
and no consumer: what the collector and the twin cost per chain, apart from the rest of the stack.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import nats
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from bench import ROOT
from bench.stack.upstack import UpStack, nats_options
from sentinai.common import subjects
from sentinai.common.events import AnomalyDetected
from sentinai.common.net import free_port
from sentinai.common.streams import EVENTS, TELEMETRY
from sentinai.devkit.natsserver import EmbeddedNats
from sentinai.devkit.procs import stop_group
from sentinai.devkit.twinproc import TwinProcess

PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")
LAG_GROWTH_S = 2.0
LAG_END_S = 10.0
RSS_SLOPE_MIB_MIN = 2.0
INJECT_EVERY_S = 30.0
INJECT_CHAINS = 3
INCIDENT = "cpu_spike"
SAMPLES_PER_CHAIN = 8  # per poll: op-geth, op-node, batcher, proposer over RPC; their 4 pods
RATE_OK = 0.95
NOT_JUDGED = frozenset({"twin"})  # memory: the stand-in for the chains, not SentinAI


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of ``(t, y)`` points, in y per second (0 for fewer than 3 points)."""
    if len(points) < 3:
        return 0.0
    ts, ys = [p[0] for p in points], [p[1] for p in points]
    mt, my = statistics.fmean(ts), statistics.fmean(ys)
    den = sum((t - mt) ** 2 for t in ts)
    return sum((t - mt) * (y - my) for t, y in zip(ts, ys, strict=True)) / den if den else 0.0


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def machine_busy_s() -> float:
    """CPU seconds the whole machine has spent busy (all cores), from ``/proc/stat``."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / TICKS


def proc_stat(pid: int) -> tuple[float, float] | None:
    """(RSS in MiB, CPU seconds) of ``pid``, or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        statm = Path(f"/proc/{pid}/statm").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime
    return int(statm.split()[1]) * PAGE / 2**20, cpu


class IngestStack:
    """Only what produces samples: nats-server, the twin and the collector shard(s); no consumer."""

    def __init__(self, work: Path, *, chains: list[str], shards: int, log_interval_s: float) -> None:
        self.nats = EmbeddedNats(data_dir=work / "nats", log_file=work / "nats.log").start()
        self.twin = TwinProcess(work / "twin", chains=chains)
        self.collectors: list[subprocess.Popen[bytes]] = []
        try:
            self.twin.start(timeout_s=120)
            for shard in range(shards):
                env = os.environ | {
                    "SENTINAI_NATS_URL": self.nats.url,
                    "SENTINAI_STATE_DIR": str(work / "state"),
                    "SENTINAI_LOG_LEVEL": "warn",
                    "SENTINAI_COLLECTOR_CHAINS_FILE": str(self.twin.chains_file),
                    "SENTINAI_COLLECTOR_POLL_INTERVAL_S": "1",
                    "SENTINAI_COLLECTOR_LOG_INTERVAL_S": str(log_interval_s),
                    "SENTINAI_COLLECTOR_SHARDS": str(shards),
                    "SENTINAI_COLLECTOR_SHARD": str(shard),
                    "SENTINAI_COLLECTOR_HTTP_PORT": str(free_port()),
                }
                with (work / f"collector-{shard}.log").open("wb") as out:
                    self.collectors.append(
                        subprocess.Popen(
                            [sys.executable, "-m", "sentinai.collector"],
                            env=env,
                            stdout=out,
                            stderr=subprocess.STDOUT,
                            start_new_session=True,
                        )
                    )
        except BaseException:
            self.stop()
            raise

    async def wait_started(self, *, timeout_s: float) -> dict[str, Any]:
        """What `UpStack.wait_started` returns, for a stack that is up once constructed."""
        return {"natsUrl": self.nats.url, "twinUrl": self.twin.base_url}

    def child_pids(self) -> dict[str, int]:
        found = {"nats": self.nats.process.pid if self.nats.process else 0}
        found["twin"] = self.twin.process.pid if self.twin.process else 0
        for shard, proc in enumerate(self.collectors):
            found["collector" if len(self.collectors) == 1 else f"collector-{shard}"] = proc.pid
        return {name: pid for name, pid in found.items() if pid}

    def stop(self) -> None:
        for proc in self.collectors:
            stop_group(proc)
        self.twin.stop()
        self.nats.stop()


@dataclass
class Series:
    samples: list[tuple[float, int]] = field(default_factory=list)  # (t, TELEMETRY metric messages)
    pending: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    rss: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    cpu: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    latency_s: list[float] = field(default_factory=list)
    injected_latency_s: list[float] = field(default_factory=list)
    latency_by_metric: dict[str, list[float]] = field(default_factory=dict)
    machine: list[tuple[float, float]] = field(default_factory=list)  # (t, busy CPU seconds)


async def metric_messages(js: JetStreamContext) -> int:
    info = await js.stream_info(TELEMETRY.name, subjects_filter=subjects.METRICS_RAW_ANY)
    return sum((info.state.subjects or {}).values())


async def backlog(js: JetStreamContext) -> dict[str, float]:
    out: dict[str, float] = {}
    for stream in (TELEMETRY.name, EVENTS.name):
        try:
            consumers = await js.consumers_info(stream)
        except NotFoundError:  # --ingest-only: no consumer made the EVENTS stream
            continue
        for info in consumers:
            name = info.config.durable_name
            if name:  # ephemeral consumers (the api's read model) come and go; durables are the contract
                out[f"{stream}/{name}"] = float((info.num_pending or 0) + (info.num_ack_pending or 0))
    return out


async def measure(args: argparse.Namespace, n: int, work: Path) -> dict[str, Any]:
    chains = [f"c{i:03d}" for i in range(n)]
    stack: UpStack | IngestStack
    if args.ingest_only:
        stack = IngestStack(
            work, chains=chains, shards=args.collector_shards, log_interval_s=args.log_interval
        )
    else:
        stack = UpStack(
            work / "state",
            chains=chains,
            env={
                "SENTINAI_TWIN_POLL_INTERVAL_S": "1",
                "SENTINAI_DETECTOR_PARTITIONS": str(args.partitions),
                "SENTINAI_COLLECTOR_SHARDS": str(args.collector_shards),
                "SENTINAI_COLLECTOR_LOG_INTERVAL_S": str(args.log_interval),
            },
        )
    series = Series()
    injected: set[str] = set()
    try:
        runtime = await stack.wait_started(timeout_s=120)
        nc = await nats.connect(runtime["natsUrl"], **nats_options(runtime))
        js = nc.jetstream()
        twin = httpx.AsyncClient(base_url=runtime["twinUrl"], timeout=10)

        async def on_anomaly(msg: Msg) -> None:
            anomaly = AnomalyDetected.model_validate_json(msg.data)
            lat = time.time() - anomaly.occurred_at.timestamp()
            series.latency_s.append(lat)
            series.latency_by_metric.setdefault(anomaly.metric, []).append(lat)
            if anomaly.chain_id in injected and anomaly.metric == "cpuUsage":
                series.injected_latency_s.append(lat)

        await nc.subscribe(subjects.ANOMALY_DETECTED_ALL, cb=on_anomaly)
        print(f"  N={n}: warming up {args.warmup:.0f}s", flush=True)
        await asyncio.sleep(args.warmup)
        pids = stack.child_pids()
        t0 = time.monotonic()
        next_inject, round_no = t0 + 10.0, 0
        while (now := time.monotonic()) - t0 < args.duration:
            t = now - t0
            series.samples.append((t, await metric_messages(js)))
            series.machine.append((t, machine_busy_s()))
            for name, value in (await backlog(js)).items():
                series.pending.setdefault(name, []).append((t, value))
            for name, pid in pids.items():
                if (stat := proc_stat(pid)) is not None:
                    series.rss.setdefault(name, []).append((t, stat[0]))
                    series.cpu.setdefault(name, []).append((t, stat[1]))
            if now >= next_inject:
                for chain in list(injected):
                    await twin.delete(f"/control/chains/{chain}/incidents")
                targets = [chains[(round_no * INJECT_CHAINS + i) % n] for i in range(INJECT_CHAINS)]
                injected.clear()
                injected.update(targets)
                for chain in targets:
                    await twin.post(
                        f"/control/chains/{chain}/incidents", json={"kind": INCIDENT, "params": {}}
                    )
                next_inject, round_no = now + INJECT_EVERY_S, round_no + 1
            await asyncio.sleep(args.every)
        await twin.aclose()
        await nc.close()
        alive = {name: proc_stat(pid) is not None for name, pid in pids.items()}
    finally:
        await asyncio.to_thread(stack.stop)
    return summarize(n, series, duration=args.duration, alive=alive)


def summarize(n: int, s: Series, *, duration: float, alive: dict[str, bool]) -> dict[str, Any]:
    (t_a, m_a), (t_b, m_b) = s.samples[0], s.samples[-1]
    rate = (m_b - m_a) / (t_b - t_a) if t_b > t_a else 0.0
    settle = duration * 0.3  # after warm-up proper: the first third still fills windows and buffers
    lags = {}
    for name, points in s.pending.items():
        late = [p for p in points if p[0] >= settle]
        growth = slope(late) * duration
        lags[name] = {
            "max": max(v for _, v in points),
            "end": points[-1][1],
            "growth_over_run": round(growth, 1),
            "bounded": growth < max(LAG_GROWTH_S * rate, 100) and points[-1][1] < max(LAG_END_S * rate, 500),
        }
    procs = {}
    for name, points in s.rss.items():
        late = [p for p in points if p[0] >= settle]
        cpu = s.cpu[name]
        busy = (cpu[-1][1] - cpu[0][1]) / (cpu[-1][0] - cpu[0][0]) if cpu[-1][0] > cpu[0][0] else 0.0
        procs[name] = {
            "rss_mib_start": round(points[0][1], 1),
            "rss_mib_end": round(points[-1][1], 1),
            "rss_slope_mib_min": round(slope(late) * 60, 2),
            "cpu_pct": round(100 * busy, 1),
            "alive": alive.get(name, False),
        }
    flat = all(
        p["rss_slope_mib_min"] < RSS_SLOPE_MIB_MIN for name, p in procs.items() if name not in NOT_JUDGED
    )
    (at_a, busy_a), (at_b, busy_b) = s.machine[0], s.machine[-1]
    machine_pct = 100 * (busy_b - busy_a) / (at_b - at_a) if at_b > at_a else 0.0
    stack_pct = sum(p["cpu_pct"] for p in procs.values())
    bounded = all(v["bounded"] for v in lags.values())
    p99 = percentile(s.injected_latency_s, 0.99)
    rate_ok = rate >= RATE_OK * SAMPLES_PER_CHAIN * n
    return {
        "chains": n,
        "duration_s": duration,
        "samples_per_s": round(rate, 1),
        "samples_per_s_at_1hz": SAMPLES_PER_CHAIN * n,
        "rate_ok": rate_ok,
        "lag": lags,
        "processes": procs,
        "anomalies": len(s.latency_s),
        "latency_p50_s": percentile(s.latency_s, 0.5),
        "latency_p99_s": percentile(s.latency_s, 0.99),
        "injected_anomalies": len(s.injected_latency_s),
        "injected_latency_p99_s": p99,
        # Where the tail comes from: the five metrics with the most anomalies.
        "latency_by_metric": {
            metric: {
                "anomalies": len(lats),
                "p50_s": percentile(lats, 0.5),
                "p99_s": percentile(lats, 0.99),
            }
            for metric, lats in sorted(s.latency_by_metric.items(), key=lambda kv: -len(kv[1]))[:5]
        },
        "lag_bounded": bounded,
        "memory_flat": flat,
        "all_alive": all(alive.values()),
        "holds": rate_ok and bounded and flat and all(alive.values()),
        "machine_cpu_pct": round(machine_pct, 1),
        "stack_cpu_pct": round(stack_pct, 1),
        "other_cpu_pct": round(max(0.0, machine_pct - stack_pct), 1),
    }


def fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        f"{'N':>5} {'samples/s':>10} {'of 1 Hz':>8} {'max lag':>8} {'lag ok':>6} {'mem ok':>6} {'p50 s':>7} "
        f"{'p99 s':>7} {'inj p99':>8} {'holds':>5}"
    ]
    for r in results:
        worst = max((v["max"] for v in r["lag"].values()), default=0.0)
        lines.append(
            f"{r['chains']:>5} {r['samples_per_s']:>10.1f} {r['samples_per_s_at_1hz']:>8} {worst:>8.0f} "
            f"{r['lag_bounded']!s:>6} "
            f"{r['memory_flat']!s:>6} {fmt(r['latency_p50_s']):>7} {fmt(r['latency_p99_s']):>7} "
            f"{fmt(r['injected_latency_p99_s']):>8} {r['holds']!s:>5}"
        )
        lines.append(
            f"      machine {r['machine_cpu_pct']:.0f}% of a core: stack {r['stack_cpu_pct']:.0f}%, "
            f"other work {r['other_cpu_pct']:.0f}%"
        )
        lines.append(
            "      "
            + "  ".join(
                f"{k} {v['cpu_pct']:.0f}%/{v['rss_mib_end']:.0f}MiB" for k, v in r["processes"].items()
            )
        )
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    for n in args.chains:
        with tempfile.TemporaryDirectory(prefix=f"sentinai-load-{n}-") as tmp:
            result = await measure(args, n, Path(tmp))
        results.append(result)
        print(table([result]), flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--chains", type=lambda s: [int(x) for x in s.split(",")], default=[50, 100, 200, 300]
    )
    parser.add_argument("--duration", type=float, default=600.0, help="measured seconds per N")
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds after startup before measuring")
    parser.add_argument("--every", type=float, default=5.0, help="seconds between observations")
    parser.add_argument("--partitions", type=int, default=1, help="detector processes (partitions)")
    parser.add_argument(
        "--collector-shards", type=int, default=2, help="collector processes (shards): one per core here"
    )
    parser.add_argument(
        "--log-interval", type=float, default=5.0, help="seconds between pod log reads (0: every poll)"
    )
    parser.add_argument(
        "--ingest-only", action="store_true", help="only nats, the twin and the collector: no consumer"
    )
    parser.add_argument("--out", type=Path, default=ROOT / ".reports" / "load.json")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    print()
    print(table(results))
    holding = [r["chains"] for r in results if r["holds"]]
    print(f"\nlargest N that holds: {max(holding) if holding else 'none'} ({args.duration:.0f}s per N)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "when": datetime.now(UTC).isoformat(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg()},
        "duration_s": args.duration,
        "partitions": args.partitions,
        "collector_shards": args.collector_shards,
        "ingest_only": args.ingest_only,
        "log_interval_s": args.log_interval,
        "results": results,
        "largest_holding": max(holding) if holding else None,
    }
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

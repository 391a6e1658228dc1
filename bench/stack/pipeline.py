"""Pipeline benchmark: raw JetStream vs the detector process, throughput and anomaly latency.

Starts its own nats-server, then measures in one run:

(a) raw nats-py JetStream: publish N small messages with async acks, pull-consume them in batches;
(b) the detector: N realistic ``MetricSample``s (about 8 metrics each, many chains) pre-loaded into
    TELEMETRY, one ``python -m sentinai.detector`` process consuming them (progress read from the
    consumer's ack floor);
(c) latency: samples paced at a fixed rate, a known share of them spikes on fresh episodes; latency
    is the anomaly's arrival time minus the spike's publish time (carried in ``occurredAt``).

Prints a table and writes ``.reports/pipeline.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import StreamConfig
from nats.js.errors import NotFoundError

from bench import ROOT
from sentinai.common import catalog, streams, subjects
from sentinai.common.events import AnomalyDetected, MetricSample
from sentinai.common.net import free_port, wait_for_port
from sentinai.detector.streaming import StreamingSettings
from sentinai.devkit.natsserver import EmbeddedNats

COMPONENTS = ("op-geth", "op-node", "op-batcher", "op-proposer")
TARGET_SAMPLES_PER_S = 20_000.0
TARGET_P99_MS = 50.0
SPIKE_EVERY = 20  # one paced sample in 20 is a spike (5 %), each on its own series


# ------------------------------------------------------------------------------------ sample data


class Series:
    """One (chain, component) target producing realistic samples of about 8 metrics."""

    def __init__(
        self, chain: str, component: str, rng: random.Random, *, cpu_noise: float = 1.0, phase: int = 0
    ) -> None:
        self.chain = chain
        self.component = component
        self.rng = rng
        self.cpu_noise = cpu_noise
        self.phase = phase  # staggers the spikes of the latency fleet
        self.height = rng.randint(1_000_000, 2_000_000)
        self.count = 0

    def _noise(self, centre: float, spread: float) -> float:
        # Bounded noise: |z| of a uniform variable never reaches 2, so only planted spikes alert.
        return centre + self.rng.uniform(-spread, spread)

    def metrics(self, *, spike: bool = False) -> dict[str, float]:
        self.count += 1
        self.height += 1
        n = self.rng.random
        if self.component == "op-geth":
            return {
                catalog.BLOCK_HEIGHT: float(self.height),
                catalog.BLOCK_INTERVAL: self._noise(2.0, 0.1),
                catalog.SECONDS_SINCE_HEAD: 2.0 * n(),
                catalog.GAS_USED_RATIO: self._noise(0.4, 0.05),
                catalog.TX_POOL_COUNT: float(round(self._noise(120, 10))),
                catalog.BASE_FEE_GWEI: self._noise(0.002, 0.0001),
                catalog.CPU_USAGE: 95.0 if spike else self._noise(50.0, self.cpu_noise),
                catalog.MEMORY_USAGE: self._noise(60.0, 1.0),
            }
        if self.component == "op-node":
            return {
                catalog.UNSAFE_L2: float(self.height),
                catalog.SAFE_L2: float(self.height - 100),
                catalog.L1_HEAD: float(self.height // 6),
                catalog.UNSAFE_SAFE_LAG: 100.0,
                catalog.L1_HEAD_AGE: 12.0 * n(),
                catalog.UNSAFE_L2_AGE: 2.0 * n(),
                catalog.PEER_COUNT: 12.0,
                catalog.CPU_USAGE: 95.0 if spike else self._noise(30.0, self.cpu_noise),
            }
        return {
            catalog.CPU_USAGE: 95.0 if spike else self._noise(10.0, self.cpu_noise),
            catalog.CPU_CORES: self._noise(0.1, 0.01),
            catalog.CPU_REQUEST_CORES: 1.0,
            catalog.MEMORY_BYTES: self._noise(256e6, 4e6),
            catalog.MEMORY_USAGE: self._noise(25.0, 1.0),
            catalog.RESTARTS: 0.0,
            catalog.POD_READY: 1.0,
            catalog.PEER_COUNT: 3.0,
        }

    def sample(self, *, at: datetime, spike: bool = False) -> MetricSample:
        return MetricSample(
            occurred_at=at,
            chain_id=self.chain,
            component=self.component,
            source="rpc" if self.component != "op-batcher" else "k8s",
            metrics=self.metrics(spike=spike),
        )

    @property
    def subject(self) -> str:
        return subjects.metrics_raw(self.chain, self.component)


def fleet(prefix: str, chains: int, rng: random.Random, *, cpu_noise: float = 1.0) -> list[Series]:
    targets = [(f"{prefix}{c}", comp) for c in range(chains) for comp in COMPONENTS]
    return [
        Series(chain, comp, rng, cpu_noise=cpu_noise, phase=i % SPIKE_EVERY)
        for i, (chain, comp) in enumerate(targets)
    ]


# ------------------------------------------------------------------------------------------ (a)


async def raw_jetstream(nc: Client, n: int, *, batch: int) -> dict[str, float]:
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name="BENCHRAW", subjects=["bench.raw.>"]))
    payload = b"x" * 300  # about the size of a serialised MetricSample
    start = time.perf_counter()
    for i in range(n):
        await js.publish_async(f"bench.raw.{i % 100}", payload)
    await asyncio.wait_for(js.publish_async_completed(), timeout=120)
    publish_s = time.perf_counter() - start

    sub = await js.pull_subscribe("bench.raw.>", durable="bench-raw", stream="BENCHRAW")
    got = 0
    start = time.perf_counter()
    while got < n:
        msgs = await sub.fetch(batch=batch, timeout=5)
        for msg in msgs:
            await msg.ack()
        got += len(msgs)
    consume_s = time.perf_counter() - start
    await js.delete_stream("BENCHRAW")
    return {"messages": n, "publish_per_s": n / publish_s, "consume_per_s": n / consume_s}


# ------------------------------------------------------------------------------------------ (b)


async def preload(nc: Client, n: int, rng: random.Random) -> tuple[int, int]:
    """Publish ``n`` samples round-robin over many series; returns (last stream seq, metric values)."""
    js = nc.jetstream()
    series = fleet("tput", 60, rng)
    base = datetime.now(UTC) - timedelta(seconds=2 * n / len(series))
    values = 0
    for i in range(n):
        s = series[i % len(series)]
        sample = s.sample(at=base + timedelta(seconds=2 * (i // len(series))))
        values += len(sample.metrics)
        await js.publish_async(s.subject, sample.to_json())
    await asyncio.wait_for(js.publish_async_completed(), timeout=120)
    info = await js.stream_info(streams.TELEMETRY.name)
    return info.state.last_seq, values


def start_detector(url: str, work: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = os.environ | {
        "SENTINAI_NATS_URL": url,
        "SENTINAI_LOG_LEVEL": "warn",
        "SENTINAI_DETECTOR_HTTP_PORT": str(port),
    }
    log = open(work / "detector.log", "wb")  # noqa: SIM115 - the child owns it until it exits
    proc = subprocess.Popen(
        [sys.executable, "-m", "sentinai.detector"], env=env, stdout=log, stderr=log, start_new_session=True
    )
    return proc, port


def stop_detector(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


async def watch_consumer(nc: Client, durable: str, *, last_seq: int, timeout_s: float) -> tuple[float, float]:
    """(time of first acknowledgement, time all of ``last_seq`` was acknowledged), perf_counter clock."""
    jsm = nc.jetstream()
    deadline = time.perf_counter() + timeout_s
    first: float | None = None
    while time.perf_counter() < deadline:
        try:
            info = await jsm.consumer_info(streams.TELEMETRY.name, durable)
        except NotFoundError:
            await asyncio.sleep(0.01)
            continue
        floor = info.ack_floor.stream_seq if info.ack_floor else 0
        now = time.perf_counter()
        if first is None and floor > 0:
            first = now
        if floor >= last_seq and not info.num_ack_pending:
            return first or now, now
        await asyncio.sleep(0.01)
    raise TimeoutError(f"detector did not consume up to seq {last_seq} in {timeout_s:.0f}s")


# ------------------------------------------------------------------------------------------ (c)


def paced_plan(series: list[Series], total: int) -> Iterator[tuple[Series, bool]]:
    for i in range(total):
        s = series[i % len(series)]
        yield s, (s.count + 1 + s.phase) % SPIKE_EVERY == 0


async def latency(nc: Client, *, rate: float, seconds: float, rng: random.Random) -> dict[str, Any]:
    js = nc.jetstream()
    total = int(rate * seconds)
    # A CPU gauge whose noise stays under its std floor never alerts by itself, so every planted
    # spike opens a fresh episode (a spike inside an open episode is rightly not announced again).
    # Each series gets at most one spike: the streaming scorer reports the first 95 % spike of a
    # series, not the same spike again seconds later (no new record, and inside its cool-down).
    series = fleet("lat", math.ceil(total / (SPIKE_EVERY * len(COMPONENTS))), rng, cpu_noise=0.3)
    # Warm the windows and streaming models first (unpaced; past the model's warm-up) and let the
    # detector drain them: the paced phase measures steady state, not the backlog of the warm-up.
    for _ in range(StreamingSettings().warmup + 10):
        for s in series:
            await js.publish_async(s.subject, s.sample(at=datetime.now(UTC)).to_json())
    await asyncio.wait_for(js.publish_async_completed(), timeout=60)
    last_seq = (await js.stream_info(streams.TELEMETRY.name)).state.last_seq
    await watch_consumer(nc, "detector-metrics", last_seq=last_seq, timeout_s=60)

    latencies_ms: list[float] = []
    spikes_seen = 0
    all_seen = asyncio.Event()
    spikes = 0
    sent = 0

    async def on_anomaly(msg: Msg) -> None:
        nonlocal spikes_seen
        received = datetime.now(UTC)
        anomaly = AnomalyDetected.model_validate_json(msg.data)
        spike = anomaly.metric == catalog.CPU_USAGE and anomaly.value == 95.0
        if anomaly.chain_id.startswith("lat") and spike:
            latencies_ms.append((received - anomaly.occurred_at).total_seconds() * 1000)
            spikes_seen += 1
            if sent == total and spikes_seen >= spikes:
                all_seen.set()

    sub = await nc.subscribe(f"{subjects.ANOMALY_DETECTED}.>", cb=on_anomaly)
    tick = 0.01
    per_tick = max(1, round(rate * tick))
    start = time.perf_counter()
    plan = paced_plan(series, total)
    while sent < total:
        for s, spike in (next(plan) for _ in range(min(per_tick, total - sent))):
            spikes += spike
            await js.publish_async(s.subject, s.sample(at=datetime.now(UTC), spike=spike).to_json())
            sent += 1
        delay = start + (sent / per_tick) * tick - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
    achieved = total / (time.perf_counter() - start)
    await asyncio.wait_for(js.publish_async_completed(), timeout=60)
    if spikes_seen < spikes:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_seen.wait(), timeout=10)
    await sub.unsubscribe()
    ordered = sorted(latencies_ms)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else float("nan")

    return {
        "rate_per_s": rate,
        "achieved_rate_per_s": achieved,
        "seconds": seconds,
        "samples": total,
        "spikes": spikes,
        "spikes_detected": spikes_seen,
        "spike_anomalies_timed": len(ordered),
        "p50_ms": pct(50),
        "p90_ms": pct(90),
        "p99_ms": pct(99),
        "max_ms": ordered[-1] if ordered else float("nan"),
    }


# ------------------------------------------------------------------------------------------- main


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.machine(),
    }


async def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    rng = random.Random(7)
    server = EmbeddedNats(data_dir=work / "nats", log_file=work / "nats.log").start()
    proc: subprocess.Popen[bytes] | None = None
    try:
        nc = await nats.connect(server.url)
        try:
            raw = await raw_jetstream(nc, args.n, batch=args.batch)
            await streams.ensure_streams(nc.jetstream())
            last_seq, values = await preload(nc, args.n, rng)
            launched = time.perf_counter()
            proc, port = start_detector(server.url, work)
            first, done = await watch_consumer(nc, "detector-metrics", last_seq=last_seq, timeout_s=180)
            wait_for_port(port, timeout_s=10)
            busy_s = done - first
            pipeline = {
                "samples": args.n,
                "metric_values": values,
                "seconds": busy_s,
                "samples_per_s": args.n / busy_s,
                "metric_values_per_s": values / busy_s,
                "seconds_including_startup": done - launched,
                "target_samples_per_s": TARGET_SAMPLES_PER_S,
            }
            lat = await latency(nc, rate=args.rate, seconds=args.seconds, rng=rng)
            lat["target_p99_ms"] = TARGET_P99_MS
        finally:
            await nc.close()
    finally:
        if proc is not None:
            stop_detector(proc)
        server.stop()
    return {"machine": machine(), "raw_jetstream": raw, "detector_pipeline": pipeline, "latency": lat}


def table(report: dict[str, Any]) -> str:
    m, raw, pipe, lat = (
        report["machine"],
        report["raw_jetstream"],
        report["detector_pipeline"],
        report["latency"],
    )
    rows = [
        ("raw JetStream publish (async acks)", f"{raw['publish_per_s']:,.0f} msg/s", ""),
        ("raw JetStream pull-consume + ack", f"{raw['consume_per_s']:,.0f} msg/s", ""),
        ("detector: samples", f"{pipe['samples_per_s']:,.0f} samples/s", f">= {TARGET_SAMPLES_PER_S:,.0f}"),
        ("detector: metric values", f"{pipe['metric_values_per_s']:,.0f} values/s", ""),
        ("detector: 50k incl. process start", f"{pipe['seconds_including_startup']:.2f} s", ""),
        (
            f"latency @ {lat['rate_per_s']:,.0f}/s ({lat['achieved_rate_per_s']:,.0f} achieved) p50",
            f"{lat['p50_ms']:.1f} ms",
            "",
        ),
        ("latency p90", f"{lat['p90_ms']:.1f} ms", ""),
        ("latency p99", f"{lat['p99_ms']:.1f} ms", f"<= {TARGET_P99_MS:.0f} ms"),
        ("spikes detected", f"{lat['spikes_detected']} / {lat['spikes']}", "all"),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [
        f"machine: {m['cores']} cores, Python {m['python']}, {m['platform']}",
        f"{'measurement':<{width}}  {'result':>22}  target",
        f"{'-' * width}  {'-' * 22}  ------",
    ]
    lines += [f"{name:<{width}}  {value:>22}  {target}" for name, value, target in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000, help="messages/samples for (a) and (b)")
    parser.add_argument("--batch", type=int, default=500, help="pull batch size for (a)")
    parser.add_argument("--rate", type=float, default=1000.0, help="paced samples per second for (c)")
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of (c)")
    parser.add_argument("--out", type=Path, default=ROOT / ".reports" / "pipeline.json")
    args = parser.parse_args()
    (ROOT / ".bench").mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="pipeline-", dir=ROOT / ".bench"))
    try:
        report = asyncio.run(run(args, work))
    except BaseException:
        print(f"benchmark failed; logs kept in {work}", file=sys.stderr)
        raise
    shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(table(report))
    print(f"\nwritten {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    main()

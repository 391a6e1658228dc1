"""API load benchmark: read latency at a steady request rate, and live-stream (SSE) delivery latency.

Starts the whole stack with ``sentinai up`` (embedded nats-server, the OP Stack twin with
``--chains`` chains, every service) in a temporary state folder on a free port, waits until
``/api/metrics`` shows a block height for every chain, loads ``--backlog`` past noise episodes (an
hour of the twin's z-score noise: the api's anomaly list full, as on any stack older than an hour)
and waits until every consumer has taken them in, then measures:

* ``GET /api/metrics`` at a steady ``--rate`` for ``--duration`` seconds, open loop: request *i* is
  sent at ``start + i / rate`` whatever the earlier ones are doing, and its latency runs from that
  scheduled time to the last byte of the response, so a slow server (or a queue in the client's
  connection pool) shows up in the figures instead of silently lowering the rate;
* ``/api/chains`` and ``/api/actions`` the same way for ``--short-duration`` seconds;
* SSE delivery: ``GET /api/stream`` open, then ``--sse-events`` ``AnomalyDetected`` events published
  straight onto JetStream; latency from just before each publish to the matching ``event: anomaly``
  on the stream (it includes the publish round trip, so it errs long).

The client shares the machine with the stack, so it stays cheap: one event loop, one keep-alive
pool of ``--connections`` connections. CPU time of the api process and of this client is reported
per request, with the cores kept busy meanwhile by the api, the client, the rest of the stack and
everything else on the machine ("other": on a shared machine, what to look at first when a tail
looks wrong; the table warns when it is high). Prints a table and writes ``.reports/api_load.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import nats
from nats.js import JetStreamContext

from bench import ROOT
from bench.stack.upstack import UpStack, running
from sentinai.common import streams, subjects
from sentinai.common.events import AnomalyDetected, AnomalyResolved, utcnow

TARGET_P99_MS = 20.0
TARGET_SSE_MS = 1000.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
OTHER_CORES_WARN = 0.2


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def still_running(pids: dict[str, int]) -> dict[str, int]:
    """The processes of ``pids`` that have not exited."""
    return {name: pid for name, pid in pids.items() if Path(f"/proc/{pid}").exists()}


def machine_busy_seconds() -> float:
    """CPU time every core of the machine has spent not idle so far, whoever used it."""
    # /proc/stat "cpu" line: user nice system idle iowait irq softirq steal (jiffies).
    ticks = [int(v) for v in Path("/proc/stat").read_text().split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / CLK_TCK


async def wait_ready(stack: UpStack, chains: list[str], *, timeout_s: float) -> None:
    """Until ``up.json`` exists and ``/api/metrics`` has a block height for every chain."""
    deadline = time.monotonic() + timeout_s
    await stack.wait_started(timeout_s=timeout_s)

    def every_chain(body: Any) -> bool:
        heights = {v["chainId"]: v["metrics"].get("blockHeight") for v in body["chains"]}
        return all(heights.get(c) is not None for c in chains)

    await stack.wait_api(
        "/api/metrics",
        every_chain,
        timeout_s=max(0.0, deadline - time.monotonic()),
        what="/api/metrics with a block height for every chain",
    )


# ---------------------------------------------------------------------------------------- backlog


def past_episode(chain: str, i: int, *, at_s_ago: float) -> tuple[AnomalyDetected, AnomalyResolved]:
    """One noise episode of the kind the seed z-score raises all day, opened and closed in the past."""
    started = utcnow() - timedelta(seconds=at_s_ago)
    detected = AnomalyDetected(
        chain_id=chain,
        occurred_at=started,
        component="op-geth",
        metric="gasUsedRatio",
        value=0.9,
        z_score=2.2,
        direction="up",
        severity="low",
        description=f"api_load backlog episode {i}",
        rule="zscore",
    )
    resolved = AnomalyResolved(
        chain_id=chain,
        occurred_at=started + timedelta(seconds=6),
        correlation_id=detected.correlation_id,
        episode_id=detected.episode_id,
        component=detected.component,
        metric=detected.metric,
        rule=detected.rule,
        started_at=started,
        duration_s=6.0,
        description="back within 2 sigma",
    )
    return detected, resolved


async def load_backlog(
    nats_url: str, chains: list[str], *, episodes: int, timeout_s: float, options: dict[str, Any]
) -> float:
    """Publish an hour of past noise episodes and wait until every consumer has taken them in.

    The api keeps the newest ``recent_anomalies`` (1000) and every list view walks them, so an empty
    read model would flatter the read latencies; the twin's noise fills it within the first hour.
    The rca and planner answer these as they answer real noise (RCAs, audit records), and the wait
    covers that work too. Returns the seconds it took.
    """
    started = time.monotonic()
    nc = await nats.connect(nats_url, **options)
    try:
        js = nc.jetstream()
        for i in range(episodes):
            chain = chains[i % len(chains)]
            for event in past_episode(chain, i, at_s_ago=3600 * (1 - i / episodes)):
                subject = (
                    subjects.anomaly_detected(chain)
                    if isinstance(event, AnomalyDetected)
                    else subjects.anomaly_resolved(chain)
                )
                await js.publish_async(
                    subject,
                    event.to_json(),
                    stream=streams.EVENTS.name,
                    headers={"Nats-Msg-Id": event.event_id},
                )
        await asyncio.wait_for(js.publish_async_completed(), timeout=60)
        await wait_drained(js, timeout_s=timeout_s - (time.monotonic() - started))
    finally:
        await nc.close()
    return time.monotonic() - started


async def wait_drained(js: JetStreamContext, *, timeout_s: float) -> None:
    """Until no consumer of the decision streams has anything pending, twice in a row."""
    deadline = time.monotonic() + timeout_s
    quiet = 0
    while quiet < 2:
        if time.monotonic() > deadline:
            raise SystemExit(f"the services did not take in the backlog within {timeout_s:.0f}s")
        pending = 0
        for spec in (streams.EVENTS, streams.ACTIONS, streams.AUDIT):
            for info in await js.consumers_info(spec.name):
                pending += (info.num_pending or 0) + (info.num_ack_pending or 0)
        quiet = quiet + 1 if pending == 0 else 0
        await asyncio.sleep(1.0)


async def read_model_size(api_url: str) -> dict[str, Any]:
    """How much the measured views had to walk: anomalies, proposals and audit records held."""
    async with httpx.AsyncClient(base_url=api_url, timeout=5) as api:
        anomalies = (await api.get("/api/anomalies", params={"limit": 1000})).json()["anomalies"]
        actions = (await api.get("/api/actions", params={"limit": 1000})).json()["actions"]
        audit = (await api.get("/api/audit", params={"limit": 1})).json()["total"]
    return {
        "anomalies": len(anomalies),
        "active_anomalies": sum(a["active"] for a in anomalies),
        "actions": len(actions),
        "audit_records": audit,
    }


# ------------------------------------------------------------------------------- open-loop reads


async def open_loop(
    client: httpx.AsyncClient, path: str, *, rate: float, duration_s: float, pids: dict[str, int]
) -> dict[str, Any]:
    """Send ``rate × duration_s`` GETs on a fixed schedule; latency from each scheduled send time."""
    total = round(rate * duration_s)
    latencies: list[float] = []
    send_lags: list[float] = []
    errors: Counter[str] = Counter()
    sizes: list[int] = []

    async def fire(scheduled: float) -> None:
        send_lags.append(time.perf_counter() - scheduled)
        try:
            response = await client.get(path)
        except httpx.HTTPError as exc:
            errors[type(exc).__name__] += 1
            return
        done = time.perf_counter()
        if response.status_code != 200:
            errors[f"HTTP {response.status_code}"] += 1
            return
        latencies.append((done - scheduled) * 1000)
        sizes.append(len(response.content))

    # One-shot children (``nats-setup``) have exited by now: nothing of theirs to measure.
    live = still_running(pids)
    api_pid, rest = live["api"], [pid for name, pid in live.items() if name != "api"]
    api_cpu, client_cpu, busy = cpu_seconds(api_pid), time.process_time(), machine_busy_seconds()
    stack_cpu = sum(cpu_seconds(pid) for pid in rest)
    tasks = []
    start = time.perf_counter() + 0.01
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(fire(scheduled)))
    _, late = await asyncio.wait(tasks, timeout=10)
    for task in late:
        task.cancel()
        errors["no answer within 10 s of the end"] += 1
    elapsed = time.perf_counter() - start
    api_cpu, client_cpu = cpu_seconds(api_pid) - api_cpu, time.process_time() - client_cpu
    stack_cpu = sum(cpu_seconds(pid) for pid in rest) - stack_cpu
    busy = machine_busy_seconds() - busy
    row: dict[str, Any] = {
        "path": path,
        "target_rps": rate,
        "duration_s": duration_s,
        "sent": total,
        "ok": len(latencies),
        "errors": dict(errors),
        "achieved_rps": round(len(latencies) / elapsed, 1),
        "response_bytes": round(sum(sizes) / len(sizes)) if sizes else None,
        "api_cpu_ms_per_request": round(api_cpu * 1000 / total, 3),
        "client_cpu_ms_per_request": round(client_cpu * 1000 / total, 3),
        "client_send_lag_max_ms": round(max(send_lags, default=0.0) * 1000, 2),
        # Cores in use meanwhile: the api, this client, the rest of the stack, and anything else.
        "cores_busy": {
            "api": round(api_cpu / elapsed, 2),
            "client": round(client_cpu / elapsed, 2),
            "stack": round(stack_cpu / elapsed, 2),
            "other": round(max(0.0, busy - api_cpu - client_cpu - stack_cpu) / elapsed, 2),
        },
    }
    if latencies:
        for q in (50, 90, 99):
            row[f"p{q}_ms"] = round(percentile(latencies, q), 2)
        row["max_ms"] = round(max(latencies), 2)
    return row


# ------------------------------------------------------------------------------------ live stream


async def listen(api_url: str, expected: dict[str, asyncio.Future[float]], connected: asyncio.Event) -> None:
    """Read ``/api/stream`` (all chains, as the dashboard does); resolve each expected anomaly on arrival."""
    timeout = httpx.Timeout(5.0, read=None)
    async with (
        httpx.AsyncClient(timeout=timeout) as client,
        client.stream("GET", f"{api_url}/api/stream") as response,
    ):
        response.raise_for_status()
        event = ""
        async for line in response.aiter_lines():
            if line == ": connected":
                connected.set()
            elif line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif event == "anomaly" and line.startswith("data: "):
                arrived = time.perf_counter()
                waiter = expected.get(json.loads(line.removeprefix("data: "))["eventId"])
                if waiter is not None and not waiter.done():
                    waiter.set_result(arrived)


def bench_anomaly(chain: str, i: int) -> AnomalyDetected:
    return AnomalyDetected(
        chain_id=chain,
        component="op-geth",
        metric="txPoolCount",
        value=100.0 + i,
        z_score=2.5,
        direction="up",
        severity="low",
        description=f"api_load benchmark event {i}",
        rule="zscore",
    )


async def sse_latency(stack: UpStack, chain: str, *, events: int, gap_s: float) -> dict[str, Any]:
    expected: dict[str, asyncio.Future[float]] = {}
    connected = asyncio.Event()
    listener = asyncio.create_task(listen(stack.api_url, expected, connected))
    nc = await nats.connect(stack.runtime()["natsUrl"], **stack.nats_options())
    sent: dict[str, float] = {}
    acks: list[float] = []
    try:
        await asyncio.wait_for(connected.wait(), timeout=10)
        js = nc.jetstream()
        for i in range(events):
            event = bench_anomaly(chain, i)
            expected[event.event_id] = asyncio.get_running_loop().create_future()
            before = time.perf_counter()
            await js.publish(
                subjects.anomaly_detected(chain),
                event.to_json(),
                stream=streams.EVENTS.name,
                headers={"Nats-Msg-Id": event.event_id},
                timeout=5,
            )
            acks.append((time.perf_counter() - before) * 1000)
            sent[event.event_id] = before
            await asyncio.sleep(gap_s)
        await asyncio.wait(expected.values(), timeout=10)
    finally:
        await nc.close()
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
    latencies = [(expected[eid].result() - t) * 1000 for eid, t in sent.items() if expected[eid].done()]
    row: dict[str, Any] = {"published": events, "delivered": len(latencies), "gap_s": gap_s}
    if latencies:
        row |= {
            "p50_ms": round(percentile(latencies, 50), 2),
            "p95_ms": round(percentile(latencies, 95), 2),
            "max_ms": round(max(latencies), 2),
        }
    row["publish_ack_p50_ms"] = round(percentile(acks, 50), 2) if acks else None
    return row


# ----------------------------------------------------------------------------------------- run


async def run(args: argparse.Namespace) -> dict[str, Any]:
    chains = [f"c{i}" for i in range(1, args.chains + 1)]
    load_at_start = [round(v, 2) for v in os.getloadavg()]
    async with running(chains, prefix="sentinai-api-load-") as stack:
        started = time.monotonic()
        await wait_ready(stack, chains, timeout_s=120)
        ready_s = time.monotonic() - started
        backlog_s = await load_backlog(
            stack.runtime()["natsUrl"],
            chains,
            episodes=args.backlog,
            timeout_s=300,
            options=stack.nats_options(),
        )
        # Start-up work (imports, replays, the detector's first windows) is not what is measured.
        await asyncio.sleep(args.warmup_s)
        size = await read_model_size(stack.api_url)
        pids = stack.child_pids()
        limits = httpx.Limits(max_connections=args.connections, max_keepalive_connections=args.connections)
        reads = []
        async with httpx.AsyncClient(base_url=stack.api_url, limits=limits, timeout=5) as client:
            # Open the pool's connections first, so the first scheduled requests do not pay for them.
            await open_loop(client, "/api/metrics", rate=args.rate, duration_s=1.0, pids=pids)
            plan = [("/api/metrics", args.duration)]
            plan += [(path, args.short_duration) for path in ("/api/chains", "/api/actions")]
            for path, duration_s in plan:
                reads.append(await open_loop(client, path, rate=args.rate, duration_s=duration_s, pids=pids))
                print(json.dumps(reads[-1]), flush=True)
        sse = await sse_latency(stack, chains[0], events=args.sse_events, gap_s=args.sse_gap_s)
        print(json.dumps(sse), flush=True)
    return {
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_at_start": load_at_start,
            # Cores used outside the stack and this client during the busiest read phase.
            "other_cores_max": max(row["cores_busy"]["other"] for row in reads),
        },
        "stack": {
            "chains": len(chains),
            "ready_s": round(ready_s, 1),
            "backlog_episodes": args.backlog,
            "backlog_s": round(backlog_s, 1),
            "warmup_s": args.warmup_s,
            "read_model": size,
        },
        "client": {"connections": args.connections, "library": f"httpx {httpx.__version__}"},
        "reads": reads,
        "sse": sse,
        "targets": {"metrics_p99_ms": TARGET_P99_MS, "rate_rps": args.rate, "sse_ms": TARGET_SSE_MS},
    }


def print_table(report: dict[str, Any]) -> None:
    print()
    print(f"{'measurement':<44}{'rate/s':>8}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}{'errors':>8}  target")
    print("-" * 110)
    for row in report["reads"]:
        target = f"p99 <= {TARGET_P99_MS:.0f} ms" if row["path"] == "/api/metrics" else ""
        name = f"GET {row['path']} ({row['duration_s']:.0f} s, {row['response_bytes']} B)"
        figures = "".join(
            f"{row.get(k, float('nan')):>9.1f}" for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms")
        )
        print(f"{name:<44}{row['achieved_rps']:>8.1f}{figures}{sum(row['errors'].values()):>8}  {target}")
    sse = report["sse"]
    figures = f"{'':>9}" + "".join(
        f"{sse.get(k, float('nan')):>9.1f}" for k in ("p50_ms", "p95_ms", "max_ms")
    )
    lost = sse["published"] - sse["delivered"]
    print(f"{'SSE publish → event: anomaly (p50 p95 max)':<44}{'':>8}{figures}{lost:>8}  <= 1000 ms")
    print()
    for row in report["reads"]:
        cores = row["cores_busy"]
        print(
            f"{row['path']:<14} CPU per request: api {row['api_cpu_ms_per_request']:.2f} ms, "
            f"client {row['client_cpu_ms_per_request']:.2f} ms; cores busy: api {cores['api']:.2f}, "
            f"client {cores['client']:.2f}, stack {cores['stack']:.2f}, other {cores['other']:.2f}; "
            f"client send lag max {row['client_send_lag_max_ms']:.1f} ms"
        )
    stack, held = report["stack"], report["stack"]["read_model"]
    print(
        f"milliseconds; {stack['chains']} twin chains, {report['machine']['cores']} cores; read model: "
        f"{held['anomalies']} anomalies ({held['active_anomalies']} active), {held['actions']} proposals, "
        f"{held['audit_records']} audit records"
    )
    busiest = report["machine"]["other_cores_max"]
    if busiest > OTHER_CORES_WARN:
        print(
            f"WARNING: processes outside the stack used up to {busiest:.2f} cores; the tails are not its own"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, default=3)
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of /api/metrics load")
    parser.add_argument("--short-duration", type=float, default=10.0, help="seconds for the other reads")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--backlog", type=int, default=1000, help="past noise episodes to load first")
    parser.add_argument("--warmup-s", type=float, default=15.0)
    parser.add_argument("--sse-events", type=int, default=20)
    parser.add_argument("--sse-gap-s", type=float, default=0.25)
    parser.add_argument("--out", type=Path, default=ROOT / ".reports" / "api_load.json")
    args = parser.parse_args()
    report = asyncio.run(run(args))
    print_table(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"\nwritten {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    main()

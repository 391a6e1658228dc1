"""The whole stack as a new user runs it: `sentinai up`, watch the twin, inject an incident, Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nats
import pytest
from upstack import alive

from sentinai.common import natsauth, subjects

pytestmark = pytest.mark.integration


def _anomalies_on_the_bus(stack: Any) -> list[dict[str, Any]]:
    """Read anomaly.detected.twin straight from JetStream, as the operator's tools do (as ``admin``)."""
    runtime = json.loads((stack.state_dir / "up.json").read_text())

    async def read() -> list[dict[str, Any]]:
        nc = await nats.connect(
            runtime["natsUrl"], **natsauth.connect_options(Path(runtime["natsAdminCreds"]))
        )
        try:
            sub = await nc.jetstream().subscribe(subjects.anomaly_detected("twin"), ordered_consumer=True)
            found = []
            with contextlib.suppress(TimeoutError):
                while True:
                    msg = await sub.next_msg(timeout=1.0)
                    found.append(json.loads(msg.data))
            return found
        finally:
            await nc.close()

    return asyncio.run(read())


def test_up_watch_inject_sequencer_stall_and_stop_cleanly(make_stack: Callable[..., Any]) -> None:
    stack = make_stack()
    started = time.monotonic()

    def health_ok() -> bool:
        response = stack.get("/api/health")
        body = response.json()
        return body["status"] == "ok" and any(c["chainId"] == "twin" and c["fresh"] for c in body["chains"])

    stack.eventually(health_ok, timeout_s=60, what="/api/health ok with a fresh twin chain")
    assert time.monotonic() - started < 60

    def height() -> float | None:
        chains = stack.get("/api/metrics", chain="twin").json()["chains"]
        return chains[0]["metrics"].get("blockHeight") if chains else None

    first = stack.eventually(height, timeout_s=20, what="a block height")
    stack.eventually(
        lambda: (h := height()) is not None and h > first, timeout_s=20, what="the height moving"
    )
    assert stack.get("/api/metrics", chain="twin").json()["chains"][0]["metrics"].get("cpuUsage") is not None

    injected = stack.cli("twin", "inject", "sequencer_stall")
    assert injected.returncode == 0, injected.stderr
    injected_at = time.monotonic()

    def stall_anomaly() -> list[dict[str, Any]]:
        items = stack.get("/api/anomalies", chain="twin").json()["anomalies"]
        return [
            a for a in items if "stall" in a["description"].lower() or a["metric"] == "log:sequencer_stall"
        ]

    found = stack.eventually(stall_anomaly, timeout_s=15, what="a sequencer-stall anomaly")
    assert time.monotonic() - injected_at <= 15
    assert found[0]["chain"] == "twin" and found[0]["severity"] in {"high", "critical"}

    assert any(e["chainId"] == "twin" for e in _anomalies_on_the_bus(stack))
    # Nobody reaches the stack's NATS without credentials, and every service kept to its own rights.
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        asyncio.run(nats.connect(stack.nats_url, max_reconnect_attempts=0, allow_reconnect=False))
    denied = ("Publish Violation", "Subscription Violation")
    violations = [
        line for line in stack.output if line.startswith("nats ") and any(d in line for d in denied)
    ]
    assert violations == [], violations

    status = stack.cli("status")
    assert "twin" in status.stdout

    pids = stack.child_pids()
    assert {"nats", "twin", "collector", "detector", "api"} <= set(pids)
    assert stack.stop() == 0
    leftovers = {name: pid for name, pid in pids.items() if alive(pid)}
    assert leftovers == {}, f"processes left behind: {leftovers}"
    assert not (stack.state_dir / "up.json").exists()

"""nats-server killed under load and started again on the same port and store: nothing is lost.

`sentinai up` runs against a nats-server this test owns (``SENTINAI_NATS_URL``), so the test can kill
it (SIGKILL, no chance to flush or say goodbye) while the twin keeps producing and the collector
keeps publishing, then start it again on the same port with the same JetStream store directory.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from faults_support import health_port, healthz, stream_counts, stream_messages
from upstack import UpStack, eventually

from sentinai.devkit.natsserver import EmbeddedNats
from sentinai.twin.client import TwinControl

pytestmark = pytest.mark.integration
SERVICES = ("collector", "detector", "rca", "predictor", "planner", "executor")
OUTAGE_S = 4.0


@pytest.fixture
def nats_and_stack(tmp_path: Path) -> Iterator[tuple[EmbeddedNats, UpStack]]:
    server = EmbeddedNats(data_dir=tmp_path / "nats", log_file=tmp_path / "nats.log").start()
    stack = UpStack(tmp_path, SENTINAI_NATS_URL=server.url, SENTINAI_TWIN_POLL_INTERVAL_S="1")
    try:
        yield server, stack
    finally:
        stack.close()
        server.stop()


def healthy(stack: UpStack) -> bool:
    body = stack.get("/api/health").json()
    return bool(body["status"] == "ok" and any(c["fresh"] for c in body["chains"]))


def all_services_healthy(stack: UpStack) -> bool:
    pids = stack.child_pids()
    return healthy(stack) and all(healthz(health_port(pids[name], name)) for name in SERVICES)


def after(stack: UpStack, stream: str, subject: str, since: float) -> list[dict[str, Any]]:
    found = [json.loads(body) for _, body in stream_messages(stack.nats_url, stream, subject)]
    return [e for e in found if datetime.fromisoformat(e["occurredAt"]).timestamp() >= since]


def test_nats_server_killed_and_restarted_under_load(nats_and_stack: tuple[EmbeddedNats, UpStack]) -> None:
    server, stack = nats_and_stack
    eventually(lambda: all_services_healthy(stack), timeout_s=90, what="a healthy stack")
    # Some history in every stream before the crash.
    eventually(lambda: stream_counts(server.url).get("EVENTS", 0) > 0, timeout_s=60, what="a first event")
    notify = {"kind": "notify", "severity": "low", "text": "before the crash"}
    # The writer is the key's principal; a name in the body would have to be the same one.
    body = {"chainId": "twin", "action": notify, "reason": "history"}
    # 200: the planner's verdict came back at once; 202: accepted, the verdict comes later.
    assert stack.post("/api/actions", body).status_code in (200, 202)
    eventually(
        lambda: stream_counts(server.url).get("ACTIONS", 0) >= 3, timeout_s=30, what="an executed action"
    )
    pids = stack.child_pids()
    before = stream_counts(server.url)

    server.kill()
    killed = time.monotonic()
    eventually(
        lambda: stack.get("/api/health").json()["status"] == "down", timeout_s=OUTAGE_S, what="NATS down"
    )
    time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - killed)))  # the rest of the outage itself
    server.start()
    back = time.time()

    eventually(lambda: all_services_healthy(stack), timeout_s=60, what="every service reconnected")
    assert stack.child_pids() == pids, "a service had to be restarted instead of reconnecting"
    after_restart = stream_counts(server.url)
    lost = {
        name: (n, after_restart.get(name, 0)) for name, n in before.items() if after_restart.get(name, 0) < n
    }
    assert lost == {}, f"streams lost messages over the restart: {lost}"
    eventually(
        lambda: len(after(stack, "TELEMETRY", "metrics.raw.twin.", back)) >= 8,
        timeout_s=30,
        what="samples stored again after the restart",
    )

    with TwinControl(stack.twin_url) as twin:
        twin.inject("twin", "sequencer_stall")
    eventually(
        lambda: [
            a
            for a in after(stack, "EVENTS", "anomaly.detected.twin", back)
            if "stall" in (a["description"] + a["metric"]).lower()
        ],
        timeout_s=45,
        what="a stall detected after the restart",
    )
    proposals = eventually(
        lambda: [
            p
            for p in after(stack, "ACTIONS", "action.proposed.twin", back)
            if p["action"]["kind"] == "restart_component" and p["action"]["component"] == "op-node"
        ],
        timeout_s=60,
        what="an op-node restart proposed after the restart",
    )
    print(f"streams before {before}, after {after_restart}; proposals after the restart: {len(proposals)}")

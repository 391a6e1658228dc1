"""The api over real HTTP on the running stack: auth, read-only, rate limit, paging, SSE, GET purity."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from sentinai.common.net import free_port

pytestmark = pytest.mark.integration

KEY = "integration-key-1"


class SseReader:
    """Reads /api/stream in a thread, keeping every (event, data) pair as it arrives."""

    def __init__(self, url: str) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(url,), daemon=True)
        self._thread.start()

    def _run(self, url: str) -> None:
        with httpx.stream("GET", url, timeout=httpx.Timeout(5, read=20)) as resp:
            name = ""
            for line in resp.iter_lines():
                if self._stop.is_set():
                    return
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    self.events.append((name, json.loads(line[6:])))

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [data for name, data in list(self.events) if name == kind]

    def close(self) -> None:
        self._stop.set()


@pytest.fixture
def read_only_api(tmp_path: Any) -> Iterator[Callable[[str], str]]:
    """A second api replica in read-only mode on the stack's NATS (it has the key, and still refuses)."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(nats_url: str) -> str:
        port = free_port()
        env = {
            **os.environ,
            "SENTINAI_NATS_URL": nats_url,
            "SENTINAI_API_PORT": str(port),
            "SENTINAI_API_KEY": KEY,
            "SENTINAI_READ_ONLY_MODE": "true",
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "sentinai.api"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
        return f"http://127.0.0.1:{port}"

    yield start
    for proc in procs:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _every_door_answers(stack: Any) -> None:
    # What a new user opens after `make run`: every door answers, none by redirect.
    for path, kind in [
        ("/", "text/html"),
        ("/cost", "text/html"),
        ("/docs", "text/html"),
        ("/metrics", "text/plain"),
        ("/asyncapi", "application/json"),
    ]:
        door = stack.get(path)
        assert door.status_code == 200 and door.headers["content-type"].startswith(kind), path
    assert httpx.post(stack.api + "/mcp", json={}, timeout=5).status_code == 401


def test_operator_api_end_to_end(make_stack: Callable[..., Any], read_only_api: Callable[[str], str]) -> None:
    stack = make_stack(
        SENTINAI_API_KEY=KEY, SENTINAI_API_WRITE_BURST="3", SENTINAI_API_WRITE_RATE_PER_MIN="2"
    )
    stack.eventually(
        lambda: any(
            c.get("metrics", {}).get("blockHeight") for c in stack.get("/api/metrics").json()["chains"]
        ),
        timeout_s=60,
        what="twin metrics in /api/metrics",
    )
    _every_door_answers(stack)
    sse = SseReader(stack.api + "/api/stream?chain=twin")
    try:
        # SSE: live samples flow, and an injected incident reaches the stream without polling.
        stack.eventually(lambda: sse.of("sample"), timeout_s=15, what="a live sample on /api/stream")
        injected_at = time.monotonic()
        assert stack.cli("twin", "inject", "sequencer_stall").returncode == 0
        pending = stack.eventually(
            lambda: stack.get("/api/actions", status="pending").json()["actions"],
            timeout_s=60,
            what="a pending approval after sequencer_stall",
        )
        stall = [
            a for a in sse.of("anomaly") if a["rule"] == "liveness" or "stall" in a["description"].lower()
        ]
        assert stall, f"no stall anomaly on the stream: {sse.of('anomaly')[-3:]}"
        # The pending list (the api's read model) and the stream are fed by different consumers: the
        # proposal can be listed a moment before its event reaches the stream.
        stack.eventually(
            lambda: sse.of("rca") and sse.of("action"),
            timeout_s=15,
            what="the RCA and the proposal pushed live",
        )
        assert time.monotonic() - injected_at < 60
    finally:
        sse.close()

    [action] = [a for a in pending if a["action"]["kind"] == "restart_component"]
    action_id = action["actionId"]
    assert action["tier"] == "high" and action["incident"] == "sequencer_stall"
    approve = f"/api/actions/{action_id}/approve"
    body = {"by": "alice", "reason": "stall confirmed"}

    # Auth: missing and wrong key refused with a message; nothing changes.
    for headers in ({}, {"x-api-key": "wrong"}):
        refused = httpx.post(stack.api + approve, json=body, headers=headers, timeout=5)
        assert refused.status_code == 401 and "x-api-key" in refused.json()["detail"]
    assert stack.get(f"/api/actions/{action_id}").json()["status"] == "pending_approval"

    # GETs are pure: the same answers twice in a row, before any write.
    snapshot = stack.get("/api/actions", chain="twin").json()
    assert stack.get("/api/actions", chain="twin").json()["pending"] == snapshot["pending"]

    # Read-only replica on the same bus: sees the same proposal, refuses to approve it even with the key.
    ro = read_only_api(json.loads((stack.state_dir / "up.json").read_text())["natsUrl"])
    seen = stack.eventually(
        lambda: httpx.get(f"{ro}/api/actions/{action_id}", timeout=5).status_code == 200,
        timeout_s=30,
        what="the proposal on the read-only replica",
    )
    assert seen
    ro_resp = httpx.post(ro + approve, json=body, headers={"x-api-key": KEY}, timeout=5)
    assert ro_resp.status_code == 403 and "read-only" in ro_resp.json()["detail"]

    # The right key: approved by alice, executed (dry run by default), visible in the history.
    ok = httpx.post(stack.api + approve, json=body, headers={"x-api-key": KEY}, timeout=5)
    assert ok.status_code == 202, ok.text
    done = stack.eventually(
        lambda: (a := stack.get(f"/api/actions/{action_id}").json())["outcome"] and a,
        timeout_s=60,
        what="the approved restart's outcome",
    )
    assert done["status"] == "dry_run" and done["approvals"][0]["by"] == "alice"
    again = httpx.post(stack.api + approve, json=body, headers={"x-api-key": KEY}, timeout=5)
    assert again.status_code == 409

    # Rate limit: the burst (3) is spent by the two writes above and one more; then 429.
    codes = [
        httpx.post(stack.api + approve, json=body, headers={"x-api-key": KEY}, timeout=5).status_code
        for _ in range(3)
    ]
    assert 429 in codes, codes

    # Audit pages newest first, without overlap, and as CSV.
    first = stack.get("/api/audit", chain="twin", limit=2, offset=0).json()
    second = stack.get("/api/audit", chain="twin", limit=2, offset=2).json()
    assert first["total"] >= 4 and len(first["items"]) == 2
    assert {i["eventId"] for i in first["items"]}.isdisjoint({i["eventId"] for i in second["items"]})
    assert first["items"][0]["occurredAt"] >= second["items"][0]["occurredAt"]
    kinds = {i["kind"] for i in stack.get("/api/audit", chain="twin", limit=100).json()["items"]}
    assert {"proposed", "approved", "dry_run"} <= kinds
    csv_text = stack.get("/api/audit", format="csv").text
    assert csv_text.startswith("occurredAt,chainId,kind,actor")

    decisions = stack.get("/api/agent-decisions", chain="twin").json()["decisions"]
    assert any(
        d["rca"] and d["rca"]["rootCauseClass"] == "sequencer_stall" and d["actions"] for d in decisions
    ), "the decision export joins the anomaly, its RCA and the approved proposal"

"""The api over real HTTP on the running stack: people's keys and roles, the planner's verdicts,
read-only, rate limit, paging, SSE, GET purity."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

from sentinai.api.keys import KeyStore
from sentinai.common import natsauth
from sentinai.common.net import free_port

pytestmark = pytest.mark.integration

KEY = "integration-key-1"  # SENTINAI_API_KEY: the principal "operator"


class People:
    """A real key file: alice approves, bob operates, carol views, dave's key was revoked, erin approves."""

    def __init__(self, path: Path) -> None:
        self.path = path
        store = KeyStore(path)
        self.tokens = {"operator": KEY}
        for name, role in [
            ("alice", "approver"),
            ("bob", "operator"),
            ("carol", "viewer"),
            ("dave", "approver"),
            ("erin", "approver"),
        ]:
            _, self.tokens[name] = store.add(name, role)  # type: ignore[arg-type]
        store.revoke("dave")

    def key(self, name: str) -> dict[str, str]:
        return {"x-api-key": self.tokens[name]}


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
def read_only_api(tmp_path: Any) -> Iterator[Callable[[Any, Path], str]]:
    """A second api replica in read-only mode on the stack's NATS (it knows the keys, and still refuses)."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(stack: Any, keys_file: Path) -> str:
        port = free_port()
        runtime = stack.runtime()
        env = {
            **os.environ,
            "SENTINAI_NATS_URL": runtime["natsUrl"],
            "SENTINAI_API_PORT": str(port),
            "SENTINAI_API_KEY": KEY,
            "SENTINAI_API_KEYS_FILE": str(keys_file),
            "SENTINAI_READ_ONLY_MODE": "true",
        }
        if runtime.get("natsAdminCreds"):  # the embedded server's users: this replica is "api"
            auth_dir = Path(runtime["natsAdminCreds"]).parent
            env["SENTINAI_NATS_CREDS"] = str(natsauth.creds_file(auth_dir, "api"))
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


def post(stack: Any, path: str, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    return httpx.post(stack.api + path, json=body, headers=headers, timeout=15)


def text(result: CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


async def _execute_action(url: str, key: str, args: dict[str, Any]) -> CallToolResult:
    async with (
        httpx2.AsyncClient(headers={"x-api-key": key}, timeout=30) as http,
        Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client,
    ):
        return await client.call_tool("sentinai.executeAction", args)


def test_operator_api_end_to_end(
    make_stack: Callable[..., Any], read_only_api: Callable[[Any, Path], str], tmp_path: Path
) -> None:
    people = People(tmp_path / "api-keys.json")
    stack = make_stack(
        SENTINAI_API_KEY=KEY,
        SENTINAI_API_KEYS_FILE=str(people.path),
        SENTINAI_API_WRITE_BURST="5",
        SENTINAI_API_WRITE_RATE_PER_MIN="2",
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

        # The pending list (the api's read model) and the stream are fed by different consumers: the
        # proposal can be listed a moment before the anomaly, the RCA and its own event reach the stream.
        def stall_anomalies() -> list[dict[str, Any]]:
            return [
                a for a in sse.of("anomaly") if a["rule"] == "liveness" or "stall" in a["description"].lower()
            ]

        stack.eventually(stall_anomalies, timeout_s=15, what="a stall anomaly pushed live")
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
    body = {"reason": "stall confirmed"}

    _keys_are_checked(stack, people, action_id)

    # GETs are pure: the same answers twice in a row, before any write.
    snapshot = stack.get("/api/actions", chain="twin").json()
    assert stack.get("/api/actions", chain="twin").json()["pending"] == snapshot["pending"]

    # Read-only replica on the same bus: sees the same proposal, refuses every write even with an
    # operator's key, and an agent asking through its MCP gets a tool error saying why.
    ro = read_only_api(stack, people.path)
    seen = stack.eventually(
        lambda: httpx.get(f"{ro}/api/actions/{action_id}", timeout=5).status_code == 200,
        timeout_s=30,
        what="the proposal on the read-only replica",
    )
    assert seen
    request_body = {
        "chainId": "twin",
        "action": {"kind": "notify", "severity": "low", "text": "x"},
        "reason": "x",
    }
    for path, write in (
        (approve, body),
        (f"/api/actions/{action_id}/reject", body),
        ("/api/actions", request_body),
    ):
        ro_resp = httpx.post(ro + path, json=write, headers=people.key("bob"), timeout=5)
        assert ro_resp.status_code == 403 and "read-only" in ro_resp.json()["detail"], path
    tool = asyncio.run(asyncio.wait_for(_execute_action(ro, people.tokens["bob"], request_body), 60))
    assert tool.is_error and "read-only mode" in text(tool)

    # alice's key: approved as alice (the planner's verdict, at once), executed (dry run by default).
    ok = post(stack, approve, body, people.key("alice"))
    assert ok.status_code == 200, ok.text
    assert (ok.json()["status"], ok.json()["by"], ok.json()["approvals"]) == ("approved", "alice", ["alice"])
    done = stack.eventually(
        lambda: (a := stack.get(f"/api/actions/{action_id}").json())["outcome"] and a,
        timeout_s=60,
        what="the approved restart's outcome",
    )
    assert done["status"] == "dry_run" and done["approvals"][0]["by"] == "alice"
    again = post(stack, approve, body, people.key("alice"))
    assert again.status_code == 409

    _critical_needs_two_different_people(stack, people)

    # Rate limit, per person: erin's burst (5) is hers alone; the sixth write in a row is 429.
    codes = [
        post(stack, "/api/actions/act-none/reject", {}, people.key("erin")).status_code for _ in range(6)
    ]
    assert codes[:5] == [404] * 5 and codes[5] == 429, codes

    _audit_pages_and_exports(stack)


def _critical_needs_two_different_people(stack: Any, people: People) -> None:
    """bob asks for a critical exec; he cannot approve it, alice counts once, the operator completes it."""
    asked = post(
        stack,
        "/api/actions",
        {
            "chainId": "twin",
            "action": {"kind": "exec_debug", "component": "op-geth", "command": "geth attach"},
            "reason": "look at the txpool by hand",
        },
        people.key("bob"),
    )
    assert asked.status_code == 200, asked.text
    assert (asked.json()["status"], asked.json()["approvalsRequired"]) == ("pending_approval", 2)
    action_id = asked.json()["actionId"]
    stack.eventually(
        lambda: stack.get(f"/api/actions/{action_id}").status_code == 200,
        timeout_s=15,
        what=f"{action_id} in the read model",
    )
    approve = f"/api/actions/{action_id}/approve"

    own = post(stack, approve, {"reason": "mine"}, people.key("bob"))
    assert own.status_code == 409 and own.json()["verdict"]["code"] == "proposer", own.text
    assert "bob" in own.json()["detail"]

    first = post(stack, approve, {"reason": "needed"}, people.key("alice"))
    assert first.status_code == 200 and first.json()["status"] == "waiting", first.text
    twice = post(stack, approve, {"by": "ALICE", "reason": "me again"}, people.key("alice"))
    assert twice.status_code == 409 and twice.json()["verdict"]["code"] == "same_principal", twice.text
    reason = twice.json()["detail"]
    assert reason and "alice" in reason.lower()
    stack.eventually(
        lambda: stack.get(f"/api/actions/{action_id}").json()["refusal"] == reason,
        timeout_s=15,
        what="the refusal's reason on the action",
    )

    second = post(stack, approve, {"reason": "agreed"}, people.key("operator"))
    assert second.status_code == 200, second.text
    assert (second.json()["status"], second.json()["approvals"]) == ("approved", ["alice", "operator"])


def _keys_are_checked(stack: Any, people: People, action_id: str) -> None:
    """None, a wrong and a revoked key are 401; a viewer's is 403; nothing changes."""
    approve = f"/api/actions/{action_id}/approve"
    body = {"reason": "stall confirmed"}
    for headers, status, words in (
        ({}, 401, "missing x-api-key"),
        ({"x-api-key": "wrong"}, 401, "wrong x-api-key"),
        (people.key("dave"), 401, "revoked"),
        (people.key("carol"), 403, "carol is a viewer"),
    ):
        refused = post(stack, approve, body, headers)
        assert refused.status_code == status and words in refused.json()["detail"], refused.text
    # A name in the body cannot borrow someone else's identity.
    borrowed = post(stack, approve, {"by": "bob", **body}, people.key("alice"))
    assert borrowed.status_code == 403 and "this x-api-key is alice's" in borrowed.json()["detail"]
    assert stack.get(f"/api/actions/{action_id}").json()["status"] == "pending_approval"


def _audit_pages_and_exports(stack: Any) -> None:
    """Audit pages newest first, without overlap, and as CSV; the decision export joins the loop."""
    first = stack.get("/api/audit", chain="twin", limit=2, offset=0).json()
    second = stack.get("/api/audit", chain="twin", limit=2, offset=2).json()
    assert first["total"] >= 4 and len(first["items"]) == 2
    assert {i["eventId"] for i in first["items"]}.isdisjoint({i["eventId"] for i in second["items"]})
    assert first["items"][0]["occurredAt"] >= second["items"][0]["occurredAt"]
    items = stack.get("/api/audit", chain="twin", limit=200).json()["items"]
    assert {"proposed", "approved", "dry_run", "refused"} <= {i["kind"] for i in items}
    assert {i["actor"] for i in items if i["kind"] == "approved"} >= {"alice", "operator"}
    csv_text = stack.get("/api/audit", format="csv").text
    assert csv_text.startswith("occurredAt,chainId,kind,actor")

    decisions = stack.get("/api/agent-decisions", chain="twin").json()["decisions"]
    assert any(
        d["rca"] and d["rca"]["rootCauseClass"] == "sequencer_stall" and d["actions"] for d in decisions
    ), "the decision export joins the anomaly, its RCA and the approved proposal"

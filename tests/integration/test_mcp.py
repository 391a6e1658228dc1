"""An AI agent on the running stack through MCP: streamable HTTP at ``<api>/mcp``, and `sentinai mcp`.

The agent uses bob's key: its requests are bob's, and whatever their tier they wait for a person
other than bob.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult

from sentinai.api.keys import KeyStore

pytestmark = pytest.mark.integration

SENTINAI = str(Path(sys.executable).parent / "sentinai")
KEY = "integration-mcp-key-4f1c9a"
TOOLS = {
    "sentinai.getMetrics",
    "sentinai.getRca",
    "sentinai.getPrediction",
    "sentinai.executeAction",
    "sentinai.getAuditTrail",
}
# Medium tier: the policy would run it by itself, were it not an agent's request.
RESTART_OP_BATCHER = {
    "chainId": "twin",
    "action": {"kind": "restart_component", "component": "op-batcher"},
    "reason": "integration test: an agent asks for an op-batcher restart",
    "requestedBy": "integration-agent",
}


def _data(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    body: dict[str, Any] | None = result.structured_content
    assert body is not None
    return body


async def _over_http(url: str, key: str) -> tuple[set[str], dict[str, Any], dict[str, Any]]:
    async with (
        httpx2.AsyncClient(headers={"x-api-key": key}, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        names = {t.name for t in (await client.list_tools()).tools}
        metrics = _data(await client.call_tool("sentinai.getMetrics", {"chain": "twin"}))
        proposal = _data(await client.call_tool("sentinai.executeAction", RESTART_OP_BATCHER))
    return names, metrics, proposal


async def _over_stdio(stack: Any) -> tuple[set[str], dict[str, Any]]:
    params = StdioServerParameters(
        command=SENTINAI, args=["--state-dir", str(stack.state_dir), "mcp"], env=dict(stack.env)
    )
    async with Client(params) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        metrics = _data(await client.call_tool("sentinai.getMetrics", {"chain": "twin"}))
    return names, metrics


def _block_height(stack: Any) -> Any:
    chains = stack.get("/api/metrics", chain="twin").json().get("chains") or []
    return chains[0]["metrics"].get("blockHeight") if chains else None


def test_an_agents_request_waits_for_a_human_other_than_its_key_and_nobody_gets_in_without_one(
    make_stack: Callable[..., Any], tmp_path: Path
) -> None:
    store = KeyStore(tmp_path / "api-keys.json")
    _, alice = store.add("alice", "approver")
    _, bob = store.add("bob", "operator")
    stack = make_stack(SENTINAI_API_KEY=KEY, SENTINAI_API_KEYS_FILE=str(store.path))
    stack.eventually(lambda: _block_height(stack), timeout_s=60, what="a twin block height in /api/metrics")

    # (a) streamable HTTP with bob's key: the five tools, live metrics, and a request the planner holds.
    names, metrics, proposal = asyncio.run(asyncio.wait_for(_over_http(f"{stack.api}/mcp", bob), 60))
    assert names == TOOLS
    assert metrics["chains"][0]["chainId"] == "twin"
    assert isinstance(metrics["chains"][0]["metrics"]["blockHeight"], int | float)
    action_id = proposal["actionId"]
    assert (proposal["status"], proposal["requestedBy"], proposal["agent"]) == (
        "pending_approval",
        "bob",
        "integration-agent",
    )
    assert "cannot approve" in proposal["next"]

    def view() -> dict[str, Any]:
        found: dict[str, Any] = stack.get(f"/api/actions/{action_id}").json()
        return found

    shown = stack.eventually(
        lambda: stack.get(f"/api/actions/{action_id}").status_code == 200 and view(),
        timeout_s=30,
        what=f"{action_id} in /api/actions",
    )
    assert (shown["tier"], shown["proposedBy"], shown["status"]) == ("medium", "bob", "pending_approval")
    assert "integration-agent" in shown["reason"] and shown["approvals"] == []
    # Nothing runs it by itself: a few seconds on, it still waits.
    time.sleep(3)
    assert view()["status"] == "pending_approval" and view()["outcome"] is None

    # bob's own key cannot approve his agent's request; alice's can.
    approve = f"{stack.api}/api/actions/{action_id}/approve"
    own = httpx.post(approve, json={}, headers={"x-api-key": bob}, timeout=15)
    assert own.status_code == 409 and own.json()["verdict"]["code"] == "proposer", own.text
    human = httpx.post(approve, json={"reason": "checked"}, headers={"x-api-key": alice}, timeout=15)
    assert human.status_code == 200 and human.json()["status"] == "approved", human.text
    done = stack.eventually(lambda: view()["outcome"] and view(), timeout_s=60, what="the restart's outcome")
    assert done["approvals"][0]["by"] == "alice"

    # (b) no key or a wrong key: refused before any MCP handling, with a message.
    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    accept = {"accept": "application/json, text/event-stream"}
    for headers, message in (({}, "missing"), ({"x-api-key": "not-the-key"}, "wrong")):
        response = httpx.post(f"{stack.api}/mcp", json=listing, headers={**accept, **headers}, timeout=10)
        assert response.status_code == 401, response.text
        assert message in response.json()["detail"]

    # (c) stdio: `sentinai mcp` finds the running stack from its state folder.
    names, metrics = asyncio.run(asyncio.wait_for(_over_stdio(stack), 60))
    assert names == TOOLS
    assert metrics["chains"][0]["metrics"]["blockHeight"] is not None

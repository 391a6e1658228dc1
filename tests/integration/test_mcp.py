"""An AI agent on the running stack through MCP: streamable HTTP at ``<api>/mcp``, and `sentinai mcp`."""

from __future__ import annotations

import asyncio
import sys
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
RESTART_OP_NODE = {
    "chainId": "twin",
    "action": {"kind": "restart_component", "component": "op-node"},
    "reason": "integration test: an agent asks for an op-node restart",
    "requestedBy": "integration-agent",
}


def _data(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    body: dict[str, Any] | None = result.structured_content
    assert body is not None
    return body


async def _over_http(url: str) -> tuple[set[str], dict[str, Any], dict[str, Any]]:
    async with (
        httpx2.AsyncClient(headers={"x-api-key": KEY}, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        names = {t.name for t in (await client.list_tools()).tools}
        metrics = _data(await client.call_tool("sentinai.getMetrics", {"chain": "twin"}))
        proposal = _data(await client.call_tool("sentinai.executeAction", RESTART_OP_NODE))
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


def test_an_agent_reads_and_proposes_over_mcp_but_cannot_get_in_without_the_key(
    make_stack: Callable[..., Any],
) -> None:
    stack = make_stack(SENTINAI_API_KEY=KEY)
    stack.eventually(lambda: _block_height(stack), timeout_s=60, what="a twin block height in /api/metrics")

    # (a) streamable HTTP with the key: the five tools, live metrics, and a proposal the planner holds.
    names, metrics, proposal = asyncio.run(asyncio.wait_for(_over_http(f"{stack.api}/mcp"), 60))
    assert names == TOOLS
    assert metrics["chains"][0]["chainId"] == "twin"
    assert isinstance(metrics["chains"][0]["metrics"]["blockHeight"], int | float)
    action_id = proposal["actionId"]
    assert action_id and proposal["requestedBy"] == "mcp:integration-agent"

    def pending_view() -> dict[str, Any] | None:
        listed = stack.get("/api/actions", chain="twin", status="pending").json()["actions"]
        return next((a for a in listed if a["actionId"] == action_id), None)

    view = stack.eventually(pending_view, timeout_s=30, what=f"{action_id} pending in /api/actions")
    assert view["status"] == "pending_approval"
    assert view["proposedBy"] == "mcp:integration-agent"
    assert view["tier"] == "high" and view["approvalsRequired"] >= 1
    # Nothing in MCP approved it: it stays pending until a human acts.
    assert view["approvals"] == []

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

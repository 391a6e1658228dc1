"""The MCP tools as an agent meets them: through the SDK client, over a REST API served on a real port.

The REST side here is a small FastAPI app with canned, contract-shaped answers (the real api and
planner: test_verdicts.py and tests/integration/test_mcp.py); it records what the tools sent and
with which key, checks the key like the api does, answers a request with a verdict (or a refusal,
or nothing in time) and unknown chains with a 404 and a message.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from fastapi import FastAPI, Header, HTTPException
from fastapi.responses import JSONResponse
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, TextContent
from starlette.routing import Route

from sentinai.api.keys import KeyStore
from sentinai.api.mcp import RestBackend, build_mcp_server, require_api_key, streamable_http_app
from sentinai.common.net import free_port

KEY = "test-key-0123456789"
NOTE = "sent to the planner, which has not answered within 5 s; it will still judge it"
TOOLS = {
    "sentinai.getMetrics",
    "sentinai.getRca",
    "sentinai.getPrediction",
    "sentinai.executeAction",
    "sentinai.getAuditTrail",
}
AT = "2026-11-26T12:00:00+00:00"
RCA = {
    "eventId": "rca-1",
    "chainId": "twin",
    "episodeId": "ep-1",
    "rootCause": "op-node stopped sequencing",
    "rootCauseClass": "sequencer_stall",
    "affectedComponents": ["op-node"],
    "riskLevel": "high",
    "actionPlan": "restart op-node",
    "hypotheses": [{"cause": "sequencer_stall", "score": 0.9, "summary": "no new blocks", "evidence": []}],
    "evidence": ["unsafe_l2 flat for 12s"],
    "confidence": 0.9,
    "engine": "rules",
    "occurredAt": AT,
    "latencyMs": 12.0,
}
TIERS = {"restart_component": ("high", 1), "notify": ("low", 0)}
Serve = Callable[[Any], AbstractContextManager[str]]


@dataclass
class FakeApi:
    """The REST contract's shapes, canned; remembers every request the tools made."""

    # token → principal name: the keys the api would accept.
    keys: dict[str, str]
    seen: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    proposals: list[dict[str, Any]] = field(default_factory=list)
    # The x-sentinai-via header and the x-api-key of every request the tools filed.
    vias: list[str | None] = field(default_factory=list)
    used_keys: list[str | None] = field(default_factory=list)
    # False: the planner does not answer in time (202, and GET /api/actions does not show it).
    planner_answers: bool = True
    # A reason: the planner refuses every request with it (409).
    planner_refuses: str | None = None
    read_only: bool = False

    def app(self, lifespan: Any = None) -> FastAPI:
        app = FastAPI(lifespan=lifespan)

        def chain_ok(chain: str | None) -> None:
            if chain not in (None, "twin"):
                raise HTTPException(404, detail=f"unknown chain {chain!r}; known: ['twin']")

        @app.get("/api/metrics")
        async def metrics(chain: str | None = None) -> dict[str, Any]:
            chain_ok(chain)
            self.seen.append(("GET", "/api/metrics", {"chain": chain}))
            anomaly = {"eventId": "an-1", "metric": "unsafeL2Age", "severity": "high", "active": True}
            return {
                "chains": [
                    {
                        "chainId": "twin",
                        "updatedAt": AT,
                        "metrics": {"blockHeight": 1234, "cpuUsage": 41.5, "txPoolCount": 7},
                        "components": {"op-geth": {"rpc": {"targetUp": True}}},
                        "anomalies": [anomaly],
                    }
                ]
            }

        @app.get("/api/rca")
        async def rcas(chain: str | None = None, limit: int = 100) -> dict[str, Any]:
            chain_ok(chain)
            self.seen.append(("GET", "/api/rca", {"chain": chain, "limit": limit}))
            return {"latest": RCA, "items": [RCA]}

        @app.get("/api/rca/{rca_id}")
        async def rca(rca_id: str) -> dict[str, Any]:
            self.seen.append(("GET", f"/api/rca/{rca_id}", {}))
            if rca_id not in ("rca-1", "ep-1"):
                raise HTTPException(404, detail=f"no RCA with eventId or episodeId {rca_id!r}")
            return RCA

        @app.get("/api/prediction")
        async def prediction(chain: str | None = None, limit: int = 100) -> dict[str, Any]:
            chain_ok(chain)
            self.seen.append(("GET", "/api/prediction", {"chain": chain, "limit": limit}))
            latest = {"predictedVCpu": 4, "currentVCpu": 2, "confidence": 0.8, "trend": "rising"}
            return {"chains": [{"chainId": "twin", "latest": latest, "history": [latest]}]}

        @app.get("/api/audit")
        async def audit(
            chain: str | None = None, limit: int = 100, offset: int = 0, format: str = "json"
        ) -> dict[str, Any]:
            chain_ok(chain)
            self.seen.append(("GET", "/api/audit", {"chain": chain, "limit": limit, "offset": offset}))
            item = {"eventId": "au-1", "chainId": "twin", "kind": "proposed", "actor": "planner"}
            return {"items": [item], "total": 1, "offset": offset, "limit": limit}

        @app.get("/api/actions/{action_id}")
        async def action(action_id: str) -> dict[str, Any]:
            for view in self.proposals:
                if view["actionId"] == action_id:
                    return view
            raise HTTPException(404, detail=f"no proposal with id {action_id!r}")

        @app.post("/api/actions", status_code=200)
        async def request_action(
            body: dict[str, Any],
            x_api_key: str | None = Header(default=None),
            x_sentinai_via: str | None = Header(default=None),
        ) -> Any:
            if self.read_only:
                raise HTTPException(
                    403, detail="read-only mode (SENTINAI_READ_ONLY_MODE=true): every write is refused"
                )
            if not self.keys:
                raise HTTPException(401, detail="no API key is configured: writes are refused")
            by = self.keys.get(x_api_key or "")
            if by is None:
                raise HTTPException(401, detail="wrong x-api-key: no active key matches it")
            chain_ok(body["chainId"])
            self.seen.append(("POST", "/api/actions", body))
            self.vias.append(x_sentinai_via)
            self.used_keys.append(x_api_key)
            action_id = f"act-{len(self.proposals):016d}"
            tier, approvals = TIERS.get(body["action"]["kind"], ("critical", 2))
            if not self.planner_answers:
                note = f"{NOTE}: watch /api/actions/{action_id} or /api/audit"
                return JSONResponse(
                    {"actionId": action_id, "kind": "request", "eventId": "ev-1", "by": by, "note": note},
                    status_code=202,
                )
            status = (
                "refused" if self.planner_refuses else "pending_approval" if approvals else "auto_approved"
            )
            self.proposals.append(
                {
                    "actionId": action_id,
                    "chainId": body["chainId"],
                    "action": body["action"],
                    "tier": tier,
                    "status": status,
                    "approvalsRequired": approvals,
                    "proposedBy": by,
                    "reason": body["reason"],
                }
            )
            verdict = {
                "actionId": action_id,
                "kind": "request",
                "accepted": not self.planner_refuses,
                "code": "policy" if self.planner_refuses else "ok",
                "status": status,
                "reason": self.planner_refuses or f"{tier} tier: {approvals} approval(s)",
                "approvals": [],
                "approvalsRequired": approvals,
                "eventId": "ev-1",
                "by": by,
            }
            if self.planner_refuses:
                return JSONResponse({"detail": self.planner_refuses, "verdict": verdict}, status_code=409)
            return verdict

        return app

    def posted(self) -> list[dict[str, Any]]:
        return [body for method, _, body in self.seen if method == "POST"]


@pytest.fixture
def fake() -> FakeApi:
    return FakeApi(keys={KEY: "operator"})


@pytest.fixture
def rest_url(fake: FakeApi, serve: Serve) -> Iterator[str]:
    with serve(fake.app()) as url:
        yield url


@asynccontextmanager
async def tools_client(url: str, *, key: str | None = KEY, wait_s: float = 1.0) -> AsyncIterator[Client]:
    backend = RestBackend.connect(url, api_key=key)
    try:
        async with Client(build_mcp_server(backend, proposal_wait_s=wait_s)) as client:
            yield client
    finally:
        await backend.aclose()


def text(result: CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


def data(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, text(result)
    body: dict[str, Any] | None = result.structured_content
    assert body is not None
    return body


# ------------------------------------------------------------------------------------- discovery


async def test_an_agent_sees_five_tools_and_no_way_to_approve(rest_url: str) -> None:
    async with tools_client(rest_url) as client:
        listed = (await client.list_tools()).tools
    assert {t.name for t in listed} == TOOLS
    assert not any("approve" in t.name.lower() for t in listed)
    for tool in listed:
        assert tool.description and len(tool.description) > 80, tool.name
    propose = next(t for t in listed if t.name == "sentinai.executeAction")
    assert "this tool cannot approve anything" in " ".join((propose.description or "").split())
    assert propose.annotations is not None and propose.annotations.read_only_hint is False
    assert all(t.annotations and t.annotations.read_only_hint for t in listed if t is not propose)


async def test_execute_action_schema_spells_out_the_catalogue(rest_url: str) -> None:
    async with tools_client(rest_url) as client:
        listed = (await client.list_tools()).tools
    schema = next(t for t in listed if t.name == "sentinai.executeAction").input_schema
    assert set(schema["required"]) == {"chainId", "action", "reason"}
    assert schema["properties"]["requestedBy"]["default"] == "mcp-agent"
    branches = {b["properties"]["kind"]["const"]: b for b in schema["properties"]["action"]["oneOf"]}
    assert {"restart_component", "scale_cpu", "notify"} <= set(branches)
    assert branches["scale_cpu"]["required"] == ["kind", "component", "vcpu"]
    assert branches["restart_component"]["properties"]["component"]["enum"] == [
        "op-geth",
        "op-node",
        "op-batcher",
        "op-proposer",
    ]


# ------------------------------------------------------------------------------------------ reads


async def test_get_metrics_returns_the_chain_headline_and_its_anomalies(rest_url: str) -> None:
    async with tools_client(rest_url) as client:
        body = data(await client.call_tool("sentinai.getMetrics", {"chain": "twin"}))
        bare = data(await client.call_tool("sentinai.getMetrics", {"includeAnomalies": False}))
    chain = body["chains"][0]
    assert chain["metrics"]["blockHeight"] == 1234
    assert [a["metric"] for a in chain["anomalies"]] == ["unsafeL2Age"]
    assert "anomalies" not in bare["chains"][0] and bare["chains"][0]["metrics"]["cpuUsage"] == 41.5


async def test_an_unknown_chain_is_a_tool_error_with_the_apis_message(rest_url: str) -> None:
    async with tools_client(rest_url) as client:
        result = await client.call_tool("sentinai.getMetrics", {"chain": "nope"})
    assert result.is_error
    assert "HTTP 404" in text(result) and "unknown chain 'nope'" in text(result)
    assert "/api/metrics?chain=nope" in text(result)


async def test_get_rca_by_id_or_the_recent_ones(rest_url: str, fake: FakeApi) -> None:
    async with tools_client(rest_url) as client:
        one = data(await client.call_tool("sentinai.getRca", {"id": "ep-1"}))
        recent = data(await client.call_tool("sentinai.getRca", {"chain": "twin", "limit": 3}))
        missing = await client.call_tool("sentinai.getRca", {"id": "ep-404"})
        escape = await client.call_tool("sentinai.getRca", {"id": "../health"})
    assert one["rootCauseClass"] == "sequencer_stall" and one["actionPlan"] == "restart op-node"
    assert recent["latest"]["eventId"] == "rca-1"
    assert ("GET", "/api/rca", {"chain": "twin", "limit": 3}) in fake.seen
    assert missing.is_error and "HTTP 404" in text(missing)
    assert "no RCA with eventId or episodeId 'ep-404'" in text(missing)
    # An id is one path segment, never a way to reach another route.
    assert escape.is_error and "pattern" in text(escape)
    assert ("GET", "/api/health", {}) not in fake.seen and len(fake.seen) == 3


async def test_prediction_and_audit_trail_pass_their_paging(rest_url: str, fake: FakeApi) -> None:
    async with tools_client(rest_url) as client:
        forecast = data(await client.call_tool("sentinai.getPrediction", {"chain": "twin"}))
        page = data(await client.call_tool("sentinai.getAuditTrail", {"limit": 20, "offset": 40}))
    assert forecast["chains"][0]["latest"]["predictedVCpu"] == 4
    assert page["offset"] == 40 and page["items"][0]["kind"] == "proposed"
    assert ("GET", "/api/audit", {"chain": None, "limit": 20, "offset": 40}) in fake.seen


async def test_arguments_outside_the_schema_are_refused_before_any_call(rest_url: str, fake: FakeApi) -> None:
    async with tools_client(rest_url) as client:
        result = await client.call_tool("sentinai.getAuditTrail", {"limit": 0})
    assert result.is_error and "limit" in text(result)
    assert fake.seen == []


# -------------------------------------------------------------------------------------- proposals


async def test_execute_action_proposes_as_the_keys_owner_and_reports_the_verdict(
    rest_url: str, fake: FakeApi
) -> None:
    args = {
        "chainId": "twin",
        "action": {"kind": "restart_component", "component": "op-node"},
        "reason": "sequencer stalled for 30s",
        "requestedBy": "claude",
    }
    async with tools_client(rest_url) as client:
        result = data(await client.call_tool("sentinai.executeAction", args))
    # The agent's name goes into the reason; the requester of record is the key's owner.
    assert fake.posted() == [
        {
            "chainId": "twin",
            "action": {"kind": "restart_component", "component": "op-node"},
            "reason": "sequencer stalled for 30s [agent: claude]",
        }
    ]
    assert result["actionId"] == "act-0000000000000000"
    assert (result["status"], result["code"], result["tier"]) == ("pending_approval", "ok", "high")
    assert (result["requestedBy"], result["agent"]) == ("operator", "claude")
    assert result["summary"] == "restart op-node"
    assert "1 human approval" in result["next"] and "other than operator" in result["next"]
    assert "cannot approve" in result["next"]


async def test_the_agent_defaults_to_mcp_agent_and_the_request_is_labelled_mcp(
    rest_url: str, fake: FakeApi
) -> None:
    args = {
        "chainId": "twin",
        "action": {"kind": "notify", "severity": "low", "text": "fyi"},
        "reason": "test",
    }
    async with tools_client(rest_url) as client:
        result = data(await client.call_tool("sentinai.executeAction", args))
    assert fake.posted()[0]["reason"] == "test [agent: mcp-agent]"
    assert fake.vias == ["mcp"]
    # A policy that lets agents' low-tier requests run alone: the result says it ran without a human.
    assert result["status"] == "auto_approved" and "without a human" in result["next"]


async def test_a_planner_refusal_is_an_answer_with_its_reason_not_a_crash(
    rest_url: str, fake: FakeApi
) -> None:
    fake.planner_refuses = "forbidden: namespace-wide deletion removes the whole chain deployment"
    args = {"chainId": "twin", "action": {"kind": "delete_namespace", "namespace": "op"}, "reason": "x"}
    async with tools_client(rest_url) as client:
        result = data(await client.call_tool("sentinai.executeAction", args))
    assert (result["status"], result["code"]) == ("refused", "policy")
    assert result["next"] == f"The planner refused it: {fake.planner_refuses}."


@pytest.mark.parametrize(
    ("action", "fragment"),
    [
        pytest.param({"kind": "reboot_everything"}, "unknown kind 'reboot_everything'", id="unknown-kind"),
        pytest.param({"component": "op-node"}, "'kind' is missing", id="no-kind"),
        pytest.param(
            {"kind": "scale_cpu", "component": "op-geth", "vcpu": 1000},
            "vcpu: Input should be less than or equal to 64",
            id="out-of-range",
        ),
        pytest.param(
            {"kind": "restart_component", "component": "geth"},
            "component: Input should be",
            id="bad-component",
        ),
        pytest.param(
            {"kind": "restart_component", "component": "op-node", "force": True},
            "force: Extra inputs are not permitted",
            id="extra-field",
        ),
    ],
)
async def test_anything_outside_the_catalogue_is_a_clear_tool_error_and_sends_nothing(
    rest_url: str, fake: FakeApi, action: dict[str, Any], fragment: str
) -> None:
    args = {"chainId": "twin", "action": action, "reason": "because"}
    async with tools_client(rest_url) as client:
        result = await client.call_tool("sentinai.executeAction", args)
    assert result.is_error
    assert "not a catalogue action" in text(result) and fragment in text(result)
    assert "Valid kinds: scale_cpu" in text(result)
    assert fake.posted() == []


async def test_a_rest_refusal_reaches_the_agent_verbatim(rest_url: str) -> None:
    args = {"chainId": "twin", "action": {"kind": "restart_component", "component": "op-node"}, "reason": "x"}
    async with tools_client(rest_url, key="wrong") as client:
        result = await client.call_tool("sentinai.executeAction", args)
    assert result.is_error
    assert "POST" in text(result) and "HTTP 401" in text(result)
    assert "wrong x-api-key" in text(result)


async def test_in_read_only_mode_execute_action_is_a_tool_error_saying_so(
    rest_url: str, fake: FakeApi
) -> None:
    fake.read_only = True
    args = {"chainId": "twin", "action": {"kind": "restart_component", "component": "op-node"}, "reason": "x"}
    async with tools_client(rest_url) as client:
        result = await client.call_tool("sentinai.executeAction", args)
        reading = await client.call_tool("sentinai.getMetrics", {})
    assert result.is_error and "HTTP 403" in text(result) and "read-only mode" in text(result)
    assert not reading.is_error


async def test_an_unreachable_api_is_a_tool_error_naming_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with tools_client(url) as client:
        result = await client.call_tool("sentinai.getMetrics", {})
    assert result.is_error and f"{url}/api/metrics" in text(result) and "unreachable" in text(result)


async def test_without_a_verdict_in_time_the_agent_still_gets_the_id(rest_url: str, fake: FakeApi) -> None:
    fake.planner_answers = False
    args = {"chainId": "twin", "action": {"kind": "restart_component", "component": "op-node"}, "reason": "x"}
    started = time.monotonic()
    async with tools_client(rest_url, wait_s=0.5) as client:
        result = data(await client.call_tool("sentinai.executeAction", args))
    assert time.monotonic() - started < 5
    assert result["actionId"] == "act-0000000000000000" and result["status"] == "requested"
    assert result["requestedBy"] == "operator" and NOTE in result["next"]
    assert "whatever its tier" in result["next"] and "cannot approve" in result["next"]


# ------------------------------------------------------------------------- streamable HTTP mount


def mounted_app(fake: FakeApi, keys: KeyStore) -> FastAPI:
    """The api's own wiring: REST routes, MCP over them in-process with the caller's key, ``/mcp``
    behind the key store."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with mcp_lifespan():
            yield

    app = fake.app(lifespan=lifespan)
    backend = RestBackend.connect("http://api", api_key=None, transport=httpx.ASGITransport(app=app))
    mcp_app, mcp_lifespan = streamable_http_app(build_mcp_server(backend))
    app.router.routes.append(Route("/mcp", endpoint=require_api_key(mcp_app, keys)))
    return app


@pytest.fixture
def mounted(fake: FakeApi, serve: Serve) -> Iterator[str]:
    with serve(mounted_app(fake, KeyStore(None, env_key=KEY))) as url:
        yield url


@asynccontextmanager
async def http_client(url: str, headers: dict[str, str], *, mode: str = "auto") -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(headers=headers, timeout=10) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode) as client,
    ):
        yield client


# "legacy" is the initialize handshake that today's desktop agents use; "auto" probes the newer protocol.
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_streamable_http_with_the_key_lists_and_calls_tools(
    mounted: str, fake: FakeApi, mode: str
) -> None:
    async with http_client(f"{mounted}/mcp", {"x-api-key": KEY}, mode=mode) as client:
        assert {t.name for t in (await client.list_tools()).tools} == TOOLS
        body = data(await client.call_tool("sentinai.getMetrics", {"chain": "twin"}))
        args = {
            "chainId": "twin",
            "action": {"kind": "restart_component", "component": "op-node"},
            "reason": "x",
        }
        proposal = data(await client.call_tool("sentinai.executeAction", args))
    assert body["chains"][0]["metrics"]["blockHeight"] == 1234
    assert (proposal["status"], proposal["requestedBy"]) == ("pending_approval", "operator")
    assert fake.used_keys == [KEY]  # the caller's own key, passed on to REST


async def test_over_http_each_caller_requests_as_the_owner_of_its_own_key(
    fake: FakeApi, serve: Serve, tmp_path: Path
) -> None:
    keys = KeyStore(tmp_path / "api-keys.json", env_key=KEY)
    _, alice = keys.add("alice", "operator")
    fake.keys[alice] = "alice"
    args = {"chainId": "twin", "action": {"kind": "restart_component", "component": "op-node"}, "reason": "x"}
    with serve(mounted_app(fake, keys)) as url:
        async with http_client(f"{url}/mcp", {"x-api-key": alice}) as client:
            as_alice = data(await client.call_tool("sentinai.executeAction", args))
        async with http_client(f"{url}/mcp", {"x-api-key": KEY}) as client:
            as_operator = data(await client.call_tool("sentinai.executeAction", args))
    assert (as_alice["requestedBy"], as_operator["requestedBy"]) == ("alice", "operator")
    assert fake.used_keys == [alice, KEY]


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        pytest.param({}, "missing x-api-key header", id="no-key"),
        pytest.param({"x-api-key": "nope"}, "wrong x-api-key", id="wrong-key"),
    ],
)
async def test_streamable_http_without_the_right_key_is_401(
    mounted: str, headers: dict[str, str], message: str
) -> None:
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    async with httpx.AsyncClient(timeout=5) as http:
        response = await http.post(
            f"{mounted}/mcp",
            json=initialize,
            headers={**headers, "accept": "application/json, text/event-stream"},
        )
    assert response.status_code == 401
    assert message in response.json()["detail"]
    # The SDK client cannot even connect: every request, the handshake first, is refused.
    with pytest.RaisesGroup(MCPError, flatten_subgroups=True):
        async with http_client(f"{mounted}/mcp", headers) as client:
            await client.list_tools()


async def test_with_no_key_configured_mcp_over_http_is_refused(fake: FakeApi, serve: Serve) -> None:
    with serve(mounted_app(fake, KeyStore(None))) as url:
        async with httpx.AsyncClient(timeout=5) as http:
            response = await http.post(f"{url}/mcp", json={}, headers={"x-api-key": "anything"})
    assert response.status_code == 401
    detail = response.json()["detail"]
    assert "no API key is configured: MCP over HTTP is refused" in detail
    assert "sentinai keys add NAME --role operator" in detail


# -------------------------------------------------------------------------------------------- stdio


def _sentinai() -> str:
    return str(Path(sys.executable).parent / "sentinai")


async def test_sentinai_mcp_serves_the_tools_over_stdio(rest_url: str, tmp_path: Path) -> None:
    params = StdioServerParameters(
        command=_sentinai(),
        args=["--state-dir", str(tmp_path), "mcp", "--api-url", rest_url],
        env={"SENTINAI_API_KEY": KEY, "SENTINAI_LOG_LEVEL": "info", "PATH": os.environ.get("PATH", "")},
    )
    with (tmp_path / "stderr.log").open("w+") as errlog:
        async with Client(stdio_client(params, errlog=errlog)) as client:
            assert {t.name for t in (await client.list_tools()).tools} == TOOLS
            body = data(
                await asyncio.wait_for(client.call_tool("sentinai.getMetrics", {"chain": "twin"}), 20)
            )
    assert body["chains"][0]["metrics"]["blockHeight"] == 1234
    # stdout carried only the protocol (or the calls above would have failed); the logs went to stderr.
    assert f"serving MCP over stdio for {rest_url}" in (tmp_path / "stderr.log").read_text()


async def test_sentinai_mcp_finds_the_running_stack_and_its_key(
    rest_url: str, fake: FakeApi, tmp_path: Path
) -> None:
    (tmp_path / "up.json").write_text(
        json.dumps({"natsUrl": "nats://x", "apiUrl": rest_url, "twinUrl": None})
    )
    (tmp_path / "api-key").write_text(KEY + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("SENTINAI_API_KEY", "SENTINAI_API_URL")}
    params = StdioServerParameters(command=_sentinai(), args=["--state-dir", str(tmp_path), "mcp"], env=env)
    args = {"chainId": "twin", "action": {"kind": "restart_component", "component": "op-node"}, "reason": "x"}
    async with Client(params) as client:
        result = data(await asyncio.wait_for(client.call_tool("sentinai.executeAction", args), 20))
    assert (result["status"], result["requestedBy"]) == ("pending_approval", "operator")
    assert fake.posted()[0]["reason"] == "x [agent: mcp-agent]"


def test_sentinai_mcp_without_a_stack_says_what_to_do(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SENTINAI_API_URL"}
    done = subprocess.run(
        [_sentinai(), "--state-dir", str(tmp_path), "mcp"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert "sentinai up" in done.stderr and "--api-url" in done.stderr

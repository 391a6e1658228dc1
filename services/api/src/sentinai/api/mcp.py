"""The MCP server: SentinAI's read tools and one proposal tool for AI agents, all over the REST API.

Every tool is a thin shape over one ``RestBackend`` (an ``httpx.AsyncClient`` on the REST API), so
MCP can do exactly what REST allows and nothing more. There is deliberately no approve tool: an
agent may propose a catalogue action; the planner judges it and humans approve what the policy
says needs approval.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any, Final, get_args
from urllib.parse import quote

import httpx
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import ToolAnnotations
from pydantic import Field, ValidationError, WithJsonSchema
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from sentinai.api.auth import key_matches
from sentinai.common.actions import Action, parse_action

SERVER_NAME: Final = "sentinai"
DEFAULT_REQUESTER: Final = "mcp-agent"
# How long executeAction waits for the planner's verdict before answering with the id alone.
PROPOSAL_WAIT_S: Final = 3.0
_POLL_S: Final = 0.2

INSTRUCTIONS: Final = (
    "SentinAI watches OP Stack L2 chains (op-geth, op-node, op-batcher, op-proposer). Read the state "
    "with sentinai.getMetrics, sentinai.getRca (root-cause analyses), sentinai.getPrediction (CPU "
    "forecast) and sentinai.getAuditTrail. sentinai.executeAction only PROPOSES a catalogue action: the "
    "planner classifies it by risk tier, and anything that needs approval waits for a human. "
    "No tool can approve."
)


def _action_schema() -> dict[str, Any]:
    """The catalogue as JSON Schema, one self-contained branch per kind (``kind`` picks the branch)."""
    branches = [model.model_json_schema(by_alias=True) for model in get_args(get_args(Action)[0])]
    return {
        "type": "object",
        "description": (
            'One action from SentinAI\'s closed catalogue, e.g. {"kind": "restart_component", '
            '"component": "op-node"} or {"kind": "scale_cpu", "component": "op-geth", '
            '"vcpu": 4}. Anything else is rejected.'
        ),
        "oneOf": branches,
    }


ChainArg = Annotated[
    str | None,
    Field(description="Chain id, e.g. 'twin'. Omit for every chain.", min_length=1, max_length=64),
]
ActionArg = Annotated[dict[str, Any], WithJsonSchema(_action_schema())]


class RestBackend:
    """SentinAI's REST API as the tools see it: JSON in, JSON out, 4xx/5xx become ``ToolError``s."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    @classmethod
    def connect(
        cls,
        base_url: str,
        *,
        api_key: str | None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout_s: float = 10.0,
    ) -> RestBackend:
        """A backend on ``base_url``; pass ``httpx.ASGITransport(app=...)`` to call an app in-process."""
        # The api labels requests from here "via mcp" in the audit trail.
        headers = {"x-sentinai-via": "mcp"} | ({"x-api-key": api_key} if api_key else {})
        return cls(
            httpx.AsyncClient(base_url=base_url, headers=headers, transport=transport, timeout=timeout_s)
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def get(self, path: str, **params: str | int | bool | None) -> dict[str, Any]:
        query = {key: _query_value(value) for key, value in params.items() if value is not None}
        return await self._call("GET", path, params=query)

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self._call("POST", path, json=body)

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        request = self.client.build_request(method, path, **kwargs)
        try:
            response = await self.client.send(request)
        except httpx.HTTPError as exc:
            raise ToolError(f"{method} {request.url} failed: SentinAI API unreachable ({exc!r})") from exc
        if response.is_error:
            raise ToolError(
                f"{method} {request.url} failed: HTTP {response.status_code}: {_detail(response)}"
            )
        body = response.json()
        if not isinstance(body, dict):
            raise ToolError(f"{method} {request.url} answered {type(body).__name__}, not a JSON object")
        return body


def _query_value(value: str | int | bool) -> str | int:
    return str(value).lower() if isinstance(value, bool) else value


def _detail(response: httpx.Response) -> str:
    """The API's own explanation (FastAPI's ``detail``), else the raw body."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return response.text[:500] or response.reason_phrase
    return detail if isinstance(detail, str) else json.dumps(detail)


_KINDS: Final = tuple(model.model_fields["kind"].default for model in get_args(get_args(Action)[0]))


def _catalogue_error(exc: ValidationError) -> str:
    problems = []
    for err in exc.errors():
        if err["type"] == "union_tag_invalid":
            problems.append(f"unknown kind {err.get('ctx', {}).get('tag')!r}")
        elif err["type"] == "union_tag_not_found":
            problems.append("'kind' is missing")
        else:
            where = ".".join(str(part) for part in err["loc"][1:]) or "action"
            problems.append(f"{where}: {err['msg']}")
    return f"not a catalogue action ({'; '.join(problems)}). Valid kinds: {', '.join(_KINDS)}."


def _verdict(view: dict[str, Any] | None) -> str:
    """What happens next to a requested action, in words an agent can relay to its user."""
    if view is None:
        return (
            "Requested. The planner has not published its verdict yet; it classifies the action by risk "
            "tier, and tiers that need approval wait for a human (this MCP server cannot approve). "
            "Follow it with sentinai.getAuditTrail."
        )
    status, tier = view.get("status"), view.get("tier")
    if status == "pending_approval":
        return (
            f"Proposed in tier {tier}: it waits for {view.get('approvalsRequired')} human approval(s) "
            "through the REST API, `sentinai actions approve` or the dashboard. This MCP server cannot "
            "approve it."
        )
    if status == "refused":
        return f"The planner refused it: {view.get('refusal')}."
    if status == "withdrawn":
        return f"The planner withdrew it, nobody can approve it any more: {view.get('decisionReason')}."
    if status in ("auto_approved", "executing", "dry_run", "succeeded", "rolled_back", "failed"):
        return f"Tier {tier} needs no approval under the risk policy; its status is {status}."
    return f"Its status is {status} (tier {tier})."


class Tools:
    """The tool bodies. Their docstrings are the descriptions the agent reads."""

    def __init__(self, backend: RestBackend, *, proposal_wait_s: float = PROPOSAL_WAIT_S) -> None:
        self.backend = backend
        self.proposal_wait_s = proposal_wait_s

    async def get_metrics(
        self,
        chain: ChainArg = None,
        includeAnomalies: Annotated[
            bool, Field(title="includeAnomalies", description="Add each chain's active anomalies.")
        ] = True,
    ) -> dict[str, Any]:
        """Latest telemetry per chain: blockHeight, cpuUsage (op-geth, %), txPoolCount, gasUsedRatio,
        blockInterval (s), unsafeL2, safeL2, unsafeSafeLag, l1HeadAge (s) and more, with per-component
        readings and, unless includeAnomalies is false, the chain's active anomalies
        (metric, value, zScore, severity, description). Start here to see whether a chain is healthy.
        """
        body = await self.backend.get("/api/metrics", chain=chain)
        if not includeAnomalies:
            body["chains"] = [{k: v for k, v in c.items() if k != "anomalies"} for c in body["chains"]]
        return body

    async def get_rca(
        self,
        chain: ChainArg = None,
        id: Annotated[
            str | None,
            Field(
                description="An RCA's eventId or an incident's episodeId; omit for the recent ones.",
                pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$",
            ),
        ] = None,
        limit: Annotated[int, Field(ge=1, le=100, description="How many recent analyses.")] = 5,
    ) -> dict[str, Any]:
        """Root-cause analyses of detected incidents: rootCause, rootCauseClass (e.g. sequencer_stall,
        l1_rpc_outage), riskLevel, affectedComponents, ranked hypotheses with evidence, confidence and the
        suggested actionPlan. With id, that one analysis; otherwise {latest, items} (newest first).
        """
        if id is not None:
            return await self.backend.get(f"/api/rca/{quote(id, safe='')}")
        return await self.backend.get("/api/rca", chain=chain, limit=limit)

    async def get_prediction(
        self,
        chain: ChainArg = None,
        limit: Annotated[int, Field(ge=1, le=100, description="How many past forecasts per chain.")] = 10,
    ) -> dict[str, Any]:
        """op-geth CPU forecast per chain: predictedVCpu against currentVCpu, trend, confidence,
        keyFactors, reasoning, the horizon in seconds and the forecast/upper-bound cores, plus recent
        history. Use it to judge whether op-geth needs more (or fewer) vCPUs.
        """
        return await self.backend.get("/api/prediction", chain=chain, limit=limit)

    async def execute_action(
        self,
        chainId: Annotated[
            str,
            Field(title="chainId", min_length=1, max_length=64, description="Chain to act on, e.g. 'twin'."),
        ],
        action: ActionArg,
        reason: Annotated[
            str, Field(min_length=1, max_length=2000, description="Why: recorded in the audit trail.")
        ],
        requestedBy: Annotated[
            str,
            Field(
                title="requestedBy",
                min_length=1,
                max_length=100,
                description="Who asks (agent or user name); recorded as 'mcp:<requestedBy>'.",
            ),
        ] = DEFAULT_REQUESTER,
    ) -> dict[str, Any]:
        """PROPOSE one catalogue action for a chain (restart_component, scale_cpu, scale_down,
        raise_memory, notify, …). The tool only files the request; the planner judges it by the risk
        policy (by default: low and medium tiers run automatically, dry-run unless simulation mode is
        off; high waits for one human approval, critical for two; forbidden kinds are refused). Humans
        approve through the REST API, `sentinai actions approve` or the dashboard; this tool cannot
        approve anything. Returns the actionId and, when the planner answered within a few seconds,
        the tier, status and what happens next.
        """
        try:
            parsed = parse_action(action)
        except ValidationError as exc:
            raise ToolError(_catalogue_error(exc)) from exc
        requester = f"mcp:{requestedBy}"
        accepted = await self.backend.post(
            "/api/actions",
            {
                "chainId": chainId,
                "action": parsed.model_dump(mode="json", by_alias=True),
                "requestedBy": requester,
                "reason": reason,
            },
        )
        action_id = str(accepted["actionId"])
        view = await self._proposal(chainId, action_id)
        return {
            "actionId": action_id,
            "chainId": chainId,
            "summary": parsed.summary(),
            "requestedBy": requester,
            "status": view.get("status") if view else "requested",
            "tier": view.get("tier") if view else None,
            "approvalsRequired": view.get("approvalsRequired") if view else None,
            "next": _verdict(view),
        }

    async def _proposal(self, chain_id: str, action_id: str) -> dict[str, Any] | None:
        deadline = time.monotonic() + self.proposal_wait_s
        while True:
            listing = await self.backend.get("/api/actions", chain=chain_id, status="all", limit=100)
            for view in listing.get("actions", []):
                if view.get("actionId") == action_id:
                    return dict(view)
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(_POLL_S)

    async def get_audit_trail(
        self,
        chain: ChainArg = None,
        limit: Annotated[int, Field(ge=1, le=500, description="Records per page.")] = 50,
        offset: Annotated[int, Field(ge=0, description="Records to skip (newest first).")] = 0,
    ) -> dict[str, Any]:
        """The audit trail, newest first: every proposal, approval, rejection, refusal, execution and
        rollback with its actor, actionId, summary, reasoning and outcome. Returns {items, total, offset,
        limit}; page with offset.
        """
        return await self.backend.get("/api/audit", chain=chain, limit=limit, offset=offset, format="json")


_READ = ToolAnnotations(read_only_hint=True, open_world_hint=False)
_PROPOSE = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
)


def build_mcp_server(backend: RestBackend, *, proposal_wait_s: float = PROPOSAL_WAIT_S) -> MCPServer:
    tools = Tools(backend, proposal_wait_s=proposal_wait_s)
    server: MCPServer = MCPServer(SERVER_NAME, instructions=INSTRUCTIONS, version="0.1.0")
    table: list[tuple[str, str, Callable[..., Any], ToolAnnotations]] = [
        ("sentinai.getMetrics", "Chain metrics", tools.get_metrics, _READ),
        ("sentinai.getRca", "Root-cause analyses", tools.get_rca, _READ),
        ("sentinai.getPrediction", "CPU forecast", tools.get_prediction, _READ),
        ("sentinai.executeAction", "Propose an action", tools.execute_action, _PROPOSE),
        ("sentinai.getAuditTrail", "Audit trail", tools.get_audit_trail, _READ),
    ]
    for name, title, fn, hints in table:
        description = inspect.cleandoc(fn.__doc__ or "")
        server.add_tool(fn, name=name, title=title, description=description, annotations=hints)
    return server


Lifespan = Callable[[], AbstractAsyncContextManager[None]]


def streamable_http_app(server: MCPServer) -> tuple[ASGIApp, Lifespan]:
    """The MCP streamable-HTTP endpoint as a path-agnostic ASGI app, and the lifespan it must run in.

    Stateless with JSON responses: no session lives between requests, so any api replica can answer
    any request. DNS-rebinding protection (a Host allow-list) is off because the api is reached by
    whatever name its deployment gives it; ``require_api_key`` is the guard.
    """
    server.streamable_http_app(
        stateless_http=True,
        json_response=True,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    manager = server.session_manager
    return StreamableHTTPASGIApp(manager), manager.run


class _ApiKeyGuard:
    """An ASGI app (a class, so Starlette's ``Route`` passes every method through) guarding ``app``."""

    def __init__(self, app: ASGIApp, api_key: str | None) -> None:
        self.app = app
        self.api_key = api_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            problem = _key_problem(Headers(scope=scope).get("x-api-key"), self.api_key)
            if problem is not None:
                await JSONResponse({"detail": problem}, status_code=401)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def require_api_key(app: ASGIApp, api_key: str | None) -> ASGIApp:
    """Let an HTTP request through only with ``x-api-key`` equal to ``api_key``; otherwise 401 JSON."""
    return _ApiKeyGuard(app, api_key)


def _key_problem(given: str | None, expected: str | None) -> str | None:
    if not expected:
        return "no API key is configured (set SENTINAI_API_KEY on the api): MCP over HTTP is refused"
    if not given:
        return "missing x-api-key header"
    if not key_matches(given, expected):
        return "wrong API key in the x-api-key header"
    return None

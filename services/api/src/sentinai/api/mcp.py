"""The MCP server: SentinAI's read tools and one proposal tool for AI agents, all over the REST API.

Every tool is a thin shape over one ``RestBackend`` (an ``httpx.AsyncClient`` on the REST API), so
MCP can do exactly what REST allows and nothing more. Over HTTP (``/mcp``) each call is made with
the caller's own ``x-api-key``, so the request is the key's principal's, under its role. There is
deliberately no approve tool: an agent may propose a catalogue action; the planner judges it, and a
request that came through MCP waits for a human approval whatever its tier (the policy's
``agent_requests_need_human``, on by default).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any, Final, get_args
from urllib.parse import quote

import httpx
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import ToolAnnotations
from pydantic import Field, ValidationError, WithJsonSchema
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from sentinai.api.auth import KeyProblem, identify
from sentinai.api.keys import KeyStore
from sentinai.common.actions import Action, parse_action

SERVER_NAME: Final = "sentinai"
DEFAULT_REQUESTER: Final = "mcp-agent"
# How long executeAction looks for the judged proposal (for its tier) once the planner has answered.
PROPOSAL_WAIT_S: Final = 3.0
_POLL_S: Final = 0.2

INSTRUCTIONS: Final = (
    "SentinAI watches OP Stack L2 chains (op-geth, op-node, op-batcher, op-proposer). Read the state "
    "with sentinai.getMetrics, sentinai.getRca (root-cause analyses), sentinai.getPrediction (CPU "
    "forecast) and sentinai.getAuditTrail. sentinai.executeAction only PROPOSES a catalogue action: the "
    "planner classifies it by risk tier, and a request made through MCP waits for a human approval "
    "whatever its tier. No tool can approve."
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

    def __init__(self, client: httpx.AsyncClient, *, headers: Mapping[str, str] | None = None) -> None:
        self.client = client
        self.headers = dict(headers or {})

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

    def with_key(self, api_key: str | None) -> RestBackend:
        """The same API called with ``api_key`` (an MCP caller's own key) instead of the configured one."""
        return self if not api_key else RestBackend(self.client, headers={"x-api-key": api_key})

    async def aclose(self) -> None:
        await self.client.aclose()

    async def get(self, path: str, **params: str | int | bool | None) -> dict[str, Any]:
        query = {key: _query_value(value) for key, value in params.items() if value is not None}
        return await self._call("GET", path, params=query)

    async def post(self, path: str, body: dict[str, Any], *, accept: tuple[int, ...] = ()) -> dict[str, Any]:
        """POST ``body``; an error status in ``accept`` is returned as its body instead of raised."""
        return await self._call("POST", path, accept=accept, json=body)

    async def find(self, path: str) -> dict[str, Any] | None:
        """GET one resource; ``None`` when the API answers 404."""
        response = await self._send("GET", path)
        return None if response.status_code == 404 else _body(response)

    async def _call(
        self, method: str, path: str, *, accept: tuple[int, ...] = (), **kwargs: Any
    ) -> dict[str, Any]:
        return _body(await self._send(method, path, **kwargs), accept=accept)

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        request = self.client.build_request(method, path, headers=self.headers, **kwargs)
        try:
            return await self.client.send(request)
        except httpx.HTTPError as exc:
            raise ToolError(f"{method} {request.url} failed: SentinAI API unreachable ({exc!r})") from exc


def _body(response: httpx.Response, *, accept: tuple[int, ...] = ()) -> dict[str, Any]:
    """The JSON object answered; an error status not in ``accept`` is a ``ToolError`` with the reason."""
    what = f"{response.request.method} {response.request.url}"
    if response.is_error and response.status_code not in accept:
        raise ToolError(f"{what} failed: HTTP {response.status_code}: {_detail(response)}")
    body = response.json()
    if not isinstance(body, dict):
        raise ToolError(f"{what} answered {type(body).__name__}, not a JSON object")
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


def _caller_key(ctx: Context[Any, Any]) -> str | None:
    """The ``x-api-key`` of the HTTP request this call came in on; ``None`` over stdio (configured key)."""
    headers = ctx.headers
    return headers.get("x-api-key") if headers else None


def _next(verdict: dict[str, Any] | None, *, requester: str, note: str) -> str:
    """What happens next to a requested action, in words an agent can relay to its user."""
    if verdict is None:
        return (
            f"Requested as {requester}; the api says: {note}. A request made through MCP waits for a "
            "human approval whatever its tier (unless the policy's agent_requests_need_human is off); "
            "this MCP server cannot approve. Follow it with sentinai.getAuditTrail."
        )
    status, reason = verdict.get("status"), verdict.get("reason")
    if status == "pending_approval":
        return (
            f"Pending approval ({reason}): it waits for {verdict.get('approvalsRequired')} human "
            f"approval(s) by someone other than {requester}, through the REST API, `sentinai actions "
            "approve` or the dashboard. This MCP server cannot approve it."
        )
    if status == "refused" or not verdict.get("accepted"):
        return f"The planner refused it: {reason}."
    if status == "auto_approved":
        return f"Approved without a human under the risk policy ({reason}); it runs now."
    return f"The planner answered: {status} ({reason})."


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
            str, Field(min_length=1, max_length=1800, description="Why: recorded in the audit trail.")
        ],
        ctx: Context[Any, Any],
        requestedBy: Annotated[
            str,
            Field(
                title="requestedBy",
                min_length=1,
                max_length=100,
                description=(
                    "The agent's (or its user's) name, added to the reason in the audit trail. The "
                    "requester of record is the owner of the API key this server uses."
                ),
            ),
        ] = DEFAULT_REQUESTER,
    ) -> dict[str, Any]:
        """PROPOSE one catalogue action for a chain (restart_component, scale_cpu, scale_down,
        raise_memory, notify, …). The tool only files the request, as the owner of the API key; the
        planner judges it by the risk policy. A request made through MCP waits for at least one human
        approval whatever its tier (the policy's agent_requests_need_human, on by default): it is never
        executed by itself. High tiers need one approval, critical two, each by a person other than the
        key's owner; forbidden kinds are refused. Humans approve through the REST API,
        `sentinai actions approve` or the dashboard; this tool cannot approve anything. Returns the
        actionId and the planner's verdict: status (pending_approval, refused, or auto_approved when the
        policy lets agents' requests run alone), approvals required, its reason and what happens next.
        """
        try:
            parsed = parse_action(action)
        except ValidationError as exc:
            raise ToolError(_catalogue_error(exc)) from exc
        api = self.backend.with_key(_caller_key(ctx))
        body = {
            "chainId": chainId,
            "action": parsed.model_dump(mode="json", by_alias=True),
            "reason": f"{reason} [agent: {requestedBy}]",
        }
        # 409: the planner refused (its verdict is in the body); any other error is the tool's error.
        answer = await api.post("/api/actions", body, accept=(409,))
        verdict: dict[str, Any] | None = answer.get("verdict", answer if "code" in answer else None)
        action_id = str(answer["actionId"] if verdict is None else verdict["actionId"])
        requester = str(answer["by"] if verdict is None else verdict["by"])
        view = None if verdict is None else await self._proposal(api, action_id)
        return {
            "actionId": action_id,
            "chainId": chainId,
            "summary": parsed.summary(),
            "requestedBy": requester,
            "agent": requestedBy,
            "status": "requested" if verdict is None else verdict["status"],
            "code": None if verdict is None else verdict["code"],
            "reason": None if verdict is None else verdict["reason"],
            "tier": None if view is None else view.get("tier"),
            "approvalsRequired": None if verdict is None else verdict["approvalsRequired"],
            "next": _next(verdict, requester=requester, note=str(answer.get("note", ""))),
        }

    async def _proposal(self, api: RestBackend, action_id: str) -> dict[str, Any] | None:
        """The judged proposal as the read model shows it (for its tier), if it shows within the wait."""
        deadline = time.monotonic() + self.proposal_wait_s
        while True:
            view = await api.find(f"/api/actions/{quote(action_id, safe='')}")
            if view is not None or time.monotonic() >= deadline:
                return view
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

    def __init__(self, app: ASGIApp, keys: KeyStore) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            found = identify(self.keys, Headers(scope=scope).get("x-api-key"), refused="MCP over HTTP is")
            if isinstance(found, KeyProblem):
                await JSONResponse({"detail": found.detail}, status_code=found.status)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def require_api_key(app: ASGIApp, keys: KeyStore) -> ASGIApp:
    """Let an HTTP request through only with an active key of ``keys`` in ``x-api-key``; else 401 JSON.

    The tools then call the REST API with that same key, so every write is its principal's.
    """
    return _ApiKeyGuard(app, keys)

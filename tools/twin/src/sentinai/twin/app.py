"""HTTP surface of the twin: component and L1 JSON-RPC, the Kubernetes API subset and the control API.

Routes are ``async def`` on purpose: they then run on the event loop's thread, the same one the
clock steps the chains on, so no request ever sees a half-stepped chain.

The routes a collector calls every poll (JSON-RPC, the pod and pod-metrics lists) are plain
Starlette endpoints returning ready JSON: FastAPI's dependency solving and response validation
cost more than the answer itself, and at hundreds of chains the twin would be the bottleneck.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterable
from typing import Annotated, Any, Final

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field

from sentinai.twin import incidents, kube, rpc, sim
from sentinai.twin.faults import KubeFault, RpcMode
from sentinai.twin.model import COMPONENTS, Component, digest
from sentinai.twin.runtime import ChainRuntime, Twin, encode

K8S_VERSION: Final = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.1-sentinai-twin",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.24.3",
    "compiler": "gc",
    "platform": "linux/amd64",
}
MAX_STEP: Final = 100_000


class IncidentRequest(BaseModel):
    kind: str
    params: dict[str, Any] = Field(default_factory=dict)


class TrafficRequest(BaseModel):
    multiplier: float = Field(ge=0, le=1000)


class RpcFaultRequest(BaseModel):
    mode: RpcMode | None = None  # None clears the fault


def build_app(twin: Twin, *, manual: bool) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        clock = None if manual else asyncio.create_task(twin.run_clock())
        yield
        if clock is not None:
            clock.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await clock

    app = FastAPI(title="SentinAI OP Stack twin", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.twin = twin

    @app.exception_handler(kube.KubeError)
    async def kube_error(_request: Request, exc: kube.KubeError) -> JSONResponse:
        return JSONResponse(exc.status(), status_code=exc.code)

    @app.exception_handler(incidents.UnknownIncidentError)
    @app.exception_handler(incidents.InvalidParamsError)
    async def bad_incident(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "kinds": list(incidents.KINDS)}, status_code=422)

    _rpc_routes(app, twin)
    _kube_routes(app, twin)
    _control_routes(app, twin)
    return app


# --- JSON-RPC ------------------------------------------------------------------------------------


def _rpc_error(code: int, message: str, request_id: Any = None) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def _answer(runtime: ChainRuntime, component: rpc.Target, request: Any) -> bytes:
    """One JSON-RPC answer, encoded: the result's JSON is reused while the state stands."""
    if not isinstance(request, dict) or not isinstance(request.get("method"), str):
        return encode(_rpc_error(rpc.INVALID_REQUEST, "invalid request"))
    request_id = request.get("id")
    params = request.get("params", [])
    if not isinstance(params, list):
        return encode(_rpc_error(rpc.INVALID_PARAMS, "non-array args", request_id))
    try:
        result = runtime.call_encoded(component, request["method"], params)
    except rpc.RpcError as exc:
        return encode(_rpc_error(exc.code, exc.message, request_id))
    return b'{"jsonrpc":"2.0","id":' + encode(request_id) + b',"result":' + result + b"}"


def _json(body: bytes, status_code: int = 200) -> Response:
    return Response(body, status_code, media_type="application/json")


def _rpc_routes(app: FastAPI, twin: Twin) -> None:
    async def json_rpc(request: Request) -> Response:
        chain, component = request.path_params["chain"], request.path_params["component"]
        runtime = twin.chain(chain)
        if runtime is None or (component not in COMPONENTS and component != rpc.L1):
            return JSONResponse(_rpc_error(rpc.SERVER_ERROR, f"no such endpoint: {chain}/{component}"), 404)
        comp: rpc.Target = component
        if comp == rpc.L1:
            # The L1 provider is not part of the chain's deployment: the chain's own RPC faults and
            # pods leave it alone, an L1 RPC outage takes it away.
            if rpc.l1_unreachable(runtime.state):
                return Response(b"503 Service Unavailable", 503, media_type="text/plain")
        else:
            match twin.faults.rpc.get(chain):
                case "down":
                    # What a load balancer answers when the node behind it is gone.
                    return Response(b"502 Bad Gateway: no healthy upstream", 502, media_type="text/plain")
                case "hang":
                    await twin.faults.hang(chain)
            pod = runtime.state.pods[comp]
            if not pod.ready:
                # The container is restarting or scaled to zero: nothing answers on its port.
                message = f"{component} unavailable: pod {pod.name(chain)} is not ready"
                return JSONResponse(_rpc_error(rpc.SERVER_ERROR, message), 503)
        try:
            body = json.loads(await request.body())
        except ValueError:
            return JSONResponse(_rpc_error(rpc.PARSE_ERROR, "parse error"))
        if isinstance(body, list):
            if not body:
                return JSONResponse(_rpc_error(rpc.INVALID_REQUEST, "empty batch"))
            return _json(b"[" + b",".join(_answer(runtime, comp, item) for item in body) + b"]")
        return _json(_answer(runtime, comp, body))

    app.add_route("/chains/{chain}/{component}", json_rpc, methods=["POST"], include_in_schema=False)


# --- Kubernetes API ------------------------------------------------------------------------------


def _twin(request: Request) -> Twin:
    twin: Twin = request.app.state.twin
    return twin


async def _authorized(request: Request) -> None:
    if request.headers.get("authorization") != f"Bearer {_twin(request).token}":
        raise kube.KubeError(401, "Unauthorized", "Unauthorized")


async def _namespace(ns: str, request: Request) -> ChainRuntime:
    runtime = _twin(request).chain(ns)
    if runtime is None:
        raise kube.not_found("namespaces", ns)
    return runtime


Auth = Annotated[None, Depends(_authorized)]
Namespace = Annotated[ChainRuntime, Depends(_namespace)]


async def _kube_namespace(request: Request) -> ChainRuntime:
    """``Auth`` and ``Namespace`` for the plain Starlette endpoints."""
    await _authorized(request)
    return await _namespace(request.path_params["ns"], request)


def _kube_routes(app: FastAPI, twin: Twin) -> None:
    @app.get("/version")
    async def version() -> dict[str, str]:
        return K8S_VERSION

    @app.get("/api/v1/namespaces")
    async def list_namespaces(_: Auth) -> dict[str, Any]:
        items = [
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": name, "uid": digest(name)[2:34]},
                "status": {"phase": "Active"},
            }
            for name in twin.chains
        ]
        return {"apiVersion": "v1", "kind": "NamespaceList", "metadata": {}, "items": items}

    _pod_routes(app)
    for resource, kind in (("deployments", "Deployment"), ("statefulsets", "StatefulSet")):
        _workload_routes(app, resource=resource, kind=kind)
    _metrics_routes(app)
    _node_routes(app, twin)


def _pod_routes(app: FastAPI) -> None:
    async def list_pods(request: Request) -> Response:
        runtime = await _kube_namespace(request)
        selector = request.query_params.get("labelSelector")

        def pod_list() -> dict[str, Any]:
            pods = [runtime.render_pod(c) for c in COMPONENTS if runtime.state.pods[c].exists]
            items = [p for p in pods if kube.matches(p["metadata"]["labels"], selector)]
            meta = {"resourceVersion": str(runtime.state.tick + 1)}
            return {"apiVersion": "v1", "kind": "PodList", "metadata": meta, "items": items}

        return _json(runtime.encoded(("pods", selector), pod_list))

    app.add_route("/api/v1/namespaces/{ns}/pods", list_pods, methods=["GET"], include_in_schema=False)

    @app.get("/api/v1/namespaces/{ns}/pods/{name}")
    async def read_pod(_: Auth, runtime: Namespace, name: str) -> dict[str, Any]:
        return runtime.render_pod(runtime.pod(name))

    @app.delete("/api/v1/namespaces/{ns}/pods/{name}")
    async def delete_pod(_: Auth, runtime: Namespace, name: str) -> dict[str, Any]:
        return runtime.delete_pod(name)

    @app.get("/api/v1/namespaces/{ns}/pods/{name}/log")
    async def pod_log(
        *,
        _: Auth,
        runtime: Namespace,
        name: str,
        container: str | None = None,
        tailLines: Annotated[int | None, Query(ge=0)] = None,
        previous: bool = False,
        limitBytes: Annotated[int | None, Query(ge=1)] = None,
    ) -> PlainTextResponse:
        component = runtime.pod(name)
        if container not in (None, component):
            raise kube.KubeError(400, "BadRequest", f"container {container} is not valid for pod {name}")
        lines = list(_log_ring(runtime, component, name=name, previous=previous))
        if tailLines is not None:
            lines = lines[-tailLines:] if tailLines else []
        text = "".join(line + "\n" for line in lines)
        if limitBytes is not None:
            text = text.encode()[:limitBytes].decode(errors="ignore")
        return PlainTextResponse(text)


def _log_ring(runtime: ChainRuntime, component: Component, *, name: str, previous: bool) -> Iterable[str]:
    pod = runtime.state.pods[component]
    if previous:
        ring = runtime.previous_logs[component]
        if ring is None:
            message = f'previous terminated container "{component}" in pod "{name}" not found'
            raise kube.KubeError(400, "BadRequest", message)
        return ring
    if not pod.ready and pod.restart_count == 0:
        message = f'container "{component}" in pod "{name}" is waiting to start: {pod.waiting_reason}'
        raise kube.KubeError(400, "BadRequest", message)
    return runtime.logs[component]


def _workload_routes(app: FastAPI, *, resource: str, kind: str) -> None:
    base = f"/apis/apps/v1/namespaces/{{ns}}/{resource}"

    @app.get(base, name=f"list_{resource}")
    async def list_workloads(_: Auth, runtime: Namespace) -> dict[str, Any]:
        items = [runtime.render_workload(c) for c in COMPONENTS if kube.kind_of(c) == kind]
        return {"apiVersion": "apps/v1", "kind": f"{kind}List", "metadata": {}, "items": items}

    @app.get(base + "/{name}", name=f"read_{resource}")
    async def read_workload(_: Auth, runtime: Namespace, name: str, request: Request) -> dict[str, Any]:
        fault = _twin(request).faults.take_kube("get", runtime.chain)
        if fault is not None:
            await _misbehave(fault, resource=resource, name=name)
        return runtime.render_workload(runtime.workload(resource, name))

    @app.patch(base + "/{name}", name=f"patch_{resource}")
    async def patch_workload(_: Auth, runtime: Namespace, name: str, request: Request) -> dict[str, Any]:
        content_type = request.headers.get("content-type", "")
        body = await request.body()
        fault = _twin(request).faults.take_kube("patch", runtime.chain)
        if fault is None:
            return runtime.patch_workload(resource, name, body, content_type)
        applied = runtime.patch_workload(resource, name, body, content_type) if fault.apply else None
        await _misbehave(fault, resource=resource, name=name)
        return applied or runtime.patch_workload(resource, name, body, content_type)


async def _misbehave(fault: KubeFault, *, resource: str, name: str) -> None:
    """Wait the fault's delay, then raise its error (a fault without a status only delays)."""
    if fault.delay_s:
        await asyncio.sleep(fault.delay_s)  # the slowness being simulated, not a wait for a condition
    error = fault.error(resource=resource, name=name)
    if error is not None:
        raise error


def _metrics_routes(app: FastAPI) -> None:
    async def list_pod_metrics(request: Request) -> Response:
        runtime = await _kube_namespace(request)
        selector = request.query_params.get("labelSelector")

        def metrics_list() -> dict[str, Any]:
            found = [runtime.pod_metrics(c) for c in COMPONENTS]
            items = [m for m in found if m is not None and kube.matches(m["metadata"]["labels"], selector)]
            return {
                "kind": "PodMetricsList",
                "apiVersion": "metrics.k8s.io/v1beta1",
                "metadata": {},
                "items": items,
            }

        return _json(runtime.encoded(("metrics", selector), metrics_list))

    app.add_route(
        "/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods",
        list_pod_metrics,
        methods=["GET"],
        include_in_schema=False,
    )

    @app.get("/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods/{name}")
    async def read_pod_metrics(_: Auth, runtime: Namespace, name: str) -> dict[str, Any]:
        metrics = runtime.pod_metrics(runtime.pod(name))
        if metrics is None:
            raise kube.not_found("pods", name, group="metrics.k8s.io")
        return metrics


def _node_routes(app: FastAPI, twin: Twin) -> None:
    async def node_proxy(request: Request) -> Response:
        """The API server's proxy to a node's kubelet; the kubelet here serves its stats summary."""
        await _authorized(request)
        node = request.path_params["node"]
        runtime = twin.chain_on_node(node)
        if runtime is None:
            raise kube.not_found("nodes", node)
        fault = twin.faults.take_kube("proxy", runtime.chain)
        if fault is not None:
            await _misbehave(fault, resource="nodes", name=node)
        if request.path_params["path"].strip("/") != "stats/summary":
            return Response(b"404 page not found\n", 404, media_type="text/plain")
        return _json(runtime.encoded("stats", runtime.stats_summary))

    # The official client sends the proxied path percent-encoded (stats%2Fsummary); the server
    # matches on the decoded path, as the API server does.
    path = "/api/v1/nodes/{node}/proxy/{path:path}"
    app.add_route(path, node_proxy, methods=["GET"], include_in_schema=False)


# --- control -------------------------------------------------------------------------------------


async def _chain(chain: str, request: Request) -> ChainRuntime:
    twin = _twin(request)
    runtime = twin.chain(chain)
    if runtime is None:
        raise kube.KubeError(404, "NotFound", f"unknown chain {chain!r}; chains: {', '.join(twin.chains)}")
    return runtime


Chain = Annotated[ChainRuntime, Depends(_chain)]


def _control_routes(app: FastAPI, twin: Twin) -> None:
    @app.get("/control/health")
    async def health() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/control/chains")
    async def chains() -> list[str]:
        return list(twin.chains)

    @app.get("/control/chains/{chain}")
    async def chain_state(runtime: Chain) -> dict[str, object]:
        return sim.snapshot(runtime.state)

    @app.get("/control/incidents")
    async def kinds() -> dict[str, str]:
        return {kind: description for kind, (description, _defaults) in incidents.KINDS.items()}

    @app.post("/control/chains/{chain}/incidents", status_code=201)
    async def inject(runtime: Chain, body: IncidentRequest) -> dict[str, object]:
        incident = runtime.inject(body.kind, body.params)
        return {
            "chain": runtime.chain,
            "kind": incident.kind,
            "params": dict(incident.params),
            "sinceTick": incident.since_tick,
        }

    @app.delete("/control/chains/{chain}/incidents")
    async def clear_all(runtime: Chain) -> dict[str, object]:
        return {"chain": runtime.chain, "cleared": list(runtime.clear())}

    @app.delete("/control/chains/{chain}/incidents/{kind}")
    async def clear_one(runtime: Chain, kind: str) -> dict[str, object]:
        return {"chain": runtime.chain, "cleared": list(runtime.clear(kind))}

    @app.post("/control/chains/{chain}/step")
    async def step(runtime: Chain, n: Annotated[int, Query(ge=1, le=MAX_STEP)] = 1) -> dict[str, object]:
        runtime.step(n)
        return sim.snapshot(runtime.state)

    @app.post("/control/kube/faults", status_code=201)
    async def add_kube_fault(fault: KubeFault) -> dict[str, object]:
        twin.faults.kube.append(fault)
        return twin.faults.report()

    @app.get("/control/faults")
    async def faults() -> dict[str, object]:
        return twin.faults.report()

    @app.delete("/control/faults")
    async def clear_faults() -> dict[str, object]:
        twin.faults.kube.clear()
        for chain in list(twin.faults.rpc):
            twin.faults.set_rpc(chain, None)
        return twin.faults.report()

    @app.put("/control/chains/{chain}/rpc-fault")
    async def rpc_fault(runtime: Chain, body: RpcFaultRequest) -> dict[str, object]:
        twin.faults.set_rpc(runtime.chain, body.mode)
        return {"chain": runtime.chain, "mode": body.mode}

    @app.post("/control/chains/{chain}/traffic")
    async def traffic(runtime: Chain, body: TrafficRequest) -> dict[str, object]:
        runtime.set_traffic(body.multiplier)
        return {"chain": runtime.chain, "multiplier": body.multiplier}

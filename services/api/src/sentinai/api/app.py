"""HTTP surface of the api: REST reads, guarded writes, the live stream, the dashboard and /metrics.

GETs only read the read model; the only writes are commands and requests sent to the planner.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sentinai.api.auth import WriteGuard, key_store
from sentinai.api.docs import add_offline_docs
from sentinai.api.keys import KeyStore
from sentinai.api.readmodel import ReadModel
from sentinai.api.reads import read_router
from sentinai.api.settings import ApiSettings
from sentinai.api.writes import Commands, write_router

NatsProbe = Callable[[], Awaitable[bool]]
Clock = Callable[[], datetime]
STATIC = Path(__file__).parent / "static"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def create_app(
    model: ReadModel,
    *,
    settings: ApiSettings,
    nats_connected: NatsProbe,
    commands: Commands,
    clock: Clock = _utcnow,
    lifespan: Any = None,
    keys: KeyStore | None = None,
) -> FastAPI:
    """The api's HTTP app; ``keys`` (default: from ``settings``) authenticate every write."""
    guard = WriteGuard(settings, keys=keys if keys is not None else key_store(settings))
    app = FastAPI(
        title="SentinAI API",
        version="0.2.0",
        lifespan=lifespan,
        description="Read the state of watched OP Stack chains; approve, reject and request actions.",
        docs_url=None,
        redoc_url=None,
    )
    add_offline_docs(app)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        # A route, not a mount: a mount answers /metrics with a redirect to /metrics/.
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app.mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static")
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["content-type", "x-api-key"],
        )

    @app.get("/api/health", tags=["reads"], responses={503: {"description": "NATS is unreachable"}})
    async def health() -> JSONResponse:
        connected = await nats_connected()
        chains = model.health(now=clock(), stale_after_s=settings.stale_after_s)
        unhealthy = [
            c["chainId"]
            for c in chains
            if not c["fresh"] or c["l2Reachable"] is False or c["k8sReachable"] is False
        ]
        status = "down" if not connected else ("degraded" if unhealthy else "ok")
        body = {
            "status": status,
            "nats": {"connected": connected},
            "readOnly": settings.read_only_mode,
            "writesEnabled": guard.enabled(),
            "chains": chains,
            "unhealthyChains": unhealthy,
            "checkedAt": clock().isoformat(),
        }
        return JSONResponse(body, status_code=503 if status == "down" else 200)

    app.include_router(read_router(model, settings=settings, clock=clock))
    app.include_router(
        write_router(model, commands, guard=guard, verdict_timeout_s=settings.verdict_timeout_s)
    )

    @app.get("/asyncapi", tags=["docs"], response_model=None)
    async def asyncapi() -> Response:
        return _static_file("asyncapi.json", media_type="application/json")

    @app.get("/", include_in_schema=False, response_model=None)
    async def dashboard() -> Response:
        return _static_file("index.html", media_type="text/html")

    @app.get("/cost", include_in_schema=False, response_model=None)
    async def cost() -> Response:
        return _static_file("cost.html", media_type="text/html")

    return app


def _static_file(name: str, *, media_type: str) -> Response:
    path = STATIC / name
    if not path.is_file():
        return JSONResponse({"detail": f"{name} is not in this build"}, status_code=503)
    return FileResponse(path, media_type=media_type)

"""HTTP routes of api v0: health, latest metrics per chain, recent anomalies. Reads only."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import JSONResponse
from prometheus_client import make_asgi_app

from sentinai.api.readmodel import ReadModel
from sentinai.api.settings import ApiSettings

NatsProbe = Callable[[], Awaitable[bool]]
Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def create_app(
    model: ReadModel,
    *,
    settings: ApiSettings,
    nats_connected: NatsProbe,
    clock: Clock = _utcnow,
    lifespan: Any = None,
) -> FastAPI:
    app = FastAPI(title="SentinAI API", version="0.1.0", lifespan=lifespan)
    app.mount("/metrics", make_asgi_app())

    def known_chain(chain: str | None) -> str | None:
        if chain is not None and chain not in model.chains:
            raise HTTPException(404, detail=f"unknown chain {chain!r}; known: {sorted(model.chains)}")
        return chain

    @app.get("/api/health")
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
            "chains": chains,
            "unhealthyChains": unhealthy,
            "checkedAt": clock().isoformat(),
        }
        return JSONResponse(body, status_code=503 if status == "down" else 200)

    @app.get("/api/metrics")
    async def metrics(chain: Annotated[str | None, Query(max_length=64)] = None) -> dict[str, Any]:
        wanted = known_chain(chain)
        ids = [wanted] if wanted is not None else sorted(model.chains)
        return {"chains": [model.metrics(chain_id) for chain_id in ids]}

    @app.get("/api/anomalies")
    async def anomalies(
        chain: Annotated[str | None, Query(max_length=64)] = None,
        active: bool = False,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        items = model.anomalies(chain=known_chain(chain), active_only=active, limit=limit)
        return {"anomalies": items, "count": len(items)}

    return app

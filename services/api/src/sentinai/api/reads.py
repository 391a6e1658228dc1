"""The read routes of the api: views of the read model and the live stream. No side effects."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response, StreamingResponse

from sentinai.api.insights import prediction_view, rca_view
from sentinai.api.readmodel import ReadModel
from sentinai.api.settings import ApiSettings
from sentinai.api.writes import Problem

HEARTBEAT_S = 15.0
ChainParam = Annotated[str | None, Query(max_length=64, description="Only this chain")]
Limit = Annotated[int, Query(ge=1, le=1000)]
AUDIT_COLUMNS = (
    "occurredAt",
    "chainId",
    "kind",
    "actor",
    "actionId",
    "summary",
    "outcome",
    "reasoning",
    "eventId",
)
# A spreadsheet reads a cell starting with one of these as a formula (or its start): `=cmd|calc`
# in an actor or a summary would run when the export is opened. OWASP: prefix such cells with '.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def read_router(model: ReadModel, *, settings: ApiSettings, clock: Callable[[], datetime]) -> APIRouter:
    router = APIRouter(
        tags=["reads"], responses={404: {"model": Problem, "description": "Unknown chain or id"}}
    )

    def known_chain(chain: str | None) -> str | None:
        if chain is not None and chain not in model.chains:
            raise HTTPException(404, detail=f"unknown chain {chain!r}; known: {sorted(model.chains)}")
        return chain

    def chain_ids(chain: str | None) -> list[str]:
        wanted = known_chain(chain)
        return [wanted] if wanted is not None else sorted(model.chains)

    @router.get("/api/chains")
    async def chains() -> dict[str, Any]:
        return {"chains": model.chain_summaries(now=clock(), stale_after_s=settings.stale_after_s)}

    @router.get("/api/metrics")
    async def metrics(chain: ChainParam = None) -> dict[str, Any]:
        return {"chains": [model.metrics(chain_id) for chain_id in chain_ids(chain)]}

    @router.get("/api/metrics/history")
    async def metrics_history(
        chain: Annotated[str, Query(max_length=64)],
        minutes: Annotated[float, Query(gt=0, le=24 * 60)] = 30,
    ) -> dict[str, Any]:
        chain_id = chain_ids(chain)[0]
        points = model.history(chain_id, since=clock() - timedelta(minutes=minutes))
        return {"chainId": chain_id, "points": points}

    @router.get("/api/anomalies")
    async def anomalies(chain: ChainParam = None, active: bool = False, limit: Limit = 100) -> dict[str, Any]:
        items = model.anomalies(chain=known_chain(chain), active_only=active, limit=limit)
        return {"anomalies": items, "count": len(items)}

    @router.get("/api/rca")
    async def rcas(chain: ChainParam = None, limit: Limit = 20) -> dict[str, Any]:
        items = [rca_view(r) for r in model.insights.rcas(chain=known_chain(chain), limit=limit)]
        return {"latest": items[0] if items else None, "items": items}

    @router.get("/api/rca/{rca_id}")
    async def rca(rca_id: str) -> dict[str, Any]:
        found = model.insights.rca(rca_id)
        if found is None:
            raise HTTPException(404, detail=f"no RCA with event or episode id {rca_id!r}")
        return rca_view(found)

    @router.get("/api/prediction")
    async def prediction(chain: ChainParam = None, limit: Limit = 60) -> dict[str, Any]:
        out = []
        for chain_id in chain_ids(chain):
            history = [prediction_view(p) for p in model.insights.predictions(chain_id, limit=limit)]
            out.append({"chainId": chain_id, "latest": history[-1] if history else None, "history": history})
        return {"chains": out}

    @router.get("/api/actions")
    async def actions(
        chain: ChainParam = None,
        status: Literal["pending", "history", "all"] = "all",
        limit: Limit = 100,
    ) -> dict[str, Any]:
        records = model.actions.records(chain=known_chain(chain), status=status)[:limit]
        return {"actions": [r.view() for r in records], "pending": model.actions.pending_count(chain)}

    @router.get("/api/actions/{action_id}")
    async def action(action_id: str) -> dict[str, Any]:
        record = model.actions.get(action_id)
        if record is None:
            raise HTTPException(404, detail=f"no proposal with id {action_id!r}")
        return record.view()

    @router.get("/api/agent-decisions")
    async def agent_decisions(chain: ChainParam = None, limit: Limit = 50) -> dict[str, Any]:
        items = model.decisions(chain=known_chain(chain), limit=limit)
        return {"decisions": items, "count": len(items), "exportedAt": clock().isoformat()}

    @router.get(
        "/api/audit",
        response_model=None,
        responses={
            200: {
                "description": "A page of audit records, newest first, as JSON or CSV",
                "content": {"application/json": {}, "text/csv": {"schema": {"type": "string"}}},
            }
        },
    )
    async def audit(
        chain: ChainParam = None,
        limit: Limit = 100,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
        format: Literal["json", "csv"] = "json",
    ) -> dict[str, Any] | Response:
        page, total = model.actions.audit_page(chain=known_chain(chain), offset=offset, limit=limit)
        items = [r.model_dump(mode="json", by_alias=True) for r in page]
        if format == "csv":
            return _csv(items)
        return {"items": items, "total": total, "offset": offset, "limit": limit}

    @router.get("/api/stream", response_class=StreamingResponse)
    async def stream(request: Request, chain: ChainParam = None) -> StreamingResponse:
        wanted = known_chain(chain)

        async def events() -> AsyncIterator[str]:
            async with model.hub.subscribe(chain_id=wanted) as sub:
                yield "retry: 3000\n: connected\n\n"
                while not await request.is_disconnected():
                    try:
                        update = await asyncio.wait_for(sub.queue.get(), timeout=HEARTBEAT_S)
                    except TimeoutError:
                        yield ": heartbeat\n\n"
                        continue
                    yield update.sse()

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )

    return router


def _csv(items: list[dict[str, Any]]) -> Response:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=AUDIT_COLUMNS)
    writer.writeheader()
    writer.writerows({column: _inert_cell(item.get(column)) for column in AUDIT_COLUMNS} for item in items)
    return Response(
        out.getvalue(),
        media_type="text/csv",
        headers={"content-disposition": 'attachment; filename="sentinai-audit.csv"'},
    )


def _inert_cell(value: Any) -> str:
    """The cell's text, made one a spreadsheet shows as text and never evaluates."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text

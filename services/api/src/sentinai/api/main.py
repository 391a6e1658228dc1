"""Composition root of the api: settings → read model → broker → FastAPI app (+ MCP) → uvicorn."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from starlette.routing import Route

from sentinai.api import bus, notify
from sentinai.api.app import create_app
from sentinai.api.auth import key_store
from sentinai.api.commands import BusCommands
from sentinai.api.mcp import RestBackend, build_mcp_server, require_api_key, streamable_http_app
from sentinai.api.readmodel import ReadModel
from sentinai.api.settings import ApiSettings
from sentinai.common import jsonlog, pull, telemetry
from sentinai.common.bus import DeadLetters, start_broker
from sentinai.common.serve import run_asgi


def build_app(settings: ApiSettings) -> FastAPI:
    model = ReadModel(keep_anomalies=settings.recent_anomalies, history_points=settings.history_points)
    wiring = bus.build(settings, model)
    broker = wiring.broker
    pumps = pull.Pumps(bus.SERVICE)
    notifications = None
    if settings.notify_file is not None:
        # A bad file stops the start with the reason: silently sending nothing is worse at 3 a.m.
        config = notify.load_config(settings.notify_file)
        notifications = notify.subscribe(
            broker, config=config, dead=DeadLetters(broker, service=notify.SERVICE)
        )
    keys = key_store(settings)
    # A bad key file stops the start with the reason, like a bad notify file.
    keys.load()
    lag = telemetry.ConsumerLag(broker, service=bus.SERVICE)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await start_broker(broker, replicas=settings.stream_replicas)
        js = broker.config.connection_state.stream
        await js.add_consumer(wiring.samples.stream, config=wiring.consumer)
        pumps.start(js, [wiring.samples])
        await lag.start()
        try:
            async with mcp_lifespan():
                yield
        finally:
            await lag.stop()
            await pumps.stop()
            # This replica's samples consumer goes with it (the server would drop it later anyway).
            with contextlib.suppress(Exception):
                await js.delete_consumer(wiring.samples.stream, wiring.samples.durable)
            await backend.aclose()
            await broker.stop()
            if notifications is not None:
                await notifications.aclose()

    async def nats_connected() -> bool:
        return await broker.ping(timeout=1.0)

    app = create_app(
        model,
        settings=settings,
        nats_connected=nats_connected,
        commands=BusCommands(broker, timeout_s=settings.verdict_timeout_s),
        lifespan=lifespan,
        keys=keys,
    )
    # MCP tools call this same app's REST routes in-process with the MCP caller's own key, so agents
    # get exactly the REST rules of that key's principal (role, policy through the planner, read-only
    # mode, rate limit) and nothing else. The backend itself holds no key.
    backend = RestBackend.connect("http://api", api_key=None, transport=httpx.ASGITransport(app=app))
    mcp_app, mcp_lifespan = streamable_http_app(build_mcp_server(backend))
    # A Route, not a mount: a mount would redirect /mcp to /mcp/ before the key is checked.
    app.router.routes.append(Route("/mcp", endpoint=require_api_key(mcp_app, keys)))
    return app


def main() -> None:
    settings = ApiSettings()
    jsonlog.setup("api", settings.log_level)
    run_asgi(build_app(settings), host=settings.host, port=settings.port)

"""Composition root of the api: settings → read model → broker → FastAPI app → uvicorn."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from sentinai.api import bus
from sentinai.api.app import create_app
from sentinai.api.readmodel import ReadModel
from sentinai.api.settings import ApiSettings
from sentinai.common import jsonlog
from sentinai.common.bus import start_broker
from sentinai.common.serve import run_asgi


def build_app(settings: ApiSettings) -> FastAPI:
    model = ReadModel(keep_anomalies=settings.recent_anomalies, history_points=settings.history_points)
    broker = bus.build(settings, model)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await start_broker(broker)
        try:
            yield
        finally:
            await broker.stop()

    async def nats_connected() -> bool:
        return await broker.ping(timeout=1.0)

    return create_app(
        model,
        settings=settings,
        nats_connected=nats_connected,
        commands=bus.BusCommands(broker),
        lifespan=lifespan,
    )


def main() -> None:
    settings = ApiSettings()
    jsonlog.setup("api", settings.log_level)
    run_asgi(build_app(settings), host=settings.host, port=settings.port)

"""Composition root of the api: settings → read model → broker → FastAPI app → uvicorn."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from sentinai.api import bus, notify
from sentinai.api.app import create_app
from sentinai.api.readmodel import ReadModel
from sentinai.api.settings import ApiSettings
from sentinai.common import jsonlog
from sentinai.common.bus import DeadLetters, start_broker
from sentinai.common.serve import run_asgi


def build_app(settings: ApiSettings) -> FastAPI:
    model = ReadModel(keep_anomalies=settings.recent_anomalies, history_points=settings.history_points)
    broker = bus.build(settings, model)
    notifications = None
    if settings.notify_file is not None:
        # A bad file stops the start with the reason: silently sending nothing is worse at 3 a.m.
        config = notify.load_config(settings.notify_file)
        notifications = notify.subscribe(
            broker, config=config, dead=DeadLetters(broker, service=notify.SERVICE)
        )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await start_broker(broker)
        try:
            yield
        finally:
            await broker.stop()
            if notifications is not None:
                await notifications.aclose()

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

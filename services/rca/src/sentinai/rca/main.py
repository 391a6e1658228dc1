"""Composition root of rca: settings → deps → broker → ASGI app (health, metrics) → uvicorn."""

from __future__ import annotations

import asyncio
import logging

from faststream.asgi import AsgiFastStream

from sentinai.common import jsonlog, pull, telemetry
from sentinai.common.events import utcnow
from sentinai.common.serve import broker_app, run_asgi
from sentinai.common.streams import TELEMETRY, ensure_streams
from sentinai.rca import bus, llm, service
from sentinai.rca.settings import RcaSettings


def build_app(settings: RcaSettings) -> AsgiFastStream:
    deps = service.deps_from(settings)
    wiring = bus.build(settings, deps, now=utcnow())
    broker = wiring.broker
    pumps = pull.Pumps(bus.SERVICE)
    lag = telemetry.ConsumerLag(
        broker,
        service=bus.SERVICE,
        also=[telemetry.Durable(loop.stream, loop.durable) for loop in wiring.loops],
    )

    async def prepare() -> None:
        # Streams and the pull loops' durables must exist with our config before anything binds to
        # them; the app then starts the faststream subscribers.
        await broker.connect()
        js = broker.config.connection_state.stream
        await ensure_streams(js, replicas=settings.stream_replicas)
        for config in wiring.consumers:
            await pull.ensure_consumer(js, TELEMETRY.name, config)
        if deps.llm is not None:
            # Import litellm (seconds) before the first diagnosis, so none spends its deadline on it.
            await asyncio.wrap_future(llm.preload())

    async def start_pumps() -> None:
        pumps.start(broker.config.connection_state.stream, wiring.loops)

    return broker_app(
        broker,
        running=pumps.running,
        on_startup=[prepare],
        after_startup=[start_pumps, lag.start],
        # Before the broker closes its connection, so the batches in hand are still acknowledged.
        on_shutdown=[pumps.stop, lag.stop],
    )


def main() -> None:
    settings = RcaSettings()
    jsonlog.setup("rca", settings.log_level)
    # litellm logs every request at info level; our own line per RCA says what matters.
    logging.getLogger("LiteLLM").setLevel(max(logging.WARNING, logging.getLogger().level))
    # uvicorn turns SIGTERM into a graceful shutdown: in-flight handlers finish, then the broker drains.
    run_asgi(build_app(settings), host=settings.http_host, port=settings.http_port)

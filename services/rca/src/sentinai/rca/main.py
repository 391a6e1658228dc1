"""Composition root of rca: settings → deps → broker → ASGI app (health, metrics) → uvicorn."""

from __future__ import annotations

import logging

from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.asgi.types import Scope
from prometheus_client import make_asgi_app

from sentinai.common import jsonlog, telemetry
from sentinai.common.events import utcnow
from sentinai.common.serve import run_asgi
from sentinai.common.streams import ensure_streams
from sentinai.rca import bus
from sentinai.rca.settings import RcaSettings


def build_app(settings: RcaSettings) -> AsgiFastStream:
    broker = bus.build(settings, bus.deps_from(settings), now=utcnow())
    lag = telemetry.ConsumerLag(broker, service=bus.SERVICE)

    async def prepare() -> None:
        # Streams must exist with our config before the durables bind to them; the app then starts them.
        await broker.connect()
        await ensure_streams(broker.config.connection_state.stream, replicas=settings.stream_replicas)

    @get(include_in_schema=False)
    async def healthz(scope: Scope) -> AsgiResponse:
        healthy = await broker.ping(timeout=1.0)
        return AsgiResponse(b"ok" if healthy else b"unhealthy", 200 if healthy else 503)

    return AsgiFastStream(
        broker,
        asgi_routes=[("/healthz", healthz), ("/metrics", make_asgi_app())],
        on_startup=[prepare],
        after_startup=[lag.start],
        on_shutdown=[lag.stop],
    )


def main() -> None:
    settings = RcaSettings()
    jsonlog.setup("rca", settings.log_level)
    # litellm logs every request at info level; our own line per RCA says what matters.
    logging.getLogger("LiteLLM").setLevel(max(logging.WARNING, logging.getLogger().level))
    # uvicorn turns SIGTERM into a graceful shutdown: in-flight handlers finish, then the broker drains.
    run_asgi(build_app(settings), host=settings.http_host, port=settings.http_port)

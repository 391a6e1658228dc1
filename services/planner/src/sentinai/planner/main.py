"""Composition root of the planner: settings → policy → wiring → ASGI app (health, metrics) → uvicorn."""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from sentinai.common import jsonlog, telemetry
from sentinai.common.policy import load_policy
from sentinai.common.serve import broker_app, run_asgi
from sentinai.common.state import open_state_store
from sentinai.common.streams import ensure_streams
from sentinai.common.ticker import Ticker
from sentinai.planner import bus, service
from sentinai.planner.settings import PlannerSettings


def build_app(settings: PlannerSettings) -> AsgiFastStream:
    # A bad policy file stops the planner before it connects: it must never run on a guess.
    deps = service.Deps(policy=load_policy(settings.policy_file))
    broker, planner = bus.build(settings, deps)
    timer = Ticker("expiry", settings.expiry_check_s, planner.expire_due)
    lag = telemetry.ConsumerLag(broker, service=bus.SERVICE)

    async def prepare() -> None:
        # Streams and the store must exist before the first message reaches a handler.
        await broker.connect()
        await ensure_streams(broker.config.connection_state.stream, replicas=settings.stream_replicas)
        deps.store = await open_state_store(
            nc=broker.connection,
            redis_url=settings.redis_url,
            bucket=settings.kv_bucket,
            replicas=settings.stream_replicas,
        )

    async def close_store() -> None:
        if deps.store is not None:
            await deps.store.close()

    return broker_app(
        broker,
        running=timer.running,
        on_startup=[prepare],
        after_startup=[timer.start, lag.start],
        on_shutdown=[timer.stop, lag.stop],
        after_shutdown=[close_store],
    )


def main() -> None:
    settings = PlannerSettings()
    jsonlog.setup("planner", settings.log_level)
    # uvicorn turns SIGTERM into a graceful shutdown: handlers finish, the timer stops, then disconnect.
    run_asgi(build_app(settings), host=settings.http_host, port=settings.http_port)

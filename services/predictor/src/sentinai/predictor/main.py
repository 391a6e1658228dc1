"""Composition root of the predictor: settings → state → wiring → ASGI app (health, metrics) → uvicorn."""

from __future__ import annotations

from datetime import timedelta

from faststream.asgi import AsgiFastStream

from sentinai.common import jsonlog, pull, telemetry
from sentinai.common.dedup import SeenIds
from sentinai.common.events import utcnow
from sentinai.common.serve import broker_app, run_asgi
from sentinai.common.streams import ensure_streams
from sentinai.common.ticker import Ticker
from sentinai.predictor import bus, logic, service
from sentinai.predictor.settings import PredictorSettings
from sentinai.predictor.windows import PredictorState


def build_app(settings: PredictorSettings) -> AsgiFastStream:
    deps = service.Deps(
        state=PredictorState(
            max_points=settings.history_points, span_s=settings.history_s, seen=SeenIds(settings.seen_ids)
        ),
        forecaster=logic.StatForecaster(block_time_s=settings.block_time_s, min_points=settings.min_points),
    )
    wiring = bus.build(settings, deps, start=utcnow() - timedelta(seconds=settings.history_s))
    broker = wiring.broker
    # The first round waits one interval: the replayed history arrives in the meantime.
    ticker = Ticker(
        "prediction",
        settings.interval_s,
        lambda: wiring.tick(utcnow()),
        first_after_s=settings.interval_s,
        on_failure=bus.TICK_FAILURES.inc,
    )
    pumps = pull.Pumps(bus.SERVICE)
    lag = telemetry.ConsumerLag(
        broker, service=bus.SERVICE, also=[telemetry.Durable(wiring.loop.stream, wiring.loop.durable)]
    )

    async def prepare() -> None:
        # Before the loop starts: the durable must be created afresh at the replay start.
        await broker.connect()
        js = broker.config.connection_state.stream
        await ensure_streams(js, replicas=settings.stream_replicas)
        await bus.reset_durable(js, wiring)

    async def start_loops() -> None:
        pumps.start(broker.config.connection_state.stream, [wiring.loop])
        await ticker.start()

    return broker_app(
        broker,
        running=lambda: ticker.running() and pumps.running(),
        on_startup=[prepare],
        after_startup=[start_loops, lag.start],
        # Before the broker closes: a round in flight finishes its publish, a batch in hand its acks.
        on_shutdown=[ticker.stop, pumps.stop, lag.stop],
    )


def main() -> None:
    settings = PredictorSettings()
    jsonlog.setup("predictor", settings.log_level)
    # uvicorn turns SIGTERM into a graceful shutdown: the round in flight finishes, then disconnect.
    run_asgi(build_app(settings), host=settings.http_host, port=settings.http_port)

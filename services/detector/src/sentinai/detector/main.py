"""Composition root of the detector: settings → state → wiring → ASGI app (health, metrics) → uvicorn."""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from sentinai.common import jsonlog, pull, telemetry
from sentinai.common.events import utcnow
from sentinai.common.serve import broker_app, run_asgi
from sentinai.common.streams import TELEMETRY, ensure_streams
from sentinai.detector import bus, consumers, service
from sentinai.detector.settings import DetectorSettings


def build_app(settings: DetectorSettings) -> AsgiFastStream:
    deps = service.deps_from(settings)
    wiring = bus.build(settings, deps)
    broker = wiring.broker
    pumps = pull.Pumps(bus.SERVICE, batch_size=settings.batch_size, timeout_s=settings.batch_timeout_s)
    lag = telemetry.ConsumerLag(
        broker,
        service=bus.SERVICE,
        durables=[
            telemetry.Durable(TELEMETRY.name, name)
            for name in (consumers.metrics_durable(settings), consumers.logs_durable(settings))
        ],
    )

    async def prepare() -> None:
        # Streams and the replaying metrics consumer must exist before the loops bind to them.
        await broker.connect()
        js = broker.config.connection_state.stream
        # The detectors own the partition count: they set (or remove) the TELEMETRY transform.
        await ensure_streams(js, partitions=settings.partitions, replicas=settings.stream_replicas)
        deps.replay.until_seq = await consumers.prepare_consumers(js, settings, now=utcnow())

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
    settings = DetectorSettings()
    jsonlog.setup("detector", settings.log_level)
    # uvicorn turns SIGTERM into a graceful shutdown: the loops finish their batch, then disconnect.
    run_asgi(build_app(settings), host=settings.http_host, port=settings.http_port)

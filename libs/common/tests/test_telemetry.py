"""The metrics every service exports: handler and publish timings in memory, consumer lag on JetStream."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from faststream.nats import NatsBroker, NatsMessage, PullSub, TestNatsBroker
from nats.js.api import AckPolicy, ConsumerConfig
from prometheus_client import REGISTRY

from sentinai.common import streams, subjects, telemetry
from sentinai.common.bus import build_broker, publish_event, start_broker
from sentinai.common.events import MetricSample
from sentinai.common.net import free_port
from sentinai.common.serve import health_and_metrics, serving
from sentinai.common.settings import ServiceSettings
from sentinai.devkit.natsserver import EmbeddedNats


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def sample(chain: str = "c1") -> MetricSample:
    return MetricSample(chain_id=chain, component="op-geth", source="rpc", metrics={"blockHeight": 1.0})


async def test_handler_calls_are_timed_by_kind_and_a_raising_handler_is_counted_as_failed() -> None:
    broker = build_broker(ServiceSettings())
    telemetry.instrument(broker, service="t-handlers")

    @broker.subscriber(subjects.METRICS_RAW_ALL, stream=streams.TELEMETRY.ref())
    async def handler(msg: NatsMessage) -> None:
        if b"boom" in msg.body:
            raise RuntimeError("transient")

    labels = {"service": "t-handlers", "kind": "metric_sample"}
    async with TestNatsBroker(broker):
        await broker.publish(sample().to_json(), subjects.metrics_raw("c1", "op-geth"))
        await broker.publish(sample().to_json(), subjects.metrics_raw("c2", "op-geth"))
        with pytest.raises(RuntimeError):
            await broker.publish(b'{"boom": 1}', subjects.metrics_raw("c1", "op-geth"))

    assert value("sentinai_handler_seconds_count", **labels) == 3
    assert value("sentinai_handler_errors_total", **labels) == 1


async def test_publishes_are_counted_and_timed_by_kind() -> None:
    broker = build_broker(ServiceSettings())
    telemetry.instrument(broker, service="t-publish")
    async with TestNatsBroker(broker):
        await publish_event(broker, subjects.metrics_raw("c1", "op-geth"), sample(), stream=streams.TELEMETRY)
        await publish_event(broker, subjects.metrics_raw("c1", "op-node"), sample(), stream=streams.TELEMETRY)
        await broker.publish(b"{}", "somewhere.else")
    assert value("sentinai_messages_published_total", service="t-publish", kind="metric_sample") == 2
    assert value("sentinai_publish_seconds_count", service="t-publish", kind="metric_sample") == 2
    assert value("sentinai_messages_published_total", service="t-publish", kind="other") == 1


async def test_a_pull_loop_handler_is_timed_by_the_decorator() -> None:
    @telemetry.timed("t-timed", "log_batch")
    async def handle(batch: list[str]) -> int:
        if not batch:
            raise ValueError("empty")
        return len(batch)

    assert await handle(["a", "b"]) == 2
    with pytest.raises(ValueError, match="empty"):
        await handle([])
    assert value("sentinai_handler_seconds_count", service="t-timed", kind="log_batch") == 2
    assert value("sentinai_handler_errors_total", service="t-timed", kind="log_batch") == 1


def test_the_durables_of_a_broker_are_its_jetstream_subscribers_by_durable_or_queue_name() -> None:
    broker = build_broker(ServiceSettings())
    shared = ConsumerConfig()  # faststream writes the first durable's name into it
    for subject, durable in ((subjects.METRICS_RAW_ALL, "svc-metrics"), (subjects.LOGS_RAW_ALL, "svc-logs")):

        @broker.subscriber(
            subject, stream=streams.TELEMETRY.ref(), durable=durable, config=shared, pull_sub=PullSub()
        )
        async def telemetry_in(msg: NatsMessage) -> None: ...

    @broker.subscriber(
        subjects.AUDIT_ALL, stream=streams.AUDIT.ref(), durable="svc-audit", pull_sub=PullSub()
    )
    async def pull(msg: NatsMessage) -> None: ...

    @broker.subscriber(subjects.ACTION_APPROVED_ALL, stream=streams.ACTIONS.ref(), queue="workers")
    async def queued(msg: NatsMessage) -> None: ...

    @broker.subscriber("core.subject")
    async def core(msg: NatsMessage) -> None: ...

    assert telemetry.durables_of(broker) == (
        telemetry.Durable("ACTIONS", "workers"),
        telemetry.Durable("AUDIT", "svc-audit"),
        telemetry.Durable("TELEMETRY", "svc-logs"),
        telemetry.Durable("TELEMETRY", "svc-metrics"),
    )


@contextlib.asynccontextmanager
async def connected(url: str) -> AsyncIterator[NatsBroker]:
    broker = build_broker(ServiceSettings.model_validate({"SENTINAI_NATS_URL": url}))
    await start_broker(broker)
    try:
        yield broker
    finally:
        await broker.stop()


def lag(consumer: str, *, service: str = "t-lag") -> tuple[float | None, float | None]:
    labels = {"service": service, "stream": "TELEMETRY", "consumer": consumer}
    return (
        REGISTRY.get_sample_value("sentinai_consumer_pending", labels),
        REGISTRY.get_sample_value("sentinai_consumer_ack_pending", labels),
    )


@pytest.mark.integration
async def test_consumer_lag_follows_the_durable_and_drops_the_series_when_it_is_gone(
    nats_server: EmbeddedNats,
) -> None:
    async with connected(nats_server.url) as broker:
        js = broker.config.connection_state.stream
        config = ConsumerConfig(
            durable_name="t-lag-metrics",
            filter_subject=subjects.METRICS_RAW_ALL,
            ack_policy=AckPolicy.EXPLICIT,
        )
        await js.add_consumer(streams.TELEMETRY.name, config=config)
        for chain in ("c1", "c2", "c3"):
            await publish_event(
                broker, subjects.metrics_raw(chain, "op-geth"), sample(chain), stream=streams.TELEMETRY
            )
        watch = telemetry.ConsumerLag(
            broker, service="t-lag", durables=[telemetry.Durable(streams.TELEMETRY.name, "t-lag-metrics")]
        )

        await watch.refresh()
        assert lag("t-lag-metrics") == (3, 0)

        sub = await js.pull_subscribe_bind(durable="t-lag-metrics", stream=streams.TELEMETRY.name)
        taken = await sub.fetch(2, timeout=2.0)
        await watch.refresh()
        assert lag("t-lag-metrics") == (1, 2)  # delivered, not yet acknowledged

        for msg in taken:
            await msg.ack()
        await sub.unsubscribe()
        await js.delete_consumer(streams.TELEMETRY.name, "t-lag-metrics")
        await watch.refresh()
        assert lag("t-lag-metrics") == (None, None)  # no value rather than a stale one


@pytest.mark.integration
async def test_the_lag_task_refreshes_on_its_own_until_stopped(nats_server: EmbeddedNats) -> None:
    async with connected(nats_server.url) as broker:
        await broker.config.connection_state.stream.add_consumer(
            streams.TELEMETRY.name,
            config=ConsumerConfig(durable_name="t-loop", ack_policy=AckPolicy.EXPLICIT),
        )
        watch = telemetry.ConsumerLag(
            broker, service="t-loop", durables=[telemetry.Durable("TELEMETRY", "t-loop")], interval_s=0.05
        )
        await watch.start()
        try:
            await publish_event(
                broker, subjects.metrics_raw("c1", "op-geth"), sample(), stream=streams.TELEMETRY
            )
            deadline = time.monotonic() + 5.0
            while lag("t-loop", service="t-loop") != (1, 0):
                assert time.monotonic() < deadline, lag("t-loop", service="t-loop")
                await asyncio.sleep(0.02)
        finally:
            await watch.stop()
        assert not watch._ticker.running()


async def test_health_and_metrics_answer_over_http_while_the_service_runs() -> None:
    healthy = False

    async def probe() -> bool:
        return healthy

    port = free_port()
    async with (
        serving(health_and_metrics(probe), host="127.0.0.1", port=port),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=2.0) as client,
    ):
        assert (await client.get("/healthz")).status_code == 503
        healthy = True
        assert (await client.get("/healthz")).text == "ok"
        assert "sentinai_consumer_pending" in (await client.get("/metrics")).text
        assert (await client.get("/nothing")).status_code == 404
    async with httpx.AsyncClient(timeout=1.0) as client:
        with pytest.raises(httpx.ConnectError):  # stopped with the service
            await client.get(f"http://127.0.0.1:{port}/healthz")


async def test_a_port_in_use_fails_at_start_not_later() -> None:
    port = free_port()
    async with serving(health_and_metrics(lambda: asyncio.sleep(0, True)), host="127.0.0.1", port=port):
        with pytest.raises(OSError):
            async with serving(
                health_and_metrics(lambda: asyncio.sleep(0, True)), host="127.0.0.1", port=port
            ):
                pass

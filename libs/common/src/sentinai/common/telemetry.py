"""Prometheus metrics every service exports: handler and publish timings, handler failures, consumer lag.

Messages handled and dead-lettered are counted where that is decided (``bus.MESSAGES_HANDLED`` and
``bus.DEAD_LETTERS``); this module adds what no handler sees itself: how long handling and
publishing take, which handler calls raised (the message is redelivered), and how far each durable
consumer is behind its stream. Every series carries the service name, so one dashboard covers all.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from faststream import BaseMiddleware
from faststream.message import StreamMessage
from faststream.nats import NatsBroker
from faststream.nats.subscriber.usecases.stream_basic import StreamSubscriber
from faststream.response import PublishCommand
from nats.errors import Error as NatsError
from prometheus_client import Counter, Gauge, Histogram

from sentinai.common.payloads import kind_of
from sentinai.common.ticker import Ticker

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

HANDLER_SECONDS = Histogram(
    "sentinai_handler_seconds", "Time a handler took for one message or batch", ["service", "kind"]
)
HANDLER_ERRORS = Counter(
    "sentinai_handler_errors_total",
    "Handler calls that raised; the message is redelivered",
    ["service", "kind"],
)
PUBLISHED = Counter("sentinai_messages_published_total", "Messages published", ["service", "kind"])
PUBLISH_ERRORS = Counter(
    "sentinai_publish_errors_total",
    "Publishes that failed or were not acknowledged in time",
    ["service", "kind"],
)
PUBLISH_SECONDS = Histogram(
    "sentinai_publish_seconds", "Time from publish to JetStream's acknowledgement", ["service", "kind"]
)
_CONSUMER = ["service", "stream", "consumer"]
CONSUMER_PENDING = Gauge(
    "sentinai_consumer_pending", "Messages in the stream not yet delivered to the durable consumer", _CONSUMER
)
CONSUMER_ACK_PENDING = Gauge(
    "sentinai_consumer_ack_pending",
    "Messages delivered to the durable consumer, not yet acknowledged",
    _CONSUMER,
)


@contextlib.contextmanager
def handling(service: str, kind: str) -> Iterator[None]:
    """Time the block as one handler call; count it as failed if it raises."""
    started = time.perf_counter()
    try:
        yield
    except Exception:
        HANDLER_ERRORS.labels(service, kind).inc()
        raise
    finally:
        HANDLER_SECONDS.labels(service, kind).observe(time.perf_counter() - started)


@contextlib.contextmanager
def publishing(service: str, subject: str) -> Iterator[None]:
    """Time and count the block as one publish to ``subject``; count it as failed if it raises."""
    started = time.perf_counter()
    try:
        yield
    except Exception:
        count_publish(service, subject, seconds=time.perf_counter() - started, failed=True)
        raise
    count_publish(service, subject, seconds=time.perf_counter() - started, failed=False)


def count_publish(service: str, subject: str, *, seconds: float, failed: bool) -> None:
    """Count one publish to ``subject`` that took ``seconds`` to be acknowledged, or failed."""
    labels = (service, kind_of(subject))
    if failed:
        PUBLISH_ERRORS.labels(*labels).inc()
        return
    PUBLISH_SECONDS.labels(*labels).observe(seconds)
    PUBLISHED.labels(*labels).inc()


def timed(service: str, kind: str) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """``handling`` as a decorator, for handlers that faststream does not call (pull loops)."""

    def decorate(handler: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(handler)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            with handling(service, kind):
                return await handler(*args, **kwargs)

        return wrapper

    return decorate


class _Measured(BaseMiddleware[PublishCommand, Any]):
    """Per message (faststream makes one per delivery and one per publish)."""

    def __init__(self, msg: Any, /, *, context: Any, service: str) -> None:
        super().__init__(msg, context=context)
        self.service = service

    async def consume_scope(self, call_next: Callable[[Any], Awaitable[Any]], msg: StreamMessage[Any]) -> Any:
        subject = getattr(msg.raw_message, "subject", "")
        with handling(self.service, kind_of(subject)):
            return await call_next(msg)

    async def publish_scope(
        self, call_next: Callable[[PublishCommand], Awaitable[Any]], cmd: PublishCommand
    ) -> Any:
        with publishing(self.service, cmd.destination):
            return await call_next(cmd)


@dataclass(frozen=True, slots=True)
class _MiddlewareFactory:
    service: str

    def __call__(self, msg: Any, /, *, context: Any) -> _Measured:
        return _Measured(msg, context=context, service=self.service)


def instrument(broker: NatsBroker, *, service: str) -> None:
    """Time and count every handler call and every publish that goes through ``broker``."""
    broker.add_middleware(_MiddlewareFactory(service))


@dataclass(frozen=True, slots=True)
class Durable:
    stream: str
    name: str


def durables_of(broker: NatsBroker) -> tuple[Durable, ...]:
    """The durable JetStream consumers behind ``broker``'s subscribers (a queue group names its durable).

    The name comes from the subscription options, not the consumer config: faststream writes the
    first durable name into a config object that several subscribers may share.
    """
    found = {
        Durable(sub.stream.name, str(name))
        for sub in broker.subscribers
        if isinstance(sub, StreamSubscriber) and (name := sub.extra_options.get("durable") or sub.queue)
    }
    return tuple(sorted(found, key=lambda d: (d.stream, d.name)))


class ConsumerLag:
    """Refreshes ``sentinai_consumer_pending`` and ``…_ack_pending`` of one service's durables.

    A durable that cannot be read (not created yet, NATS away) loses its series until it can be
    read again: a frozen last value would claim a lag nobody measured.
    """

    def __init__(
        self,
        broker: NatsBroker,
        *,
        service: str,
        durables: Sequence[Durable] | None = None,
        also: Sequence[Durable] = (),
        interval_s: float = 5.0,
        timeout_s: float = 2.0,
    ) -> None:
        self.broker = broker
        self.service = service
        self.durables = tuple(durables) if durables is not None else None
        # Durables no faststream subscriber owns (pull loops), watched besides the broker's own.
        self.also = tuple(also)
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._failing: set[Durable] = set()
        self._ticker = Ticker(f"consumer-lag-{service}", interval_s, self.refresh)

    async def start(self) -> None:
        if self.durables is None:
            # Read at start, not at construction: the wiring has registered every subscriber by now.
            self.durables = (*durables_of(self.broker), *self.also)
        await self._ticker.start()

    async def stop(self, *, timeout_s: float = 5.0) -> None:
        await self._ticker.stop(timeout_s=timeout_s)

    async def refresh(self) -> None:
        """Read every durable's info once."""
        js = self.broker.config.connection_state.stream
        for durable in self.durables or ():
            labels = (self.service, durable.stream, durable.name)
            try:
                info = await js.consumer_info(durable.stream, durable.name, timeout=self.timeout_s)
            except (NatsError, TimeoutError) as exc:
                for gauge in (CONSUMER_PENDING, CONSUMER_ACK_PENDING):
                    with contextlib.suppress(KeyError):
                        gauge.remove(*labels)
                if durable not in self._failing:
                    self._failing.add(durable)
                    log.warning(
                        "consumer info unavailable",
                        extra={"stream": durable.stream, "consumer": durable.name, "error": repr(exc)},
                    )
                continue
            self._failing.discard(durable)
            CONSUMER_PENDING.labels(*labels).set(info.num_pending or 0)
            CONSUMER_ACK_PENDING.labels(*labels).set(info.num_ack_pending or 0)

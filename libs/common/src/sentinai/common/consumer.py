"""Every JetStream consumer of every service: one idiom and one error policy (kopf's split).

- **Malformed or oversized** input is permanent: dead-lettered with a counter, acknowledged
  (``DeadLetters.decode``).
- **``Permanent``** raised by a handler (a message that can never be handled): dead-lettered with
  its reason, acknowledged.
- **``Retry``** raised by a handler (not now: another replica holds the work, we are stopping):
  redelivered after the delay it names, never given up.
- **Anything else** is treated as temporary — the state store, the bus or a cluster away for a
  moment — and the message is redelivered after a delay that grows with its delivery count, until
  ``RetryPolicy.max_deliveries``; the last failure dead-letters it ("gave up after N deliveries")
  and acknowledges it, so a poison message never loops forever.

Two delivery modes use this policy: ``durable_consumer`` (one message per fetch, handled before the
next — a single ordered writer; a push queue group whose replicas share the work; or a process's
own ephemeral consumer, for a read model a restart rebuilds) for events, and the batched pull loops
of ``common.pull`` for telemetry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Generic, Literal, TypeVar

from faststream import AckPolicy
from faststream.nats import NatsBroker, NatsMessage, PullSub
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js.api import ConsumerConfig, DeliverPolicy
from prometheus_client import Counter
from pydantic.alias_generators import to_snake

from sentinai.common import jsonlog
from sentinai.common.bus import MESSAGES_HANDLED, DeadLetters, inbox_of
from sentinai.common.events import Event
from sentinai.common.state import StateStoreError
from sentinai.common.streams import StreamSpec

log = logging.getLogger(__name__)

E = TypeVar("E", bound=Event)

# Outages we expect and log without a traceback; any other exception is retried the same way but
# logged with one, since it may be a bug that the delivery bound will end up dead-lettering.
TRANSIENT: tuple[type[BaseException], ...] = (StateStoreError, NatsError, TimeoutError, ConnectionError)

REDELIVERIES = Counter(
    "sentinai_redeliveries_total",
    "Messages handed back for a later delivery",
    ["service", "kind", "reason"],
)


class Permanent(Exception):
    """This message can never be handled: dead-letter it with this reason and acknowledge it."""


class Retry(Exception):
    """Not now: redeliver after ``after_s`` seconds; never counted towards giving up."""

    def __init__(self, reason: str, *, after_s: float) -> None:
        super().__init__(reason)
        self.after_s = after_s


@dataclass(frozen=True)
class RetryPolicy:
    """How a failed message comes back: 1, 2, 4 … ``max_delay_s`` seconds later, ``max_deliveries`` times.

    The defaults ride out about half an hour of outage (a Redis restart, a NATS leader election)
    before a message that still fails is dead-lettered.
    """

    first_delay_s: float = 1.0
    max_delay_s: float = 10.0
    max_deliveries: int = 200

    def delay_s(self, delivered: int) -> float:
        """The wait before delivery ``delivered + 1``."""
        exponent = min(max(delivered, 1) - 1, 30)
        return float(min(self.max_delay_s, self.first_delay_s * 2**exponent))

    def gives_up(self, delivered: int) -> bool:
        return delivered >= self.max_deliveries


DEFAULT_POLICY = RetryPolicy()


def delivered(msg: Msg) -> int:
    """How many times JetStream has delivered ``msg`` (1 the first time; 1 when not a JetStream message)."""
    try:
        return int(msg.metadata.num_delivered or 1)
    except Exception:  # a core NATS message has no JetStream metadata
        return 1


@dataclass(frozen=True)
class Settlement:
    """What the policy does with a message whose handling failed."""

    dead_letter: bool
    delay_s: float
    reason: str
    cause: Literal["retry", "permanent", "outage", "error", "gave_up"]


def settlement(exc: BaseException, *, deliveries: int, policy: RetryPolicy = DEFAULT_POLICY) -> Settlement:
    """The policy as a pure function of the failure and how often the message was delivered."""
    if isinstance(exc, Retry):
        return Settlement(False, exc.after_s, str(exc), "retry")
    if isinstance(exc, Permanent):
        return Settlement(True, 0.0, str(exc), "permanent")
    error = f"{type(exc).__name__}: {exc}"
    if policy.gives_up(deliveries):
        return Settlement(True, 0.0, f"gave up after {deliveries} deliveries: {error}", "gave_up")
    cause: Literal["outage", "error"] = "outage" if isinstance(exc, TRANSIENT) else "error"
    return Settlement(False, policy.delay_s(deliveries), error, cause)


async def apply(msg: Msg, settled: Settlement, *, dead: DeadLetters | None, service: str, kind: str) -> None:
    """Carry out ``settled`` on ``msg``: nak it with its delay, or dead-letter and acknowledge it."""
    if not settled.dead_letter:
        REDELIVERIES.labels(service, kind, settled.cause).inc()
        await msg.nak(delay=settled.delay_s)
        return
    if dead is None:  # a loop without a dead-letter sender (a read model's): drop it for good
        await msg.term()
        return
    await dead.send(subject=msg.subject, body=msg.data, reason=settled.reason, kind=settled.cause)
    await msg.ack()


async def settle_failure(
    msg: Msg,
    exc: BaseException,
    *,
    dead: DeadLetters,
    service: str,
    kind: str,
    policy: RetryPolicy = DEFAULT_POLICY,
) -> None:
    """Apply the policy to one message whose handling raised ``exc``: redeliver or dead-letter it."""
    count = delivered(msg)
    settled = settlement(exc, deliveries=count, policy=policy)
    extra = {"kind": kind, "error": settled.reason, "delivery": count, "retryInS": settled.delay_s}
    if settled.cause == "retry":
        log.info("message handed back", extra=extra)
    elif settled.cause == "outage":
        log.warning("unavailable dependency: message handed back for redelivery", extra=extra)
    elif settled.cause == "error":
        log.error("handler failed: message handed back for redelivery", extra=extra, exc_info=exc)
    else:
        log.error("message dead-lettered", extra=extra, exc_info=exc if settled.cause == "gave_up" else None)
    await apply(msg, settled, dead=dead, service=service, kind=kind)


@contextlib.asynccontextmanager
async def _kept_alive(msg: Msg, *, every_s: float | None) -> AsyncIterator[None]:
    """Progress beats keep a message that outlasts JetStream's ack wait ours meanwhile."""
    if every_s is None:
        yield
        return

    async def beat() -> None:
        while True:
            await asyncio.sleep(every_s)  # a heartbeat period, not a wait for a condition
            await msg.in_progress()

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


Handler = Callable[[E], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Received(Generic[E]):
    """A decoded event with the message it came in: for a handler that passes the exact bytes on."""

    event: E
    subject: str
    body: bytes


ReceivedHandler = Callable[[Received[E]], Awaitable[None]]


def durable_consumer(
    broker: NatsBroker,
    dead: DeadLetters,
    *,
    service: str,
    name: str,
    subject: str,
    stream: StreamSpec,
    durable: str | None,
    event_type: type[E] | Callable[[str], type[E] | None],
    handle: Handler[E] | None = None,
    handle_received: ReceivedHandler[E] | None = None,
    deliver: DeliverPolicy | None = None,
    config: ConsumerConfig | None = None,
    policy: RetryPolicy = DEFAULT_POLICY,
    queue: bool = False,
    max_workers: int | None = None,
    keep_alive_s: float | None = None,
) -> None:
    """Subscribe ``handle`` to ``subject`` through the durable ``durable`` of ``stream``.

    Each message is decoded into ``event_type`` (or the type it returns for the message's subject),
    handed to ``handle``, acknowledged when it returns, and settled by the policy when it raises.
    ``name`` names the subscriber (metrics, AsyncAPI). By default a pull consumer fetching one
    message at a time; ``queue=True`` makes it a push consumer shared by the replicas of a queue
    group named ``durable`` (each message to one of them), handling up to ``max_workers`` at once.
    ``keep_alive_s``: send progress beats that often while a handler runs.

    ``durable=None`` makes it an ephemeral push consumer of this process alone (a per-replica read
    model that a restart rebuilds from ``config``'s start): not shared, gone with the connection.
    An ``event_type`` function may return ``None`` for a subject the consumer does not handle: such
    a message is acknowledged unread (not decoded, never dead-lettered). ``handle_received``, given
    instead of ``handle``, gets the event with its subject and exact bytes (``Received``).
    """
    if (handle is None) == (handle_received is None):
        raise TypeError("durable_consumer takes exactly one of handle and handle_received")
    if durable is None and queue:
        raise ValueError("a queue group shares a durable consumer: name it")
    choose: Callable[[str], type[E] | None] = (
        (lambda _subject: event_type) if isinstance(event_type, type) else event_type
    )
    fixed_kind = to_snake(event_type.__name__) if isinstance(event_type, type) else None

    async def call(event: E, raw: Msg, body: bytes) -> None:
        if handle is not None:
            await handle(event)
        elif handle_received is not None:
            await handle_received(Received(event, raw.subject, body))

    async def on_message(msg: NatsMessage) -> None:
        raw: Msg = msg.raw_message
        model = choose(raw.subject)
        if model is None:
            await raw.ack()
            return
        kind = fixed_kind or to_snake(model.__name__)
        event = await dead.decode(model, subject=raw.subject, body=msg.body)
        if event is None:
            await raw.ack()
            return
        jsonlog.bind(chain=event.chain_id, correlation_id=event.correlation_id)
        try:
            async with _kept_alive(raw, every_s=keep_alive_s):
                await call(event, raw, msg.body)
        except Exception as exc:
            await settle_failure(raw, exc, dead=dead, service=service, kind=kind, policy=policy)
            return
        MESSAGES_HANDLED.labels(service, kind).inc()
        await raw.ack()

    # faststream names the subscriber (metrics, AsyncAPI) after the function.
    on_message.__name__ = on_message.__qualname__ = name
    options: dict[str, Any] = {
        "stream": stream.ref(),
        "durable": durable,
        "config": config,
        "ack_policy": AckPolicy.MANUAL,
    }
    if deliver is not None:
        options["deliver_policy"] = deliver
    if queue:
        # nats-py names the durable after the queue group, so replicas share one consumer; naming
        # it a second time (``durable=``) makes faststream warn that it cannot scale.
        options["queue"] = name_ = options.pop("durable")
        # A deliver subject of its own name, not a fresh inbox: replicas starting together then
        # create the same consumer config, which JetStream accepts twice, instead of racing with
        # two configs and one of them failing ("consumer name already in use").
        options["config"] = replace(
            config or ConsumerConfig(), deliver_subject=f"{inbox_of(broker)}deliver.{name_}"
        )
        if max_workers is not None:
            options["max_workers"] = max_workers
    elif durable is not None:
        options["pull_sub"] = PullSub(batch_size=1, timeout=1.0)
    # else: an ephemeral consumer, pushed to this process alone.
    broker.subscriber(subject, **options)(on_message)

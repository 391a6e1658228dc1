"""Bus wiring: connect to NATS, make sure the telemetry stream exists, publish to it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from faststream.nats import NatsBroker
from nats.errors import Error as NatsError
from nats.js.api import PubAck

from sentinai.common import streams, telemetry
from sentinai.common.events import Event

log = logging.getLogger(__name__)


class BrokerPublisher:
    """Publishes to the TELEMETRY stream and waits for JetStream's acks.

    Straight on the connection's JetStream context, with ``Nats-Msg-Id`` (a retried publish is
    stored once) as the only header: telemetry is most of the bus, every consumer parses every
    header of every sample, and faststream's own headers (its correlation id: the event carries
    one) roughly triple that work. A poll's events are sent together and their acks awaited
    together: a request per event (a timer, a waiter and a task each) cost the collector more than
    the events did. Counted and timed as faststream's publishes are.
    """

    def __init__(self, broker: NatsBroker, *, service: str, ack_wait_s: float = 5.0) -> None:
        self._js = broker.connection.jetstream()
        self._service = service
        self._ack_wait_s = ack_wait_s

    async def publish_all(self, items: Sequence[tuple[str, Event]]) -> list[Exception | None]:
        """Publish each (subject, event); each one's failure (``None``: stored) within ``ack_wait_s``."""
        started = time.perf_counter()
        pending: list[asyncio.Future[PubAck] | Exception] = []
        for subject, event in items:
            try:
                pending.append(
                    await self._js.publish_async(
                        subject,
                        event.to_json(),
                        wait_stall=self._ack_wait_s,
                        # No ``stream=``: it only adds an expected-stream header; the subject decides.
                        headers={"Nats-Msg-Id": event.event_id},
                    )
                )
            except Exception as exc:  # too many unacknowledged, or the connection is closed
                pending.append(exc)
        futures = [p for p in pending if isinstance(p, asyncio.Future)]
        if futures:
            await asyncio.wait(futures, timeout=self._ack_wait_s)
        seconds = time.perf_counter() - started
        outcomes: list[Exception | None] = []
        for (subject, _), sent in zip(items, pending, strict=True):
            error = _failure(sent, self._ack_wait_s)
            telemetry.count_publish(self._service, subject, seconds=seconds, failed=error is not None)
            outcomes.append(error)
        return outcomes


def _failure(sent: asyncio.Future[PubAck] | Exception, wait_s: float) -> Exception | None:
    if isinstance(sent, Exception):
        return sent
    if not sent.done():
        sent.cancel()
        return TimeoutError(f"no ack from JetStream within {wait_s:g}s")
    if sent.cancelled():
        return TimeoutError("publish cancelled")
    error = sent.exception()
    if error is None:
        return None
    return error if isinstance(error, Exception) else RuntimeError(str(error))


async def _stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True


async def connect(
    broker: NatsBroker, *, stop: asyncio.Event, retry_s: float = 2.0, replicas: int | None = None
) -> bool:
    """Connect and ensure the telemetry stream; ``False`` if ``stop`` was set first.

    The broker's client retries forever until nats-server is up (it may start after us), so the
    only way out of the wait is ``stop``.
    """
    connecting = asyncio.create_task(broker.connect())
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({connecting, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if not connecting.done():
        connecting.cancel()
        await asyncio.gather(connecting, return_exceptions=True)
        return False
    connecting.result()
    while True:
        try:
            await streams.ensure_streams(
                broker.connection.jetstream(), (streams.TELEMETRY,), replicas=replicas
            )
        except (NatsError, TimeoutError) as exc:
            # JetStream can lag the server's first accept (cluster still electing a meta leader).
            log.warning(
                "cannot ensure the telemetry stream yet", extra={"error": f"{type(exc).__name__}: {exc}"}
            )
            if await _stopped_within(stop, retry_s):
                return False
        else:
            return True

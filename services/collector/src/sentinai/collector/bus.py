"""Bus wiring: connect to NATS, make sure the telemetry stream exists, publish to it."""

from __future__ import annotations

import asyncio
import logging

from faststream.nats import NatsBroker
from nats.errors import Error as NatsError

from sentinai.common import streams, telemetry
from sentinai.common.events import Event

log = logging.getLogger(__name__)


class BrokerPublisher:
    """Publishes to the TELEMETRY stream and waits for JetStream's ack.

    Straight on the connection's JetStream context, with ``Nats-Msg-Id`` (a retried publish is
    stored once) as the only header: telemetry is most of the bus, every consumer parses every
    header of every sample, and faststream's own headers (its correlation id: the event carries
    one) roughly triple that work. Counted and timed as faststream's publishes are.
    """

    def __init__(self, broker: NatsBroker, *, service: str) -> None:
        self._js = broker.connection.jetstream()
        self._service = service

    async def publish(self, subject: str, event: Event) -> None:
        with telemetry.publishing(self._service, subject):
            await self._js.publish(
                subject,
                event.to_json(),
                # No ``stream=``: it only adds an expected-stream header; the subject decides.
                timeout=5.0,
                headers={"Nats-Msg-Id": event.event_id},
            )


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

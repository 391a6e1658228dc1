"""Bus plumbing shared by the services: broker construction, event publishing, dead letters.

Handlers receive raw bytes and decode them here, so a malformed payload is a permanent error that
goes to ``deadletter.<service>`` with a counter and is acknowledged — never a redelivery loop and
never a crashed consumer.
"""

from __future__ import annotations

import logging

from faststream.nats import NatsBroker
from prometheus_client import Counter

from sentinai.common import subjects
from sentinai.common.events import DeadLetter, E, Event, MalformedEventError, decode
from sentinai.common.settings import ServiceSettings
from sentinai.common.streams import DEAD_LETTER, StreamSpec, ensure_streams

log = logging.getLogger(__name__)

MESSAGES_HANDLED = Counter(
    "sentinai_messages_handled_total", "Messages handled successfully", ["service", "kind"]
)
DEAD_LETTERS = Counter(
    "sentinai_dead_letters_total", "Messages sent to the dead-letter subject", ["service", "kind"]
)
_PAYLOAD_KEEP = 8192
# The largest event we decode. NATS accepts up to 1 MiB; our biggest legitimate events (a log batch
# of the default 50-line tail, an RCA with its evidence) are tens of KiB. Anything near the server's
# limit is garbage or an attack, and would otherwise be held in every consumer's memory.
MAX_EVENT_BYTES = 512 * 1024


def build_broker(settings: ServiceSettings) -> NatsBroker:
    """A broker that keeps reconnecting forever: a restarted nats-server must not end a service."""
    return NatsBroker(
        settings.nats_url,
        connect_timeout=int(max(1, settings.connect_timeout_s)),
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        logger=logging.getLogger("faststream"),
    )


async def start_broker(broker: NatsBroker, *, replicas: int | None = None) -> None:
    """Connect, make sure every stream exists with our config, then start the subscribers."""
    await broker.connect()
    await ensure_streams(broker.config.connection_state.stream, replicas=replicas)
    await broker.start()


async def publish_event(broker: NatsBroker, subject: str, event: Event, *, stream: StreamSpec) -> None:
    """Publish to JetStream and wait for the ack; ``Nats-Msg-Id`` makes a retried publish idempotent."""
    await broker.publish(
        event.to_json(),
        subject,
        headers={"Nats-Msg-Id": event.event_id},
        correlation_id=event.correlation_id,
        stream=stream.name,
        timeout=5.0,
    )


class DeadLetters:
    """Sends undecodable or unusable messages to ``deadletter.<service>`` and counts them."""

    def __init__(self, broker: NatsBroker, *, service: str) -> None:
        self._broker = broker
        self.service = service

    async def send(self, *, subject: str, body: bytes, reason: str, kind: str = "malformed") -> None:
        DEAD_LETTERS.labels(self.service, kind).inc()
        log.warning("dead-lettered message", extra={"subject": subject, "reason": reason})
        letter = DeadLetter(
            service=self.service,
            subject=subject,
            reason=reason,
            payload=body[:_PAYLOAD_KEEP].decode("utf-8", errors="replace"),
        )
        await self._broker.publish(
            letter.to_json(), subjects.dead_letter(self.service), stream=DEAD_LETTER.name, timeout=5.0
        )

    async def decode(self, model: type[E], *, subject: str, body: bytes) -> E | None:
        """The decoded event, or ``None`` after dead-lettering a malformed or oversized one."""
        if len(body) > MAX_EVENT_BYTES:
            reason = (
                f"payload of {len(body)} bytes exceeds the {MAX_EVENT_BYTES}-byte limit for {model.__name__}"
            )
            await self.send(subject=subject, body=body, reason=reason, kind="oversized")
            return None
        try:
            return decode(model, body)
        except MalformedEventError as exc:
            await self.send(subject=subject, body=body, reason=str(exc))
            return None

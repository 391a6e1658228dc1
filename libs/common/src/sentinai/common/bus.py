"""Bus plumbing shared by the services: broker construction, event publishing, dead letters.

Handlers receive raw bytes and decode them here, so a malformed payload is a permanent error that
goes to ``deadletter.<service>`` with a counter and is acknowledged — never a redelivery loop and
never a crashed consumer.
"""

from __future__ import annotations

import logging
from typing import Any

from faststream.nats import NatsBroker
from faststream.nats.security import NatsNKey, NatsSecurity
from prometheus_client import Counter

from sentinai.common import natsauth, subjects
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


class _OwnInboxBroker(NatsBroker):
    """A broker whose subscribers receive on its user's own inboxes (``natsauth.inbox_prefix``).

    faststream hands every pull subscriber nats-py's fixed ``_INBOX.`` unless told otherwise; a user
    may subscribe below its own prefix only, so the connection's prefix is made their default.
    """

    def __init__(self, *args: Any, inbox: bytes, **kwargs: Any) -> None:
        super().__init__(*args, inbox_prefix=inbox, **kwargs)
        self._inbox = inbox + b"."

    def subscriber(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("inbox_prefix", self._inbox)
        return super().subscriber(*args, **kwargs)


def inbox_of(broker: NatsBroker) -> str:
    """The prefix of the subjects this broker's user may receive on (``_INBOX.`` without a user)."""
    own = getattr(broker, "_inbox", None)
    return own.decode() if isinstance(own, bytes) else "_INBOX."


def build_broker(settings: ServiceSettings) -> NatsBroker:
    """A broker that keeps reconnecting forever: a restarted nats-server must not end a service.

    With ``SENTINAI_NATS_CREDS`` it connects as that NATS user (``natsauth``), with
    ``SENTINAI_NATS_TLS_CA`` over TLS checked against that CA; with neither, as today (open server).
    """
    options: dict[str, Any] = {
        "connect_timeout": int(max(1, settings.connect_timeout_s)),
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 1,
        "logger": logging.getLogger("faststream"),
    }
    context = None if settings.nats_tls_ca is None else natsauth.tls_context(settings.nats_tls_ca)
    if settings.nats_creds is None:
        if context is not None:
            options["security"] = NatsSecurity(ssl_context=context, use_ssl=True)
        return NatsBroker(settings.nats_url, **options)
    creds = natsauth.read_credentials(settings.nats_creds)
    options["security"] = NatsNKey.from_seed(creds.seed, ssl_context=context, use_ssl=context is not None)
    return _OwnInboxBroker(settings.nats_url, inbox=natsauth.inbox_prefix(creds.user).encode(), **options)


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


class BrokerPublisher:
    """The publisher port of the services' use cases, on a faststream broker.

    ``publish``: JetStream, acked, deduplicated by event id; ``publish_core``: core NATS, for a
    reply someone is waiting on (nothing stored).
    """

    def __init__(self, broker: NatsBroker) -> None:
        self.broker = broker

    async def publish(self, subject: str, event: Event, *, stream: StreamSpec) -> None:
        await publish_event(self.broker, subject, event, stream=stream)

    async def publish_core(self, subject: str, event: Event) -> None:
        await self.broker.publish(event.to_json(), subject, correlation_id=event.correlation_id)


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

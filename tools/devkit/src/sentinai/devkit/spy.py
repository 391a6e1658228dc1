"""A spy subscriber: what a service published on one subject, as the bus delivered it (tests only)."""

from __future__ import annotations

from faststream.nats import NatsBroker, NatsMessage

from sentinai.common.events import E, decode
from sentinai.common.streams import StreamSpec


class Spy:
    """Collects the bodies published on ``subject``; attach it before the broker starts."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.subjects: list[str] = []

    def attach(self, broker: NatsBroker, subject: str, stream: StreamSpec | None = None) -> Spy:
        @broker.subscriber(subject, stream=stream.ref() if stream is not None else None)
        async def spy(msg: NatsMessage) -> None:
            self.bodies.append(msg.body)
            self.subjects.append(msg.raw_message.subject)

        return self

    def events(self, model: type[E]) -> list[E]:
        """Everything seen so far, decoded as ``model``."""
        return [decode(model, body) for body in self.bodies]

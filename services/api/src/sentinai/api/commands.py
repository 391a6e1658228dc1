"""The api's writes on the bus: publish a command or request, then wait for the planner's verdict."""

from __future__ import annotations

import contextlib
import logging
import time

from faststream.nats import NatsBroker
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from prometheus_client import Counter

from sentinai.common import streams, subjects
from sentinai.common.bus import publish_event
from sentinai.common.decisions import ActionCommand, ActionRequested, ActionVerdict
from sentinai.common.events import MalformedEventError, decode

log = logging.getLogger(__name__)

VERDICTS = Counter(
    "sentinai_api_verdicts_total",
    "The planner's verdicts on the api's writes by code ('none': no answer in time)",
    ["code"],
)


class BusCommands:
    """Publishes the api's only writes and waits for the planner's verdict on each.

    The planner answers on core NATS (``subjects.action_verdict``), never stored: the api subscribes
    before it publishes, on the connection it publishes on, so the answer cannot come first. No
    answer within ``timeout_s`` is not a failure: the write is on the stream and will be judged.
    """

    def __init__(self, broker: NatsBroker, *, timeout_s: float) -> None:
        self.broker = broker
        self.timeout_s = timeout_s

    async def command(self, cmd: ActionCommand) -> ActionVerdict | None:
        return await self._send(subjects.action_command(cmd.chain_id), cmd)

    async def request(self, req: ActionRequested) -> ActionVerdict | None:
        return await self._send(subjects.action_requested(req.chain_id), req)

    async def _send(self, subject: str, event: ActionCommand | ActionRequested) -> ActionVerdict | None:
        sub = await self.broker.connection.subscribe(subjects.action_verdict(event.chain_id, event.event_id))
        try:
            await publish_event(self.broker, subject, event, stream=streams.ACTIONS)
            verdict = await _verdict(sub, answers=event.event_id, timeout_s=self.timeout_s)
        finally:
            # A lost connection takes the subscription with it; the publish's error is the one to see.
            with contextlib.suppress(NatsError):
                await sub.unsubscribe()
        VERDICTS.labels("none" if verdict is None else verdict.code).inc()
        return verdict


async def _verdict(sub: Subscription, *, answers: str, timeout_s: float) -> ActionVerdict | None:
    """The first verdict on ``sub`` that answers ``answers``, or ``None`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        try:
            msg = await sub.next_msg(timeout=left)
        except TimeoutError:
            return None
        try:
            verdict = decode(ActionVerdict, msg.data)
        except MalformedEventError as exc:
            log.warning("unreadable verdict ignored", extra={"subject": msg.subject, "reason": str(exc)})
            continue
        if verdict.answers == answers:
            return verdict
    return None

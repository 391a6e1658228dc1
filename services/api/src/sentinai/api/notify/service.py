"""The notifier's use cases: which bus events become notices, and delivering each to its channels.

``Notify`` turns an event into a notice (remembering how severe each incident opened, so its
resolution is routed alike) and hands it to the ``Notifier``, which sends it to every channel that
hears it, at most once per channel, retrying temporary failures with backoff and dead-lettering the
original event when a channel never takes it. Network errors, 5xx and 429 are temporary (a
Retry-After is honoured, capped); any other non-2xx answer is permanent. No failure ever reaches
the bus consumer. The ports are the ``Sender`` (one HTTP POST: ``delivery.HttpSender``) and the
dead-letter sink; tests use recording fakes of both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal, Protocol

from prometheus_client import Counter

from sentinai.api.notify import notices
from sentinai.api.notify.config import AnyChannel, Delivery, NotifyConfig
from sentinai.api.notify.formats import Outbound, render
from sentinai.api.notify.notices import EpisodeSeverities, Notice
from sentinai.common import jsonlog, payloads
from sentinai.common.consumer import Received
from sentinai.common.decisions import ActionExecuted, ActionProposed, RcaCompleted
from sentinai.common.dedup import SeenIds
from sentinai.common.events import (
    AnomalyDetected,
    AnomalyResolved,
    Event,
    MalformedEventError,
    decode,
    utcnow,
)

log = logging.getLogger(__name__)

Outcome = Literal["sent", "dead_lettered", "duplicate"]

NOTIFICATIONS = Counter(
    "sentinai_notifications_total", "Notifications by channel and outcome", ["channel", "outcome"]
)
RETRIES = Counter("sentinai_notification_retries_total", "Notification attempts retried", ["channel"])
_SNIPPET = 200


# ----------------------------------------------------------------------------------------- ports


@dataclass(frozen=True, slots=True)
class Reply:
    """A receiver's answer to one POST: what the retry decision reads."""

    status: int
    text: str = ""
    retry_after: str | None = None  # the Retry-After header, as sent

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300


class Unreachable(Exception):
    """No answer at all (connect error, timeout …): temporary. The message names the error."""


class Sender(Protocol):
    """Makes one POST and returns the answer; raises ``Unreachable`` when there is none."""

    async def post(self, outbound: Outbound, *, timeout_s: float) -> Reply: ...


class DeadLetterSink(Protocol):
    """What ``sentinai.common.bus.DeadLetters`` offers."""

    async def send(self, *, subject: str, body: bytes, reason: str, kind: str = ...) -> None: ...


# ---------------------------------------------------------------------------- retry arithmetic


def retryable(status: int) -> bool:
    return status == 429 or status >= 500


def backoff_s(retry: int, *, delivery: Delivery, jitter: float) -> float:
    """Wait before retry number ``retry`` (1-based): doubling from ``backoff_s``, capped, then scaled
    by ``0.5 + jitter / 2`` (``jitter`` in [0, 1)) so replicas that failed together retry apart."""
    ceiling = min(delivery.backoff_max_s, delivery.backoff_s * 2.0 ** (retry - 1))
    return ceiling * (0.5 + jitter / 2)


def retry_after_s(value: str | None, *, now: datetime) -> float | None:
    """A Retry-After header in seconds (delta-seconds or an HTTP date); ``None`` if absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    return max(0.0, seconds)


# ------------------------------------------------------------------------------------- delivery


class Notifier:
    """Sends each notice to every channel that hears it, concurrently, at most once per channel."""

    def __init__(
        self,
        config: NotifyConfig,
        *,
        sender: Sender,
        dead: DeadLetterSink,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
        clock: Callable[[], datetime] = utcnow,
        remember: int = 10_000,
    ) -> None:
        self.config = config
        self.sender = sender
        self.dead = dead
        self.sleep = sleep
        self.jitter = jitter
        self.clock = clock
        self.seen = SeenIds(remember)

    async def notify(self, notice: Notice, *, subject: str, body: bytes) -> dict[str, Outcome]:
        """Deliver ``notice`` (decoded from ``body`` on ``subject``); the outcome per channel hearing it."""
        jsonlog.bind(chain=notice.chain_id, correlation_id=notice.correlation_id)
        channels = [c for c in self.config.channels if c.hears(notice.kind, notice.severity)]
        outcomes = await asyncio.gather(
            *(self._deliver(channel, notice, subject=subject, body=body) for channel in channels)
        )
        return {channel.name: outcome for channel, outcome in zip(channels, outcomes, strict=True)}

    async def _deliver(self, channel: AnyChannel, notice: Notice, *, subject: str, body: bytes) -> Outcome:
        if not self.seen.add(f"{channel.name}|{notice.event_id}"):
            NOTIFICATIONS.labels(channel.name, "duplicate").inc()
            return "duplicate"
        try:
            outbound = render(channel, notice, dashboard_url=self.config.dashboard_for(channel))
            failure = None if outbound is None else await self._post(channel.name, outbound)
        except Exception as exc:
            # A formatting bug must cost one notification, not the consumer.
            log.exception("notification failed unexpectedly", extra={"channel": channel.name})
            failure = f"unexpected {type(exc).__name__}"
        if failure is None:
            NOTIFICATIONS.labels(channel.name, "sent").inc()
            return "sent"
        await self._dead_letter(channel, notice, subject=subject, body=body, failure=failure)
        NOTIFICATIONS.labels(channel.name, "dead_lettered").inc()
        return "dead_lettered"

    async def _post(self, channel: str, outbound: Outbound) -> str | None:
        """``None`` once the receiver accepted the request, else why it never did."""
        delivery = self.config.delivery
        reason = "not attempted"
        for attempt in range(1, delivery.attempts + 1):
            try:
                reply = await self.sender.post(outbound, timeout_s=delivery.timeout_s)
            except Unreachable as exc:
                # The URL is a secret for most receivers; never let it into a reason or a log line.
                reason = str(exc).replace(outbound.url, "<url>")
                wait = backoff_s(attempt, delivery=delivery, jitter=self.jitter())
            else:
                if reply.accepted:
                    return None
                reason = f"HTTP {reply.status}: {reply.text[:_SNIPPET]}"
                if not retryable(reply.status):
                    return f"{reason} (permanent, not retried)"
                told = retry_after_s(reply.retry_after, now=self.clock())
                wait = (
                    backoff_s(attempt, delivery=delivery, jitter=self.jitter())
                    if told is None
                    else min(told, delivery.retry_after_max_s)
                )
            if attempt < delivery.attempts:
                RETRIES.labels(channel).inc()
                log.info("notification retry", extra={"channel": channel, "reason": reason, "wait_s": wait})
                await self.sleep(wait)
        return f"{reason} (after {delivery.attempts} attempts)"

    async def _dead_letter(
        self, channel: AnyChannel, notice: Notice, *, subject: str, body: bytes, failure: str
    ) -> None:
        reason = f"notification {notice.kind} to {channel.name} ({channel.type}) failed: {failure}"
        log.warning("notification dead-lettered", extra={"channel": channel.name, "reason": failure})
        try:
            await self.dead.send(subject=subject, body=body, reason=reason, kind="notification")
        except Exception:
            # The bus is away too; the warning above and the counter are what is left.
            log.exception("could not dead-letter a failed notification", extra={"channel": channel.name})


# ------------------------------------------------------------------------------------ use cases


class NoticeSender(Protocol):
    """What ``Notify`` needs of the ``Notifier``."""

    async def notify(self, notice: Notice, *, subject: str, body: bytes) -> Mapping[str, Outcome]: ...


ANOMALIES: tuple[type[Event], ...] = (AnomalyDetected, AnomalyResolved)


def anomaly_type(subject: str) -> type[Event] | None:
    """The event an ``anomaly.>`` subject carries (openings and resolutions share one consumer)."""
    family = payloads.family_of(subject)
    return next((model for model in ANOMALIES if family is not None and family.model is model), None)


class Notify:
    """Bus events in, notices out: what becomes a notice, and how severe a resolution is."""

    def __init__(self, notifier: NoticeSender, *, episodes: EpisodeSeverities | None = None) -> None:
        self.notifier = notifier
        self.episodes = episodes if episodes is not None else EpisodeSeverities()

    def opening_seen(self, body: bytes) -> None:
        """An opening read by this replica itself, so it routes every resolution like its opening,
        whichever replica notified that. A malformed one is the shared consumer's to dead-letter."""
        with contextlib.suppress(MalformedEventError):
            self.episodes.opened(decode(AnomalyDetected, body))

    def notice(self, event: Event) -> Notice | None:
        """The notice ``event`` becomes, if any (automatic and refused proposals need nobody)."""
        match event:
            case AnomalyDetected():
                self.episodes.opened(event)
                return notices.from_anomaly(event)
            case AnomalyResolved():
                return notices.from_resolved(event, severity=self.episodes.of(event.episode_id))
            case RcaCompleted():
                return notices.from_rca(event)
            case ActionProposed():
                return notices.from_proposal(event)
            case ActionExecuted():
                return notices.from_executed(event)
        return None

    async def handle(self, received: Received[Event]) -> None:
        """Notify the channels of ``received``; a failed delivery is dead-lettered with its exact bytes."""
        notice = self.notice(received.event)
        if notice is not None:
            await self.notifier.notify(notice, subject=received.subject, body=received.body)

"""Delivery of notices over HTTP: retries with backoff, dead letters, counters, once per channel.

Network errors, 5xx and 429 are temporary and retried (a Retry-After is honoured, capped); any other
non-2xx answer is permanent. A delivery that fails for good becomes a dead letter carrying the
original event, so it can be replayed; no failure ever reaches the bus consumer.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal, Protocol

import httpx
from prometheus_client import Counter

from sentinai.api.notify.config import AnyChannel, Delivery, NotifyConfig
from sentinai.api.notify.formats import Outbound, render
from sentinai.api.notify.notices import Notice
from sentinai.common import jsonlog
from sentinai.common.dedup import SeenIds
from sentinai.common.events import utcnow

log = logging.getLogger(__name__)

Outcome = Literal["sent", "dead_lettered", "duplicate"]

NOTIFICATIONS = Counter(
    "sentinai_notifications_total", "Notifications by channel and outcome", ["channel", "outcome"]
)
RETRIES = Counter("sentinai_notification_retries_total", "Notification attempts retried", ["channel"])
_SNIPPET = 200


class DeadLetterSink(Protocol):
    """What ``sentinai.common.bus.DeadLetters`` offers."""

    async def send(self, *, subject: str, body: bytes, reason: str, kind: str = ...) -> None: ...


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


class Notifier:
    """Sends each notice to every channel that hears it, concurrently, at most once per channel."""

    def __init__(
        self,
        config: NotifyConfig,
        *,
        client: httpx.AsyncClient,
        dead: DeadLetterSink,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
        clock: Callable[[], datetime] = utcnow,
        remember: int = 10_000,
    ) -> None:
        self.config = config
        self.client = client
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
                response = await self.client.post(
                    outbound.url, content=outbound.body, headers=outbound.headers, timeout=delivery.timeout_s
                )
            except httpx.TransportError as exc:
                # The URL is a secret for most receivers; never let it into a reason or a log line.
                reason = f"{type(exc).__name__}: {exc}".replace(outbound.url, "<url>")
                wait = backoff_s(attempt, delivery=delivery, jitter=self.jitter())
            else:
                if response.is_success:
                    return None
                reason = f"HTTP {response.status_code}: {response.text[:_SNIPPET]}"
                if not retryable(response.status_code):
                    return f"{reason} (permanent, not retried)"
                told = retry_after_s(response.headers.get("Retry-After"), now=self.clock())
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

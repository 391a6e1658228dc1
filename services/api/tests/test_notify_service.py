"""The notifier's use cases on fakes of its ports (a recording sender, a dead-letter box): what becomes a
notice, who hears it, once per channel, retries and their waits, dead letters. No broker, no HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from sentinai.api.notify.config import Delivery, NotifyConfig, parse_config
from sentinai.api.notify.formats import Outbound
from sentinai.api.notify.service import (
    Notifier,
    Notify,
    Reply,
    Unreachable,
    anomaly_type,
    backoff_s,
    retry_after_s,
)
from sentinai.common import subjects
from sentinai.common.actions import RestartComponent
from sentinai.common.consumer import Received
from sentinai.common.decisions import ActionProposed
from sentinai.common.events import AnomalyDetected, AnomalyResolved, Event, Severity

T0 = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
FAST = "delivery: {timeout_s: 2, attempts: 3, backoff_s: 0.01, backoff_max_s: 0.05, retry_after_max_s: 0.2}"
PAGER = "https://events.pagerduty.test/v2/enqueue"
CHAT = "https://hooks.slack.test/services/T0/B0/secret-token"


class RecordingSender:
    """The ``Sender`` port: records each POST and answers from ``script`` (a reply or ``Unreachable``),
    then 202."""

    def __init__(self, *script: Reply | Exception) -> None:
        self.script = list(script)
        self.posts: list[tuple[Outbound, float]] = []

    async def post(self, outbound: Outbound, *, timeout_s: float) -> Reply:
        self.posts.append((outbound, timeout_s))
        answer = self.script.pop(0) if self.script else Reply(202)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def urls(self) -> list[str]:
        return [outbound.url for outbound, _ in self.posts]


class Waits:
    """The notifier's sleep: remembers each wait, sleeps none."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)


def config(*channels: str, delivery: str = FAST) -> NotifyConfig:
    return parse_config(f"{delivery}\nchannels:\n" + "".join(f"  - {c}\n" for c in channels), environ={})


ONE_WEBHOOK = config(f"{{type: webhook, name: hook, url: '{CHAT}'}}")
PAGER_AND_CHAT = config(
    f"{{type: pagerduty, name: pager, url: '{PAGER}', routing_key: RK, severities: [high, critical]}}",
    f"{{type: slack, name: chat, url: '{CHAT}', events: [approval_needed]}}",
)


def wired(cfg: NotifyConfig, sender: RecordingSender, letters: Any) -> tuple[Notify, Waits]:
    waits = Waits()
    notifier = Notifier(cfg, sender=sender, dead=letters, sleep=waits, jitter=lambda: 0.5, clock=lambda: T0)
    return Notify(notifier), waits


def received(event: Event, subject: str) -> Received[Event]:
    return Received(event, subject, event.to_json())


def opened(severity: Severity, *, episode: str = "ep-1") -> Received[Event]:
    event = AnomalyDetected(
        chain_id="twin",
        episode_id=episode,
        occurred_at=T0,
        component="op-node",
        metric="unsafeL2",
        value=1200,
        z_score=0.0,
        direction="down",
        severity=severity,
        description="Sequencer stalled: unsafe head flat for 12s",
        rule="liveness",
    )
    return received(event, subjects.anomaly_detected("twin"))


def closed(episode: str = "ep-1") -> Received[Event]:
    event = AnomalyResolved(
        chain_id="twin",
        episode_id=episode,
        occurred_at=T0 + timedelta(seconds=95),
        component="op-node",
        metric="unsafeL2",
        rule="liveness",
        started_at=T0,
        duration_s=95,
        description="unsafe head advances again",
    )
    return received(event, subjects.anomaly_resolved("twin"))


def proposal(status: str) -> Received[Event]:
    event = ActionProposed.model_validate(
        {
            "chainId": "twin",
            "actionId": f"act-{status}",
            "action": RestartComponent(component="op-node").model_dump(by_alias=True),
            "tier": "high",
            "approvalsRequired": 1,
            "cooldownS": 600,
            "status": status,
            "reason": "sequencer stalled",
            "proposedBy": "planner",
            "expiresAt": (T0 + timedelta(minutes=30)).isoformat(),
        }
    )
    return received(event, subjects.action_proposed("twin"))


# ------------------------------------------------------------------------- what becomes a notice


async def test_only_a_proposal_waiting_for_a_human_reaches_the_chat(letters: Any) -> None:
    sender = RecordingSender()
    notify, _ = wired(PAGER_AND_CHAT, sender, letters)
    for status in ("auto_approved", "refused", "pending_approval"):
        await notify.handle(proposal(status))
    ((outbound, timeout_s),) = sender.posts
    assert outbound.url == CHAT and b"act-pending_approval" in outbound.body and timeout_s == 2


async def test_a_resolution_is_paged_like_the_opening_this_replica_read_itself(letters: Any) -> None:
    sender = RecordingSender()
    notify, _ = wired(PAGER_AND_CHAT, sender, letters)
    # Another replica notified the openings; this one only read them on its own consumer.
    notify.opening_seen(opened("high", episode="ep-high").body)
    notify.opening_seen(opened("low", episode="ep-low").body)
    notify.opening_seen(b"{not json")  # the shared consumer dead-letters it, not every replica

    for episode in ("ep-low", "ep-high"):
        await notify.handle(closed(episode))

    ((outbound, _),) = sender.posts
    assert outbound.url == PAGER and b'"event_action":"resolve"' in outbound.body
    assert b"twin:ep-high" in outbound.body and letters.letters == []


async def test_a_resolution_whose_opening_was_never_seen_is_let_through(letters: Any) -> None:
    sender = RecordingSender()
    notify, _ = wired(PAGER_AND_CHAT, sender, letters)
    await notify.handle(closed("ep-unknown"))
    assert sender.urls() == [PAGER]  # a missed "resolved" would leave an incident open


async def test_an_opening_handled_here_routes_its_resolution_too(letters: Any) -> None:
    sender = RecordingSender()
    notify, _ = wired(PAGER_AND_CHAT, sender, letters)
    await notify.handle(opened("medium", episode="ep-m"))
    await notify.handle(closed("ep-m"))
    assert sender.posts == []  # medium: below the pager's severities, opening and resolution alike


@pytest.mark.parametrize(
    ("subject", "model"),
    [
        pytest.param(subjects.anomaly_detected("twin"), AnomalyDetected, id="opening"),
        pytest.param(subjects.anomaly_resolved("twin"), AnomalyResolved, id="resolution"),
        pytest.param("anomaly.other.twin", None, id="outside-the-contract"),
    ],
)
def test_openings_and_resolutions_share_one_consumer(subject: str, model: type[Event] | None) -> None:
    assert anomaly_type(subject) is model


# ------------------------------------------------------------------------------- delivery


async def test_each_event_is_sent_once_per_channel(letters: Any) -> None:
    sender = RecordingSender()
    notify, _ = wired(ONE_WEBHOOK, sender, letters)
    event = opened("high")
    await notify.handle(event)
    await notify.handle(event)  # redelivered, or replayed by a durable created again
    assert len(sender.posts) == 1


async def test_temporary_failures_are_retried_with_growing_waits_until_accepted(letters: Any) -> None:
    sender = RecordingSender(Reply(500), Unreachable("ConnectError: refused"), Reply(503), Reply(204))
    five = config(
        f"{{type: webhook, name: hook, url: '{CHAT}'}}",
        delivery="delivery: {timeout_s: 2, attempts: 5, backoff_s: 0.01, backoff_max_s: 0.03}",
    )
    notify, waits = wired(five, sender, letters)
    await notify.handle(opened("high"))
    assert len(sender.posts) == 4 and len({o.body for o, _ in sender.posts}) == 1
    # jitter 0.5 scales each wait by 0.75: 0.01, 0.02, then the 0.03 cap.
    assert waits.asked == pytest.approx([0.0075, 0.015, 0.0225])
    assert letters.letters == []


async def test_retry_after_is_honoured_up_to_its_cap(letters: Any) -> None:
    later = format_datetime(T0 + timedelta(seconds=1), usegmt=True)
    sender = RecordingSender(Reply(429, retry_after="0.1"), Reply(503, retry_after=later))
    notify, waits = wired(ONE_WEBHOOK, sender, letters)
    await notify.handle(opened("high"))
    assert waits.asked == [0.1, 0.2] and len(sender.posts) == 3


async def test_a_permanent_refusal_dead_letters_the_exact_event_without_a_retry(letters: Any) -> None:
    sender = RecordingSender(Reply(400, text="no such channel " + "x" * 500))
    notify, waits = wired(ONE_WEBHOOK, sender, letters)
    event = opened("high")
    await notify.handle(event)
    (letter,) = letters.letters
    assert (letter.subject, letter.body, letter.kind) == (event.subject, event.body, "notification")
    assert letter.reason.startswith("notification anomaly_detected to hook (webhook) failed: HTTP 400")
    assert letter.reason.endswith("(permanent, not retried)") and len(letter.reason) < 300
    assert len(sender.posts) == 1 and waits.asked == []


async def test_an_unreachable_receiver_gets_every_attempt_and_its_url_stays_secret(letters: Any) -> None:
    down = Unreachable(f"ConnectError: cannot reach {CHAT}")
    sender = RecordingSender(down, down, down)
    notify, waits = wired(ONE_WEBHOOK, sender, letters)
    await notify.handle(opened("high"))
    (letter,) = letters.letters
    assert "ConnectError: cannot reach <url> (after 3 attempts)" in letter.reason
    assert "secret-token" not in letter.reason and len(waits.asked) == 2


async def test_a_failure_at_one_channel_costs_that_channel_only(letters: Any) -> None:
    sender = RecordingSender(RuntimeError("a formatting bug"))
    both = config(
        f"{{type: webhook, name: broken, url: '{CHAT}'}}",
        f"{{type: webhook, name: fine, url: '{PAGER}'}}",
    )
    notify, _ = wired(both, sender, letters)
    await notify.handle(opened("high"))
    (letter,) = letters.letters
    assert "to broken (webhook) failed: unexpected RuntimeError" in letter.reason
    assert sender.urls() == [CHAT, PAGER]  # the second channel was still sent to


async def test_channels_get_only_the_severities_they_asked_for(letters: Any) -> None:
    sender = RecordingSender()
    chat_and_pager = config(
        f"{{type: slack, name: chat, url: '{CHAT}'}}",
        f"{{type: pagerduty, name: pager, url: '{PAGER}', routing_key: RK, severities: [critical]}}",
    )
    notify, _ = wired(chat_and_pager, sender, letters)
    await notify.handle(opened("medium", episode="ep-1"))
    await notify.handle(opened("critical", episode="ep-2"))
    assert sender.urls() == [CHAT, CHAT, PAGER]


# ------------------------------------------------------------------------------ the arithmetic


def test_backoff_doubles_up_to_its_cap_with_jitter() -> None:
    delivery = Delivery(backoff_s=1, backoff_max_s=5)
    assert [backoff_s(n, delivery=delivery, jitter=0.999999) for n in (1, 2, 3, 4)] == pytest.approx(
        [1, 2, 4, 5]
    )
    assert [backoff_s(n, delivery=delivery, jitter=0.0) for n in (1, 2, 3, 4)] == [0.5, 1, 2, 2.5]


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after_s("7", now=T0) == 7
    assert retry_after_s(format_datetime(T0 + timedelta(seconds=30), usegmt=True), now=T0) == 30
    assert retry_after_s(format_datetime(T0 - timedelta(seconds=30), usegmt=True), now=T0) == 0
    assert retry_after_s("soon", now=T0) is None
    assert retry_after_s(None, now=T0) is None

"""Delivery against real HTTP receivers on loopback: retries, Retry-After, permanent errors, dead letters."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from sentinai.api.notify import notices
from sentinai.api.notify.config import Delivery, NotifyConfig, parse_config
from sentinai.api.notify.delivery import Notifier, backoff_s, retry_after_s
from sentinai.common import subjects
from sentinai.common.events import AnomalyDetected
from sentinai.common.net import free_port


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A real HTTP server on a free loopback port: records each POST, answers from ``script`` then 200."""

    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.requests.append(Received(self.path, dict(self.headers.items()), body))
                status, headers = receiver.script.pop(0) if receiver.script else (200, {})
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok" if status < 400 else b"no")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.close()


@dataclass
class Letter:
    subject: str
    body: bytes
    reason: str
    kind: str


class DeadLetterBox:
    """The dead-letter port, keeping what it is sent (the bus side is covered by the integration test)."""

    def __init__(self) -> None:
        self.letters: list[Letter] = []

    async def send(self, *, subject: str, body: bytes, reason: str, kind: str = "malformed") -> None:
        self.letters.append(Letter(subject, body, reason, kind))


class Waits:
    """Really sleeps, and remembers each wait it was asked for."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)
        await asyncio.sleep(seconds)


FAST = "delivery: {timeout_s: 2, attempts: 3, backoff_s: 0.01, backoff_max_s: 0.05, retry_after_max_s: 0.2}"


def config_for(url: str, *, name: str, kind: str = "webhook") -> NotifyConfig:
    return parse_config(f"{FAST}\nchannels: [{{type: {kind}, name: {name}, url: '{url}'}}]", environ={})


def incident(severity: str = "high") -> tuple[notices.Notice, bytes]:
    event = AnomalyDetected.model_validate(
        {
            "chainId": "twin",
            "component": "op-geth",
            "metric": "cpuUsage",
            "value": 97.0,
            "zScore": 4.2,
            "direction": "up",
            "severity": severity,
            "description": "CPU spike detected: 97.0% (4.2σ above baseline)",
            "rule": "zscore",
        }
    )
    return notices.from_anomaly(event), event.to_json()


def counted(channel: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "sentinai_notifications_total", {"channel": channel, "outcome": outcome}
    )
    return value or 0.0


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as running:
        yield running


SUBJECT = subjects.anomaly_detected("twin")


async def test_temporary_failures_are_retried_until_the_receiver_accepts(
    receiver: Receiver, client: httpx.AsyncClient
) -> None:
    receiver.script = [(500, {}), (503, {})]
    dead = DeadLetterBox()
    waits = Waits()
    notifier = Notifier(config_for(receiver.url, name="retry-ok"), client=client, dead=dead, sleep=waits)
    notice, body = incident()

    outcome = await notifier.notify(notice, subject=SUBJECT, body=body)

    assert outcome == {"retry-ok": "sent"}
    assert len(receiver.requests) == 3
    # The same body each time, and exponential waits kept under the cap.
    assert len({r.body for r in receiver.requests}) == 1
    assert len(waits.asked) == 2 and all(0.005 <= w <= 0.05 for w in waits.asked)
    assert dead.letters == []
    assert counted("retry-ok", "sent") == 1


async def test_a_permanent_refusal_is_not_retried_and_becomes_a_dead_letter(
    receiver: Receiver, client: httpx.AsyncClient
) -> None:
    receiver.script = [(400, {})]
    dead = DeadLetterBox()
    notifier = Notifier(config_for(receiver.url, name="bad-payload"), client=client, dead=dead)
    notice, body = incident()

    outcome = await notifier.notify(notice, subject=SUBJECT, body=body)

    assert outcome == {"bad-payload": "dead_lettered"}
    assert len(receiver.requests) == 1
    (letter,) = dead.letters
    # The original event and subject are kept, so the notification can be replayed.
    assert (letter.subject, letter.body, letter.kind) == (SUBJECT, body, "notification")
    assert "bad-payload (webhook)" in letter.reason and "HTTP 400" in letter.reason
    assert "not retried" in letter.reason
    assert counted("bad-payload", "dead_lettered") == 1


async def test_a_receiver_that_always_fails_gets_every_attempt_then_a_dead_letter(
    receiver: Receiver, client: httpx.AsyncClient
) -> None:
    receiver.script = [(500, {})] * 10
    dead = DeadLetterBox()
    notifier = Notifier(config_for(receiver.url, name="always-500"), client=client, dead=dead)
    notice, body = incident()

    outcome = await notifier.notify(notice, subject=SUBJECT, body=body)

    assert outcome == {"always-500": "dead_lettered"}
    assert len(receiver.requests) == 3
    (letter,) = dead.letters
    assert "HTTP 500" in letter.reason and "after 3 attempts" in letter.reason


async def test_retry_after_is_honoured_up_to_the_cap(receiver: Receiver, client: httpx.AsyncClient) -> None:
    receiver.script = [(429, {"Retry-After": "0.1"}), (429, {"Retry-After": "3600"})]
    waits = Waits()
    notifier = Notifier(
        config_for(receiver.url, name="rate-limited", kind="discord"),
        client=client,
        dead=DeadLetterBox(),
        sleep=waits,
    )
    notice, body = incident()

    outcome = await notifier.notify(notice, subject=SUBJECT, body=body)

    assert outcome == {"rate-limited": "sent"}
    assert waits.asked == [0.1, 0.2]


async def test_an_unreachable_receiver_is_retried_and_its_secret_url_stays_out_of_the_letter(
    client: httpx.AsyncClient,
) -> None:
    url = f"http://127.0.0.1:{free_port()}/services/T0/B0/secret-token"
    dead = DeadLetterBox()
    notifier = Notifier(config_for(url, name="nobody-home", kind="slack"), client=client, dead=dead)
    notice, body = incident()

    outcome = await notifier.notify(notice, subject=SUBJECT, body=body)

    assert outcome == {"nobody-home": "dead_lettered"}
    (letter,) = dead.letters
    assert "ConnectError" in letter.reason and "after 3 attempts" in letter.reason
    assert "secret-token" not in letter.reason


async def test_each_event_is_sent_once_per_channel(receiver: Receiver, client: httpx.AsyncClient) -> None:
    notifier = Notifier(config_for(receiver.url, name="once"), client=client, dead=DeadLetterBox())
    notice, body = incident()

    first = await notifier.notify(notice, subject=SUBJECT, body=body)
    again = await notifier.notify(notice, subject=SUBJECT, body=body)

    assert (first, again) == ({"once": "sent"}, {"once": "duplicate"})
    assert len(receiver.requests) == 1
    assert counted("once", "duplicate") == 1


async def test_channels_get_only_the_severities_they_asked_for(client: httpx.AsyncClient) -> None:
    everything, urgent = Receiver(), Receiver()
    try:
        config = parse_config(
            f"""
            {FAST}
            channels:
              - {{type: slack, name: chat, url: '{everything.url}'}}
              - {{type: pagerduty, name: pager, url: '{urgent.url}', routing_key: RK, severities: [critical]}}
            """,
            environ={},
        )
        notifier = Notifier(config, client=client, dead=DeadLetterBox())
        for severity in ("medium", "critical"):
            notice, body = incident(severity)
            await notifier.notify(notice, subject=SUBJECT, body=body)
    finally:
        everything.close()
        urgent.close()

    assert [r.json()["text"][:10] for r in everything.requests] == ["[MEDIUM] I", "[CRITICAL]"]
    (page,) = urgent.requests
    assert page.json()["payload"]["severity"] == "critical" and page.json()["routing_key"] == "RK"


def test_backoff_doubles_up_to_its_cap_with_jitter() -> None:
    delivery = Delivery(backoff_s=1, backoff_max_s=5)
    assert [backoff_s(n, delivery=delivery, jitter=0.999999) for n in (1, 2, 3, 4)] == pytest.approx(
        [1, 2, 4, 5]
    )
    assert [backoff_s(n, delivery=delivery, jitter=0.0) for n in (1, 2, 3, 4)] == [0.5, 1, 2, 2.5]


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
    assert retry_after_s("7", now=now) == 7
    assert retry_after_s(format_datetime(now + timedelta(seconds=30), usegmt=True), now=now) == 30
    assert retry_after_s(format_datetime(now - timedelta(seconds=30), usegmt=True), now=now) == 0
    assert retry_after_s("soon", now=now) is None
    assert retry_after_s(None, now=now) is None


async def test_a_slow_receiver_times_out_and_is_retried(client: httpx.AsyncClient) -> None:
    release = threading.Event()
    hits: list[float] = []

    class Slow(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            hits.append(time.monotonic())
            if len(hits) == 1:
                release.wait(timeout=5)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Slow)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        config = parse_config(
            "delivery: {timeout_s: 0.3, attempts: 2, backoff_s: 0.01}\n"
            f"channels: [{{type: webhook, url: '{url}'}}]",
            environ={},
        )
        notice, body = incident()
        outcome = await Notifier(config, client=client, dead=DeadLetterBox()).notify(
            notice, subject=SUBJECT, body=body
        )
    finally:
        release.set()
        server.shutdown()
        server.server_close()

    assert outcome == {"webhook": "sent"}
    assert len(hits) == 2 and hits[1] - hits[0] >= 0.3

"""The notifier over its HTTP adapter against real receivers on loopback: status codes, Retry-After
headers, connection errors and timeouts as a real server gives them (the rules on fakes:
``test_notify_service.py``)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from sentinai.api.notify import notices
from sentinai.api.notify.config import NotifyConfig, parse_config
from sentinai.api.notify.delivery import HttpSender
from sentinai.api.notify.service import Notifier
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
async def sender() -> AsyncIterator[HttpSender]:
    async with httpx.AsyncClient() as client:
        yield HttpSender(client)


SUBJECT = subjects.anomaly_detected("twin")


async def test_temporary_failures_are_retried_until_the_receiver_accepts(
    receiver: Receiver, sender: HttpSender, letters: Any
) -> None:
    receiver.script = [(500, {}), (503, {})]
    waits = Waits()
    notifier = Notifier(config_for(receiver.url, name="retry-ok"), sender=sender, dead=letters, sleep=waits)
    notice, body = incident()

    outcome = await notifier.notify(notice, subject=SUBJECT, body=body)

    assert outcome == {"retry-ok": "sent"}
    assert len(receiver.requests) == 3
    # The same body each time, and exponential waits kept under the cap.
    assert len({r.body for r in receiver.requests}) == 1
    assert len(waits.asked) == 2 and all(0.005 <= w <= 0.05 for w in waits.asked)
    assert letters.letters == []
    assert counted("retry-ok", "sent") == 1


async def test_a_permanent_refusal_is_not_retried_and_becomes_a_dead_letter(
    receiver: Receiver, sender: HttpSender, letters: Any
) -> None:
    receiver.script = [(400, {})]
    notifier = Notifier(config_for(receiver.url, name="bad-payload"), sender=sender, dead=letters)
    notice, body = incident()

    outcome = await notifier.notify(notice, subject=SUBJECT, body=body)

    assert outcome == {"bad-payload": "dead_lettered"}
    assert len(receiver.requests) == 1
    (letter,) = letters.letters
    # The original event and subject are kept, so the notification can be replayed.
    assert (letter.subject, letter.body, letter.kind) == (SUBJECT, body, "notification")
    assert "bad-payload (webhook)" in letter.reason and "HTTP 400" in letter.reason
    assert "not retried" in letter.reason
    assert counted("bad-payload", "dead_lettered") == 1


async def test_a_receiver_that_always_fails_gets_every_attempt_then_a_dead_letter(
    receiver: Receiver, sender: HttpSender, letters: Any
) -> None:
    receiver.script = [(500, {})] * 10
    notifier = Notifier(config_for(receiver.url, name="always-500"), sender=sender, dead=letters)
    notice, body = incident()

    outcome = await notifier.notify(notice, subject=SUBJECT, body=body)

    assert outcome == {"always-500": "dead_lettered"}
    assert len(receiver.requests) == 3
    (letter,) = letters.letters
    assert "HTTP 500" in letter.reason and "after 3 attempts" in letter.reason


async def test_retry_after_is_honoured_up_to_the_cap(
    receiver: Receiver, sender: HttpSender, letters: Any
) -> None:
    receiver.script = [(429, {"Retry-After": "0.1"}), (429, {"Retry-After": "3600"})]
    waits = Waits()
    notifier = Notifier(
        config_for(receiver.url, name="rate-limited", kind="discord"),
        sender=sender,
        dead=letters,
        sleep=waits,
    )
    notice, body = incident()

    outcome = await notifier.notify(notice, subject=SUBJECT, body=body)

    assert outcome == {"rate-limited": "sent"}
    assert waits.asked == [0.1, 0.2]


async def test_an_unreachable_receiver_is_retried_and_its_secret_url_stays_out_of_the_letter(
    sender: HttpSender, letters: Any
) -> None:
    url = f"http://127.0.0.1:{free_port()}/services/T0/B0/secret-token"
    notifier = Notifier(config_for(url, name="nobody-home", kind="slack"), sender=sender, dead=letters)
    notice, body = incident()

    outcome = await notifier.notify(notice, subject=SUBJECT, body=body)

    assert outcome == {"nobody-home": "dead_lettered"}
    (letter,) = letters.letters
    assert "ConnectError" in letter.reason and "after 3 attempts" in letter.reason
    assert "secret-token" not in letter.reason


async def test_a_slow_receiver_times_out_and_is_retried(sender: HttpSender, letters: Any) -> None:
    release = threading.Event()
    hits: list[float] = []

    class Slow(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            hits.append(time.monotonic())
            if len(hits) == 1:
                release.wait(timeout=10)  # hangs until the test ends: only a timeout gets past it
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Slow)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        config = parse_config(
            # A second a try: a loopback answer on a busy machine fits in it; the hang never does.
            "delivery: {timeout_s: 1.0, attempts: 2, backoff_s: 0.01}\n"
            f"channels: [{{type: webhook, url: '{url}'}}]",
            environ={},
        )
        notice, body = incident()
        outcome = await Notifier(config, sender=sender, dead=letters).notify(
            notice, subject=SUBJECT, body=body
        )
    finally:
        release.set()
        server.shutdown()
        server.server_close()

    assert outcome == {"webhook": "sent"}
    assert len(hits) == 2 and hits[1] - hits[0] >= 1.0

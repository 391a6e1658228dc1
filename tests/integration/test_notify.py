"""Notifications from a real nats-server to real HTTP receivers, with two api replicas sharing the work."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import nats
import pytest
from nats.aio.msg import Msg

from sentinai.api.notify import NotifyConfig, subscribe
from sentinai.api.notify.bus import SERVICE
from sentinai.api.notify.config import parse_config
from sentinai.common import streams, subjects
from sentinai.common.actions import RestartComponent
from sentinai.common.bus import DeadLetters, build_broker, start_broker
from sentinai.common.decisions import ActionProposed
from sentinai.common.events import AnomalyDetected, AnomalyResolved, Event, Severity, utcnow
from sentinai.common.net import free_port
from sentinai.common.settings import ServiceSettings
from sentinai.devkit.natsserver import EmbeddedNats
from sentinai.devkit.waits import eventually

pytestmark = pytest.mark.integration
CHAIN = "itest"


class Receiver:
    """A real HTTP server on a free loopback port that records the JSON of each POST; ``fail`` answers 500."""

    def __init__(self, *, fail: bool = False) -> None:
        self.bodies: list[dict[str, Any]] = []
        bodies = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(500 if fail else 202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@asynccontextmanager
async def api_replica(config: NotifyConfig) -> AsyncIterator[None]:
    """What the api's composition root does when a notify file is configured."""
    broker = build_broker(ServiceSettings())
    notifications = subscribe(broker, config=config, dead=DeadLetters(broker, service=SERVICE))
    await start_broker(broker)
    try:
        yield
    finally:
        await broker.stop()
        await notifications.aclose()


def opened(episode: str, severity: Severity) -> AnomalyDetected:
    return AnomalyDetected(
        chain_id=CHAIN,
        episode_id=episode,
        component="op-node",
        metric="unsafeL2",
        value=100,
        z_score=0,
        direction="down",
        severity=severity,
        description=f"unsafe head flat ({episode})",
        rule="liveness",
        evidence=('lvl=error msg="Engine failed temporarily"',),
    )


def closed(episode: str) -> AnomalyResolved:
    now = utcnow()
    return AnomalyResolved(
        chain_id=CHAIN,
        episode_id=episode,
        component="op-node",
        metric="unsafeL2",
        rule="liveness",
        started_at=now - timedelta(seconds=30),
        duration_s=30,
        description="unsafe head advances again",
    )


def proposed(status: str, component: str) -> ActionProposed:
    return ActionProposed.model_validate(
        {
            "chainId": CHAIN,
            "actionId": f"act-{component}",
            "action": RestartComponent.model_validate({"component": component}).model_dump(by_alias=True),
            "tier": "high",
            "approvalsRequired": 1,
            "cooldownS": 600,
            "status": status,
            "reason": "sequencer stalled",
            "proposedBy": "planner",
            "episodeId": "ep-high",
            "expiresAt": (utcnow() + timedelta(minutes=30)).isoformat(),
        }
    )


async def test_pages_open_and_close_with_the_incident_and_approvals_reach_slack(
    nats_server: EmbeddedNats, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENTINAI_NATS_URL", nats_server.url)
    pager, slack, broken = Receiver(), Receiver(), Receiver(fail=True)
    config = parse_config(
        f"""
        dashboard_url: http://dashboard.test:8080/
        delivery: {{timeout_s: 2, attempts: 3, backoff_s: 0.01, backoff_max_s: 0.05}}
        channels:
          - type: pagerduty
            url: '{pager.url}'
            routing_key_env: PD_ROUTING_KEY
            severities: [high, critical]
          - {{type: slack, url: '{slack.url}', events: [approval_needed]}}
          - {{type: webhook, name: broken, url: '{broken.url}', events: [anomaly_detected]}}
        """,
        environ={"PD_ROUTING_KEY": "RK-itest"},
    )
    nc = await nats.connect(nats_server.url)
    letters: list[dict[str, Any]] = []
    try:
        async with AsyncExitStack() as stack:
            # Two api replicas: the shared durable consumers hand each event to one of them.
            for _ in range(2):
                await stack.enter_async_context(api_replica(config))
            js = nc.jetstream()

            async def on_letter(msg: Msg) -> None:
                letters.append(json.loads(msg.data))

            await js.subscribe(subjects.dead_letter(SERVICE), stream=streams.DEAD_LETTER.name, cb=on_letter)

            events: list[tuple[str, Event, streams.StreamSpec]] = [
                (subjects.anomaly_detected(CHAIN), opened("ep-low", "low"), streams.EVENTS),
                (subjects.anomaly_detected(CHAIN), opened("ep-high", "high"), streams.EVENTS),
                (subjects.anomaly_resolved(CHAIN), closed("ep-low"), streams.EVENTS),
                (subjects.anomaly_resolved(CHAIN), closed("ep-high"), streams.EVENTS),
                (subjects.action_proposed(CHAIN), proposed("auto_approved", "op-geth"), streams.ACTIONS),
                (subjects.action_proposed(CHAIN), proposed("pending_approval", "op-node"), streams.ACTIONS),
            ]
            for subject, event, stream in events:
                await js.publish(subject, event.to_json(), stream=stream.name)
            await js.publish(subjects.anomaly_detected(CHAIN), b"{not json", stream=streams.EVENTS.name)

            await eventually(
                lambda: len(pager.bodies) >= 2, timeout_s=20, what="trigger and resolve at the pager"
            )
            await eventually(
                lambda: len(slack.bodies) >= 1, timeout_s=20, what="the approval message in slack"
            )
            await eventually(
                lambda: len(letters) >= 3, timeout_s=20, what="dead letters: two failed posts, one bad event"
            )

        # Only the high incident pages, opened then closed under one key, each exactly once.
        assert [(b["event_action"], b["dedup_key"]) for b in pager.bodies] == [
            ("trigger", f"{CHAIN}:ep-high"),
            ("resolve", f"{CHAIN}:ep-high"),
        ]
        trigger = pager.bodies[0]
        assert trigger["routing_key"] == "RK-itest" and trigger["payload"]["severity"] == "error"
        assert trigger["payload"]["custom_details"]["Evidence"] == [
            'lvl=error msg="Engine failed temporarily"'
        ]

        # Slack hears the proposal that needs a human, not the automatic one.
        (approval,) = slack.bodies
        buttons = next(b for b in approval["blocks"] if b["type"] == "actions")["elements"]
        link = "http://dashboard.test:8080/?action=act-op-node"
        assert [(b["text"]["text"], b["url"]) for b in buttons] == [("Approve", link), ("Reject", link)]

        # Every attempt was made at the broken receiver, then the event went to the dead letters;
        # a malformed event is dead-lettered once, whatever the number of replicas.
        assert len(broken.bodies) == 6
        failed = [letter for letter in letters if "broken (webhook) failed: HTTP 500" in letter["reason"]]
        assert sorted(json.loads(letter["payload"])["episodeId"] for letter in failed) == [
            "ep-high",
            "ep-low",
        ]
        (bad,) = [letter for letter in letters if letter not in failed]
        assert "invalid AnomalyDetected" in bad["reason"] and bad["payload"] == "{not json"
        assert {letter["subject"] for letter in letters} == {subjects.anomaly_detected(CHAIN)}
    finally:
        await nc.close()
        for receiver in (pager, slack, broken):
            receiver.close()

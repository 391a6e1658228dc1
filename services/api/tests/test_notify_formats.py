"""What each receiver gets for each event: pure functions, checked payload by payload."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest

from sentinai.api.notify import formats, notices
from sentinai.api.notify.config import parse_config
from sentinai.common.actions import RestartComponent, ScaleCpu
from sentinai.common.decisions import ActionExecuted, ActionProposed, RcaCompleted
from sentinai.common.events import AnomalyDetected, AnomalyResolved, Severity

T0 = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
DASHBOARD = "https://sentinai.example.org/"


def anomaly(severity: Severity = "high", *, episode: str = "ep-1") -> AnomalyDetected:
    return AnomalyDetected(
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
        evidence=('t=2026-11-27T01:00:00+0000 lvl=error msg="Engine failed temporarily" <!channel>',),
    )


def resolved(episode: str = "ep-1") -> AnomalyResolved:
    return AnomalyResolved(
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


def proposal(status: str = "pending_approval") -> ActionProposed:
    return ActionProposed.model_validate(
        {
            "chainId": "twin",
            "actionId": "act-0123456789abcdef",
            "action": RestartComponent(component="op-node").model_dump(by_alias=True),
            "tier": "high",
            "approvalsRequired": 1,
            "cooldownS": 600,
            "status": status,
            "reason": "sequencer stalled; a restart of op-node clears the engine error",
            "proposedBy": "planner",
            "incident": "sequencer_stall",
            "episodeId": "ep-1",
            "expiresAt": (T0 + timedelta(minutes=30)).isoformat(),
        }
    )


def test_slack_approval_message_has_approve_and_reject_links_to_the_action() -> None:
    notice = notices.from_proposal(proposal())
    assert notice is not None

    payload = formats.slack_payload(notice, dashboard_url=DASHBOARD)

    link = "https://sentinai.example.org/?action=act-0123456789abcdef"
    assert payload["blocks"][0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "Approval needed on twin: restart op-node", "emoji": True},
    }
    actions = next(b for b in payload["blocks"] if b["type"] == "actions")
    assert [(e["text"]["text"], e["url"], e["style"]) for e in actions["elements"]] == [
        ("Approve", link, "primary"),
        ("Reject", link, "danger"),
    ]
    facts = next(b for b in payload["blocks"] if "fields" in b)["fields"]
    assert {"type": "mrkdwn", "text": "*Chain*\ntwin"} in facts
    assert {"type": "mrkdwn", "text": "*Severity*\nhigh"} in facts
    assert {"type": "mrkdwn", "text": "*Root cause*\nsequencer_stall"} in facts
    assert payload["text"] == "[HIGH] Approval needed on twin: restart op-node"


def test_slack_incident_shows_evidence_with_chain_text_escaped() -> None:
    payload = formats.slack_payload(notices.from_anomaly(anomaly()), dashboard_url=DASHBOARD)

    evidence = next(
        b for b in payload["blocks"] if b.get("text", {}).get("text", "").startswith("*Evidence*")
    )
    # A log line cannot ping the channel or forge a link.
    assert "&lt;!channel&gt;" in evidence["text"]["text"] and "<!channel>" not in json.dumps(payload)
    assert not any(b["type"] == "actions" for b in payload["blocks"])


@pytest.mark.parametrize(
    ("severity", "colour"),
    [("low", 0x3498DB), ("medium", 0xF1C40F), ("high", 0xE67E22), ("critical", 0xE74C3C)],
)
def test_discord_embed_colour_follows_severity(severity: Severity, colour: int) -> None:
    payload = formats.discord_payload(notices.from_anomaly(anomaly(severity)), dashboard_url=DASHBOARD)

    (embed,) = payload["embeds"]
    assert embed["color"] == colour
    assert payload["content"].startswith(f"**[{severity.upper()}]**")
    assert payload["allowed_mentions"] == {"parse": []}


def test_discord_resolution_is_green_and_approval_links_to_the_dashboard() -> None:
    done = formats.discord_payload(
        notices.from_resolved(resolved(), severity="high"), dashboard_url=DASHBOARD
    )
    pending = notices.from_proposal(proposal())
    assert pending is not None
    ask = formats.discord_payload(pending, dashboard_url=DASHBOARD)

    assert done["embeds"][0]["color"] == formats.DISCORD_RESOLVED
    assert done["embeds"][0]["description"] == "unsafe head advances again (lasted 1m35s)"
    assert ask["embeds"][0]["url"] == "https://sentinai.example.org/?action=act-0123456789abcdef"


@pytest.mark.parametrize(
    ("severity", "pd_severity"),
    [("critical", "critical"), ("high", "error"), ("medium", "warning"), ("low", "info")],
)
def test_pagerduty_trigger_then_resolve_share_the_incident_dedup_key(
    severity: Severity, pd_severity: str
) -> None:
    opened = formats.pagerduty_payload(
        notices.from_anomaly(anomaly(severity)), routing_key="RK", dashboard_url=DASHBOARD
    )
    closed = formats.pagerduty_payload(
        notices.from_resolved(resolved(), severity=severity), routing_key="RK", dashboard_url=DASHBOARD
    )

    assert opened is not None and closed is not None
    assert (opened["event_action"], closed["event_action"]) == ("trigger", "resolve")
    assert opened["dedup_key"] == closed["dedup_key"] == "twin:ep-1"
    assert opened["routing_key"] == closed["routing_key"] == "RK"
    body = opened["payload"]
    assert body["severity"] == pd_severity
    assert body["source"] == "twin/op-node"
    assert body["summary"].startswith("Incident on twin: op-node unsafeL2: Sequencer stalled")
    assert body["custom_details"]["Evidence"] == list(anomaly().evidence)


def test_pagerduty_keys_differ_per_episode_and_chain_and_stay_within_its_limit() -> None:
    assert notices.incident_key("twin", "ep-1") != notices.incident_key("twin", "ep-2")
    assert notices.incident_key("a", "ep-1") != notices.incident_key("b", "ep-1")
    assert len(notices.incident_key("twin", "e" * 400)) <= 255


def test_pagerduty_sends_nothing_for_a_diagnosis() -> None:
    rca = RcaCompleted(
        chain_id="twin",
        episode_id="ep-1",
        anomaly_event_id="an-1",
        root_cause="op-node engine API lost",
        root_cause_class="sequencer_stall",
        affected_components=("op-node",),
        risk_level="high",
        action_plan="restart op-node",
        confidence=0.8,
        engine="rules",
        latency_ms=4,
    )
    assert formats.pagerduty_payload(notices.from_rca(rca), routing_key="RK", dashboard_url=DASHBOARD) is None


def test_webhook_body_is_the_event_plus_kind_and_its_signature_verifies() -> None:
    config = parse_config(
        "channels: [{type: webhook, url: 'https://h.test/in', secret: topsecret}]", environ={}
    )
    notice = notices.from_anomaly(anomaly())

    outbound = formats.render(config.channels[0], notice, dashboard_url=DASHBOARD)

    assert outbound is not None and outbound.url == "https://h.test/in"
    body = json.loads(outbound.body)
    assert body["kind"] == "anomaly_detected"
    assert (body["eventId"], body["episodeId"], body["zScore"]) == (notice.event_id, "ep-1", 0.0)
    expected = hmac.new(b"topsecret", outbound.body, hashlib.sha256).hexdigest()
    assert outbound.headers[formats.SIGNATURE_HEADER] == f"sha256={expected}"
    assert outbound.headers[formats.KIND_HEADER] == "anomaly_detected"


def test_webhook_without_secret_is_unsigned() -> None:
    config = parse_config("channels: [{type: webhook, url: 'https://h.test/in'}]", environ={})
    outbound = formats.render(config.channels[0], notices.from_anomaly(anomaly()), dashboard_url=DASHBOARD)
    assert outbound is not None and formats.SIGNATURE_HEADER not in outbound.headers


def test_only_proposals_waiting_for_a_human_become_notices() -> None:
    assert notices.from_proposal(proposal("auto_approved")) is None
    assert notices.from_proposal(proposal("refused")) is None
    assert notices.from_proposal(proposal()) is not None


@pytest.mark.parametrize(
    ("outcome", "severity"),
    [
        ("failed", "high"),
        ("rolled_back", "high"),
        ("refused", "medium"),
        ("succeeded", "low"),
        ("dry_run", "low"),
    ],
)
def test_an_executed_action_is_as_severe_as_its_outcome(outcome: str, severity: Severity) -> None:
    executed = ActionExecuted.model_validate(
        {
            "chainId": "twin",
            "actionId": "act-1",
            "action": ScaleCpu(component="op-geth", vcpu=4).model_dump(by_alias=True),
            "outcome": outcome,
            "detail": "patched op-geth requests.cpu 2 → 4",
            "dryRun": outcome == "dry_run",
            "startedAt": T0.isoformat(),
            "finishedAt": (T0 + timedelta(seconds=42)).isoformat(),
        }
    )
    notice = notices.from_executed(executed)
    assert notice.severity == severity
    assert notice.title.endswith("on twin: scale op-geth CPU to 4 vCPU")
    assert ("Took", "42s") in notice.fields


def test_a_resolution_is_routed_like_the_opening_this_process_saw() -> None:
    memory = notices.EpisodeSeverities(capacity=2)
    memory.opened(anomaly("critical", episode="ep-a"))
    memory.opened(anomaly("low", episode="ep-b"))
    memory.opened(anomaly("high", episode="ep-c"))

    assert (memory.of("ep-a"), memory.of("ep-b"), memory.of("ep-c")) == (None, "low", "high")

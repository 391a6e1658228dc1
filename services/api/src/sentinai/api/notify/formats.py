"""Notices as each receiver wants them: Slack Block Kit, Discord embeds, PagerDuty Events v2, signed JSON.

Pure functions: a notice (plus the channel's settings) in, a request body out. Text from the chain
(log lines, descriptions) is escaped for Slack and cannot mention anyone on Discord.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

from sentinai.api.notify.config import (
    AnyChannel,
    DiscordChannel,
    PagerDutyChannel,
    SlackChannel,
    WebhookChannel,
)
from sentinai.api.notify.notices import Notice, incident_key
from sentinai.common.events import Severity

SIGNATURE_HEADER = "X-SentinAI-Signature"
KIND_HEADER = "X-SentinAI-Kind"
EVENT_ID_HEADER = "X-SentinAI-Event-Id"

DISCORD_COLOURS: dict[Severity, int] = {
    "low": 0x3498DB,
    "medium": 0xF1C40F,
    "high": 0xE67E22,
    "critical": 0xE74C3C,
}
DISCORD_RESOLVED = 0x2ECC71
DISCORD_UNKNOWN = 0x95A5A6

PAGERDUTY_SEVERITY: dict[Severity, str] = {
    "critical": "critical",
    "high": "error",
    "medium": "warning",
    "low": "info",
}


@dataclass(frozen=True, slots=True)
class Outbound:
    """One HTTP POST to make."""

    url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _dumps(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def approval_link(dashboard_url: str, action_id: str) -> str:
    return f"{dashboard_url.rstrip('/')}/?action={action_id}"


def _slack_escape(text: str) -> str:
    # Slack's mrkdwn treats these three as control characters (links, mentions).
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _label(notice: Notice) -> str:
    if notice.kind == "anomaly_resolved":
        return "RESOLVED"
    return (notice.severity or "unknown").upper()


def _mrkdwn(text: str, limit: int = 3000) -> dict[str, str]:
    return {"type": "mrkdwn", "text": _clip(text, limit)}


def _slack_button(text: str, style: str, url: str) -> dict[str, Any]:
    return {
        "type": "button",
        "action_id": text.lower(),
        "style": style,
        "text": {"type": "plain_text", "text": text},
        "url": url,
    }


def slack_payload(notice: Notice, *, dashboard_url: str) -> dict[str, Any]:
    """Incoming-webhook body: a header, the story, the facts, the evidence, and for a pending action
    Approve/Reject buttons that open the dashboard (links, so no Slack app callback is needed)."""
    facts = [_mrkdwn(f"*{label}*\n{_slack_escape(value)}", 2000) for label, value in notice.fields[:10]]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(notice.title, 150), "emoji": True}},
        {"type": "section", "text": _mrkdwn(_slack_escape(notice.text) or "-")},
        {"type": "section", "fields": facts},
    ]
    if notice.evidence:
        lines = "\n".join(f"• {_slack_escape(line)}" for line in notice.evidence)
        blocks.append({"type": "section", "text": _mrkdwn(f"*Evidence*\n{lines}")})
    if notice.kind == "approval_needed" and notice.action_id is not None:
        link = approval_link(dashboard_url, notice.action_id)
        buttons = [_slack_button("Approve", "primary", link), _slack_button("Reject", "danger", link)]
        blocks.append({"type": "actions", "block_id": "approval", "elements": buttons})
    footer = _mrkdwn(f"SentinAI · {notice.kind} · event {notice.event_id}")
    blocks.append({"type": "context", "elements": [footer]})
    # ``text`` is what the phone notification and screen readers show.
    return {"text": _clip(f"[{_label(notice)}] {notice.title}", 3000), "blocks": blocks}


def discord_colour(notice: Notice) -> int:
    if notice.kind == "anomaly_resolved":
        return DISCORD_RESOLVED
    return DISCORD_UNKNOWN if notice.severity is None else DISCORD_COLOURS[notice.severity]


def discord_payload(notice: Notice, *, dashboard_url: str) -> dict[str, Any]:
    """Webhook body: a one-line ``content`` plus an embed coloured by severity."""
    fields = [
        {"name": label, "value": _clip(value or "-", 1024), "inline": True} for label, value in notice.fields
    ]
    if notice.evidence:
        fields.append({"name": "Evidence", "value": _clip("\n".join(notice.evidence), 1024), "inline": False})
    link = None
    if notice.kind == "approval_needed" and notice.action_id is not None:
        link = approval_link(dashboard_url, notice.action_id)
        fields.append({"name": "Decide", "value": f"[Approve]({link}) · [Reject]({link})", "inline": False})
    embed: dict[str, Any] = {
        "title": _clip(notice.title, 256),
        "description": _clip(notice.text or "-", 4096),
        "color": discord_colour(notice),
        "fields": fields[:25],
        "timestamp": notice.occurred_at.isoformat(),
        "footer": {"text": f"SentinAI · {notice.kind} · event {notice.event_id}"},
    }
    if link is not None:
        embed["url"] = link
    return {
        "content": _clip(f"**[{_label(notice)}]** {notice.title}", 2000),
        "embeds": [embed],
        # Log lines and descriptions come from the chain: never let them ping @everyone.
        "allowed_mentions": {"parse": []},
    }


def pagerduty_payload(notice: Notice, *, routing_key: str, dashboard_url: str) -> dict[str, Any] | None:
    """Events API v2: ``trigger`` when an incident opens, ``resolve`` with the same ``dedup_key`` when
    it closes; ``None`` for any other notice (it is not an incident's opening or end)."""
    if notice.episode_id is None or notice.kind not in ("anomaly_detected", "anomaly_resolved"):
        return None
    dedup_key = incident_key(notice.chain_id, notice.episode_id)
    if notice.kind == "anomaly_resolved":
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": dedup_key}
    details: dict[str, Any] = {label: value for label, value in notice.fields}
    details["Evidence"] = list(notice.evidence)
    details["Episode"] = notice.episode_id
    details["Event id"] = notice.event_id
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "payload": {
            "summary": _clip(f"{notice.title}: {notice.text}", 1024),
            "source": f"{notice.chain_id}/{notice.source}",
            "severity": PAGERDUTY_SEVERITY[notice.severity or "low"],
            "timestamp": notice.occurred_at.isoformat(),
            "component": notice.source,
            "group": notice.chain_id,
            "class": str(notice.event.get("metric", notice.kind)),
            "custom_details": details,
        },
        "client": "SentinAI",
        "client_url": dashboard_url,
    }


def webhook_body(notice: Notice) -> bytes:
    """The event as it travelled on the bus, plus ``kind`` saying why it was sent."""
    return _dumps({**notice.event, "kind": notice.kind})


def signature(body: bytes, secret: str) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of the exact body bytes, as the receiver recomputes it."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def render(channel: AnyChannel, notice: Notice, *, dashboard_url: str) -> Outbound | None:
    """The request ``channel`` should receive for ``notice``; ``None`` if it has nothing to send."""
    json_headers = {"Content-Type": "application/json"}
    match channel:
        case SlackChannel():
            body = _dumps(slack_payload(notice, dashboard_url=dashboard_url))
        case DiscordChannel():
            body = _dumps(discord_payload(notice, dashboard_url=dashboard_url))
        case PagerDutyChannel():
            payload = pagerduty_payload(notice, routing_key=channel.key(), dashboard_url=dashboard_url)
            if payload is None:
                return None
            body = _dumps(payload)
        case WebhookChannel():
            body = webhook_body(notice)
            headers = {**json_headers, KIND_HEADER: notice.kind, EVENT_ID_HEADER: notice.event_id}
            if channel.secret is not None:
                headers[SIGNATURE_HEADER] = signature(body, channel.secret.get_secret_value())
            return Outbound(channel.endpoint(), body, headers)
    return Outbound(channel.endpoint(), body, json_headers)

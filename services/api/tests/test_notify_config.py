"""The notifications file: the shipped example loads, mistakes stop the api with a message saying where."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentinai.api.notify.config import (
    PAGERDUTY_EVENTS_URL,
    NotifyConfigError,
    PagerDutyChannel,
    SlackChannel,
    load_config,
    parse_config,
)

EXAMPLE = Path(__file__).resolve().parents[3] / "deploy" / "notify.example.yaml"
EXAMPLE_ENV = {
    "SENTINAI_SLACK_WEBHOOK_URL": "https://hooks.slack.test/T0/B0/secret-slack",
    "SENTINAI_SLACK_ONCALL_WEBHOOK_URL": "https://hooks.slack.test/T0/B1/secret-oncall",
    "SENTINAI_DISCORD_WEBHOOK_URL": "https://discord.test/api/webhooks/1/secret-discord",
    "SENTINAI_PAGERDUTY_ROUTING_KEY": "R0UT1NGKEY",
    "SENTINAI_WEBHOOK_SECRET": "s3cret",
}


def test_the_example_file_loads_with_its_secrets_from_the_environment() -> None:
    config = load_config(EXAMPLE, environ=EXAMPLE_ENV)

    by_name = {channel.name: channel for channel in config.channels}
    assert list(by_name) == ["ops-slack", "oncall-approvals", "discord", "pagerduty", "audit-sink"]
    pager = by_name["pagerduty"]
    assert isinstance(pager, PagerDutyChannel)
    assert pager.key() == "R0UT1NGKEY" and pager.endpoint() == PAGERDUTY_EVENTS_URL
    assert by_name["ops-slack"].endpoint() == EXAMPLE_ENV["SENTINAI_SLACK_WEBHOOK_URL"]
    # Secrets never show when the config is printed or logged.
    assert "secret-slack" not in repr(config) and "R0UT1NGKEY" not in repr(config)


def test_a_missing_secret_variable_names_the_channel_field_and_variable() -> None:
    env = {k: v for k, v in EXAMPLE_ENV.items() if k != "SENTINAI_PAGERDUTY_ROUTING_KEY"}

    with pytest.raises(NotifyConfigError) as caught:
        load_config(EXAMPLE, environ=env)

    message = str(caught.value)
    assert str(EXAMPLE) in message
    assert "channels.3" in message and "SENTINAI_PAGERDUTY_ROUTING_KEY is not set" in message


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        pytest.param("channels: []", "channels", id="no-channels"),
        pytest.param(
            "channels: [{type: slack, url: 'https://a.test', url_env: X}]",
            "either url or url_env",
            id="url-and-url-env",
        ),
        pytest.param("channels: [{type: slack}]", "url (or url_env) is required", id="no-url"),
        pytest.param(
            "channels: [{type: slack, url: 'ftp://a.test'}]", "http:// or https://", id="bad-scheme"
        ),
        pytest.param(
            "channels: [{type: pagerduty, routing_key: k, events: [rca_completed]}]",
            "pagerduty only takes",
            id="pager-for-non-incidents",
        ),
        pytest.param("channels: [{type: teams, url: 'https://a.test'}]", "teams", id="unknown-type"),
        pytest.param(
            "channels: [{type: slack, url: 'https://a.test', min_sevrity: high}]",
            "min_sevrity",
            id="typo-is-not-ignored",
        ),
        pytest.param(
            "channels: [{type: slack, url: 'https://a.test'}, {type: slack, url: 'https://b.test'}]",
            "names must be unique",
            id="two-unnamed-slacks",
        ),
        pytest.param(
            "channels: [{type: slack, url: 'https://a.test', min_severity: high, severities: [low]}]",
            "either min_severity or severities",
            id="two-severity-rules",
        ),
        pytest.param("channels: [oops", "not valid YAML", id="broken-yaml"),
    ],
)
def test_mistakes_are_refused_with_the_reason(yaml_text: str, expected: str) -> None:
    with pytest.raises(NotifyConfigError, match=r"notify\.yaml") as caught:
        parse_config(yaml_text, environ={}, source="notify.yaml")
    assert expected in str(caught.value)


def test_an_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(NotifyConfigError, match="cannot read the notifications file"):
        load_config(tmp_path / "absent.yaml", environ={})


def test_per_severity_routing() -> None:
    config = parse_config(
        """
        channels:
          - {type: slack, name: loud, url: 'https://a.test', min_severity: high}
          - {type: pagerduty, routing_key: k, severities: [critical]}
        """,
        environ={},
    )
    loud, pager = config.channels
    assert isinstance(loud, SlackChannel)
    assert [loud.hears("anomaly_detected", s) for s in ("low", "medium", "high", "critical")] == [
        False,
        False,
        True,
        True,
    ]
    assert [pager.hears("anomaly_detected", s) for s in ("high", "critical")] == [False, True]
    # PagerDuty hears incidents only, and a resolution of unknown severity closes whatever it opened.
    assert not pager.hears("approval_needed", "critical")
    assert pager.hears("anomaly_resolved", None)

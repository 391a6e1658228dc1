"""The notifications file: channels, what each one hears, and how hard delivery tries.

Secrets (webhook URLs, PagerDuty routing keys, signing secrets) may be named by an environment
variable (``url_env`` …) so the file itself can be committed; they are resolved once, at load, and
kept as ``SecretStr`` so they never show in a log line or an error.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from sentinai.common.events import SEVERITY_RANK, Severity

EventKind = Literal[
    "anomaly_detected", "anomaly_resolved", "rca_completed", "approval_needed", "action_executed"
]
EVENT_KINDS: tuple[EventKind, ...] = (
    "anomaly_detected",
    "anomaly_resolved",
    "rca_completed",
    "approval_needed",
    "action_executed",
)
# A page opens with the incident and closes with it; anything else would re-open a resolved alert.
PAGER_KINDS: tuple[EventKind, ...] = ("anomaly_detected", "anomaly_resolved")
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"


class NotifyConfigError(ValueError):
    """The notifications file is missing, unreadable or invalid; the message says where and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Delivery(_Strict):
    """Per-request timeout and the retry schedule shared by every channel."""

    timeout_s: float = Field(default=5.0, gt=0, le=120)
    # Tries in all, the first included.
    attempts: int = Field(default=5, ge=1, le=20)
    # Delay before the first retry; doubled each time up to ``backoff_max_s``, with jitter.
    backoff_s: float = Field(default=1.0, ge=0)
    backoff_max_s: float = Field(default=30.0, ge=0)
    # A receiver's Retry-After is honoured up to this, so one rate limit cannot stall a consumer.
    retry_after_max_s: float = Field(default=60.0, ge=0)

    def worst_case_s(self) -> float:
        """The longest one delivery can take: every try timing out and every wait at its cap."""
        longest_wait = max(self.backoff_max_s, self.retry_after_max_s)
        return self.attempts * self.timeout_s + (self.attempts - 1) * longest_wait


def _secret(data: dict[str, Any], field: str, environ: Mapping[str, str]) -> None:
    """Move ``<field>_env``'s value into ``field``: exactly one of the two may be given."""
    env_field = f"{field}_env"
    name = data.get(env_field)
    if name is None:
        return
    if data.get(field) is not None:
        raise ValueError(f"give either {field} or {env_field}, not both")
    value = environ.get(str(name), "").strip()
    if not value:
        raise ValueError(f"{env_field}: environment variable {name} is not set or empty")
    data[field] = value


class _Channel(_Strict):
    # Names the channel in metrics, logs and dead letters; defaults to the type.
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    url: SecretStr | None = None
    url_env: str | None = None
    min_severity: Severity = "low"
    # Exactly these severities (per-severity routing); replaces ``min_severity`` when given.
    severities: tuple[Severity, ...] | None = None
    events: tuple[EventKind, ...] = EVENT_KINDS
    # Overrides the file's ``dashboard_url`` for this channel's links.
    dashboard_url: str | None = Field(default=None, pattern=r"^https?://")

    @model_validator(mode="before")
    @classmethod
    def _resolve_secrets(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict):
            return data
        environ: Mapping[str, str] = (info.context or {}).get("environ", {})
        resolved = dict(data)
        for field in cls._secret_fields():
            _secret(resolved, field, environ)
        if not resolved.get("name"):
            resolved["name"] = resolved.get("type", "")
        return resolved

    @classmethod
    def _secret_fields(cls) -> tuple[str, ...]:
        return ("url",)

    @field_validator("events")
    @classmethod
    def _some_events(cls, value: tuple[EventKind, ...]) -> tuple[EventKind, ...]:
        if not value:
            raise ValueError("events is empty: the channel would never be used")
        return value

    @model_validator(mode="after")
    def _check(self) -> _Channel:
        if self.url is None:
            raise ValueError("url (or url_env) is required")
        if not self.url.get_secret_value().startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        if self.severities is not None and "min_severity" in self.model_fields_set:
            raise ValueError("give either min_severity or severities, not both")
        return self

    def endpoint(self) -> str:
        assert self.url is not None  # checked by the validator
        return self.url.get_secret_value()

    def hears(self, kind: EventKind, severity: Severity | None) -> bool:
        """Whether this channel wants a notice; an unknown severity (a resolution whose opening this
        process never saw) is let through, since a missed "resolved" leaves an incident open."""
        if kind not in self.events:
            return False
        if severity is None:
            return True
        if self.severities is not None:
            return severity in self.severities
        return SEVERITY_RANK[severity] >= SEVERITY_RANK[self.min_severity]


class SlackChannel(_Channel):
    type: Literal["slack"]


class DiscordChannel(_Channel):
    type: Literal["discord"]


class PagerDutyChannel(_Channel):
    type: Literal["pagerduty"]
    url: SecretStr | None = SecretStr(PAGERDUTY_EVENTS_URL)
    routing_key: SecretStr | None = None
    routing_key_env: str | None = None
    events: tuple[EventKind, ...] = PAGER_KINDS

    @classmethod
    def _secret_fields(cls) -> tuple[str, ...]:
        return ("url", "routing_key")

    @field_validator("events")
    @classmethod
    def _pager_events(cls, value: tuple[EventKind, ...]) -> tuple[EventKind, ...]:
        extra = [kind for kind in value if kind not in PAGER_KINDS]
        if extra:
            raise ValueError(f"pagerduty only takes {', '.join(PAGER_KINDS)}; not {', '.join(extra)}")
        return value

    @model_validator(mode="after")
    def _needs_key(self) -> PagerDutyChannel:
        if self.routing_key is None:
            raise ValueError("routing_key (or routing_key_env) is required")
        return self

    def key(self) -> str:
        assert self.routing_key is not None  # checked by the validator
        return self.routing_key.get_secret_value()


class WebhookChannel(_Channel):
    type: Literal["webhook"]
    # When set, each body is signed: header ``X-SentinAI-Signature: sha256=<hex HMAC of the body>``.
    secret: SecretStr | None = None
    secret_env: str | None = None

    @classmethod
    def _secret_fields(cls) -> tuple[str, ...]:
        return ("url", "secret")


AnyChannel = SlackChannel | DiscordChannel | PagerDutyChannel | WebhookChannel
Channel = Annotated[AnyChannel, Field(discriminator="type")]


class NotifyConfig(_Strict):
    dashboard_url: str = Field(default="http://127.0.0.1:8080", pattern=r"^https?://")
    delivery: Delivery = Delivery()
    channels: tuple[Channel, ...]
    # Consumers are named ``<prefix>-anomalies`` …; every api replica shares them, so each event is
    # notified once however many replicas run.
    durable_prefix: str = Field(default="api-notify", pattern=r"^[A-Za-z0-9_-]{1,32}$")
    # A consumer created for the first time starts this far in the past, never at the stream's start.
    first_start_replay_s: float = Field(default=60.0, ge=0)
    # How far back a starting replica reads incident openings to know each episode's severity.
    episode_memory_s: float = Field(default=86400.0, ge=0)

    @field_validator("channels")
    @classmethod
    def _some_channels(cls, value: tuple[AnyChannel, ...]) -> tuple[AnyChannel, ...]:
        if not value:
            raise ValueError(
                "no channels: list at least one, or unset the notify file to turn notifications off"
            )
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> NotifyConfig:
        names = [channel.name for channel in self.channels]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"channel names must be unique; give each a name: {', '.join(twice)}")
        return self

    def dashboard_for(self, channel: AnyChannel) -> str:
        return (channel.dashboard_url or self.dashboard_url).rstrip("/")


def _problems(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(part) for part in err["loc"]) or "<file>"
        lines.append(f"  {where}: {err['msg'].removeprefix('Value error, ')}")
    return "\n".join(lines)


def parse_config(text: str, *, environ: Mapping[str, str], source: str = "<text>") -> NotifyConfig:
    """Validate YAML ``text``; ``NotifyConfigError`` lists every problem with its location."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise NotifyConfigError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise NotifyConfigError(f"{source}: expected a mapping with a 'channels' list")
    try:
        return NotifyConfig.model_validate(data, context={"environ": environ})
    except ValidationError as exc:
        raise NotifyConfigError(f"{source}: invalid notifications config:\n{_problems(exc)}") from exc


def load_config(path: Path, *, environ: Mapping[str, str] | None = None) -> NotifyConfig:
    """Read and validate the notifications file; secrets named by ``*_env`` come from ``environ``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise NotifyConfigError(f"{path}: cannot read the notifications file: {exc.strerror}") from exc
    return parse_config(text, environ=os.environ if environ is None else environ, source=str(path))

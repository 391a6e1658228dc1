"""Event models carried on the bus.

Every event is a frozen pydantic model with a schema version, a unique ``eventId`` (also used as the
JetStream ``Nats-Msg-Id`` so a retried publish is stored once), a ``correlationId`` that follows one
incident through the services, a timezone-aware ``occurredAt`` and the chain id. JSON uses the
seed's camelCase names (``zScore``, ``rootCause`` …) through aliases.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from sentinai.common import subjects

Severity = Literal["low", "medium", "high", "critical"]
Direction = Literal["up", "down"]
Component = Literal["op-geth", "op-node", "op-batcher", "op-proposer"]
MetricSource = Literal["rpc", "k8s"]
DetectionRule = Literal["zscore", "streaming", "liveness", "log"]

COMPONENTS: tuple[Component, ...] = ("op-geth", "op-node", "op-batcher", "op-proposer")
SEVERITY_RANK: dict[Severity, int] = {"low": 0, "medium": 1, "high": 2, "critical": 3}

SubjectToken = Annotated[str, Field(min_length=1, max_length=64)]


def new_id() -> str:
    return uuid.uuid4().hex


def derived_id(*parts: str | int | float) -> str:
    """The one deterministic event id: 32 lowercase hex digits, blake2b (16 bytes) of the parts.

    The parts are ``str()``-ed and joined by ``|``: ``derived_id("rca", episode_id, basis)`` hashes
    ``"rca|<episode_id>|<basis>"``. Whoever publishes the same event again (a retry, a replay, a
    second replica) derives the same id, so JetStream (``Nats-Msg-Id``) and readers keep it once.
    Lead with a constant naming the kind of event, so two kinds built on the same ids never meet.
    Parts are not escaped: ("a|b", "c") and ("a", "b|c") give the same id.

    Not for subject tokens (``subjects.action_verdict`` hashes an id into a subject, a different
    shape for a different purpose) nor for action ids (``decisions.action_id``, which people type).
    """
    if not parts:
        raise ValueError("derived_id needs at least one part")
    text = "|".join(str(part) for part in parts)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def utcnow() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    """Fields every event carries."""

    model_config = ConfigDict(
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        ser_json_inf_nan="null",
    )

    schema_version: int = 1
    event_id: str = Field(default_factory=new_id, min_length=1, max_length=64)
    correlation_id: str = Field(default_factory=new_id, min_length=1, max_length=64)
    occurred_at: AwareDatetime = Field(default_factory=utcnow)
    chain_id: SubjectToken

    @field_validator("chain_id")
    @classmethod
    def _chain_is_token(cls, value: str) -> str:
        return subjects.token(value)

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()


class MetricSample(Event):
    """One poll of one target: a component's RPC or its pod's Kubernetes metrics.

    ``metrics`` maps a metric name (``blockHeight``, ``cpuUsage``, ``txPoolCount`` …) to its value.
    A target that timed out or errored is published anyway with ``targetUp=False`` and the error, so
    silence is never mistaken for health.
    """

    component: SubjectToken
    source: MetricSource
    metrics: dict[str, float] = Field(default_factory=dict)
    target_up: bool = True
    error: str | None = Field(default=None, max_length=2000)

    @field_validator("component")
    @classmethod
    def _component_is_token(cls, value: str) -> str:
        return subjects.token(value)


class LogBatch(Event):
    """New log lines of one component since the previous poll, oldest first, as printed."""

    component: SubjectToken
    pod: str = ""
    lines: tuple[str, ...]


class AnomalyDetected(Event):
    """The seed's anomaly shape plus ids: ``{metric, value, zScore, direction, severity, description}``.

    ``episodeId`` names the incident episode: one ``anomaly.detected`` opens it and one
    ``anomaly.resolved`` closes it, however many samples it spans.
    """

    episode_id: str = Field(default_factory=new_id)
    component: SubjectToken
    metric: str
    value: float
    z_score: float
    direction: Direction
    severity: Severity
    description: str
    rule: DetectionRule
    evidence: tuple[str, ...] = ()


class AnomalyResolved(Event):
    episode_id: str
    component: SubjectToken
    metric: str
    rule: DetectionRule
    started_at: AwareDatetime
    duration_s: float = Field(ge=0)
    description: str


class DeadLetter(BaseModel):
    """A message a service could not use, kept with the reason so nothing is lost silently."""

    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True)

    service: str
    subject: str
    reason: str
    payload: str
    occurred_at: AwareDatetime = Field(default_factory=utcnow)

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()


E = TypeVar("E", bound=BaseModel)


class MalformedEventError(ValueError):
    """A payload that is not valid JSON for the expected event; permanent, never retried."""


def decode(model: type[E], body: bytes) -> E:
    """Parse ``body`` as ``model`` or raise ``MalformedEventError`` with a readable reason."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()[:5]
        )
        raise MalformedEventError(f"invalid {model.__name__}: {problems}") from exc

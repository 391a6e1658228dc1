"""Every NATS subject SentinAI uses, in one place.

Subjects carry the chain id (and, where it matters, the component) as tokens so that one deployment
watches many chains and consumers filter by wildcard. The design card fixes ``metrics.raw``,
``anomaly.detected``, ``action.proposed`` and ``action.approved``; the rest are ours.
"""

from __future__ import annotations

import hashlib
import re

METRICS_RAW = "metrics.raw"
LOGS_RAW = "logs.raw"
ANOMALY_DETECTED = "anomaly.detected"
ANOMALY_RESOLVED = "anomaly.resolved"
RCA_COMPLETED = "rca.completed"
INCIDENT_RESOLVED = "incident.resolved"
PREDICTION_MADE = "prediction.made"
ACTION_PROPOSED = "action.proposed"
ACTION_APPROVED = "action.approved"
ACTION_EXECUTED = "action.executed"
ACTION_COMMAND = "action.command"
ACTION_REQUESTED = "action.requested"
# Core NATS only (never stored): the planner's verdict on one command or request, for the api waiting on it.
ACTION_VERDICT = "action.verdict"
AUDIT = "audit"
DEAD_LETTER = "deadletter"

METRICS_RAW_ALL = f"{METRICS_RAW}.*.*"
# Every stored sample whether TELEMETRY is partitioned or not: the filter for consumers of all chains.
METRICS_RAW_ANY = f"{METRICS_RAW}.>"
LOGS_RAW_ALL = f"{LOGS_RAW}.*.*"
ANOMALY_DETECTED_ALL = f"{ANOMALY_DETECTED}.*"
ANOMALY_RESOLVED_ALL = f"{ANOMALY_RESOLVED}.*"
ANOMALY_ALL = "anomaly.>"
DEAD_LETTER_ALL = f"{DEAD_LETTER}.>"
RCA_COMPLETED_ALL = f"{RCA_COMPLETED}.*"
INCIDENT_RESOLVED_ALL = f"{INCIDENT_RESOLVED}.*"
PREDICTION_MADE_ALL = f"{PREDICTION_MADE}.*"
ACTION_PROPOSED_ALL = f"{ACTION_PROPOSED}.*"
ACTION_APPROVED_ALL = f"{ACTION_APPROVED}.*"
ACTION_EXECUTED_ALL = f"{ACTION_EXECUTED}.*"
ACTION_COMMAND_ALL = f"{ACTION_COMMAND}.*"
ACTION_REQUESTED_ALL = f"{ACTION_REQUESTED}.*"
ACTION_VERDICT_ALL = f"{ACTION_VERDICT}.>"
AUDIT_ALL = f"{AUDIT}.*"

# A token may not contain NATS separators or wildcards; we also keep it readable in URLs and logs.
_TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class InvalidTokenError(ValueError):
    """A chain id or component name that cannot be used as a subject token."""


def token(value: str) -> str:
    """Return ``value`` if it is a valid subject token, else raise ``InvalidTokenError``."""
    if not _TOKEN.match(value):
        raise InvalidTokenError(f"{value!r} is not a valid subject token (letters, digits, '-', '_')")
    return value


def metrics_raw(chain_id: str, component: str) -> str:
    return f"{METRICS_RAW}.{token(chain_id)}.{token(component)}"


def metrics_raw_chain(chain_id: str, *, partitions: int = 1) -> str:
    """Every component's samples of one chain (a wildcard subject, for subscribing only).

    ``partitions`` > 1 gives the form stored in TELEMETRY (a JetStream filter); core subscribers see
    the subject as published and keep the default.
    """
    if partitions > 1:
        return f"{METRICS_RAW}.{partition_of(chain_id, partitions)}.{token(chain_id)}.*"
    return f"{METRICS_RAW}.{token(chain_id)}.*"


def metrics_raw_component(component: str, *, partitions: int = 1) -> str:
    """One component's samples of every chain (a wildcard subject, for subscribing only)."""
    if partitions > 1:
        return f"{METRICS_RAW}.*.*.{token(component)}"
    return f"{METRICS_RAW}.*.{token(component)}"


def metrics_raw_component_stored(component: str) -> list[str]:
    """One component's stored samples of every chain, partitioned or not (JetStream filters)."""
    return [metrics_raw_component(component), metrics_raw_component(component, partitions=2)]


# ------------------------------------------------------------------------------------ partitions
# With P detector partitions, TELEMETRY stores ``metrics.raw.<chain>.<component>`` as
# ``metrics.raw.<k>.<chain>.<component>`` (a stream subject transform, k = hash(chain) mod P), so
# every chain's samples belong to exactly one detector. Publishers and core subscribers never see
# the partition token; JetStream consumers filter on the stored form.


def metrics_raw_all(partitions: int = 1) -> str:
    """Every stored metric sample: the JetStream filter for ``partitions`` partitions."""
    return f"{METRICS_RAW}.*.*.*" if partitions > 1 else METRICS_RAW_ALL


def metrics_raw_partition(partition: int) -> str:
    """The samples of partition ``partition`` (a JetStream filter on the stored form)."""
    return f"{METRICS_RAW}.{partition}.>"


def metrics_raw_transform(partitions: int) -> tuple[str, str]:
    """Source and destination of the TELEMETRY subject transform that partitions by chain."""
    return (
        METRICS_RAW_ALL,
        f"{METRICS_RAW}.{{{{partition({partitions},1)}}}}.{{{{wildcard(1)}}}}.{{{{wildcard(2)}}}}",
    )


_FNV32_OFFSET = 0x811C9DC5
_FNV32_PRIME = 0x01000193


def partition_of(chain_id: str, partitions: int) -> int:
    """The partition nats-server's ``partition(P,1)`` transform puts ``chain_id`` in (FNV-1a 32 mod P).

    For what the transform cannot reach: log batches, which the owning detector selects itself.
    """
    h = _FNV32_OFFSET
    for byte in token(chain_id).encode():
        h = ((h ^ byte) * _FNV32_PRIME) & 0xFFFFFFFF
    return h % partitions if partitions > 1 else 0


def logs_raw(chain_id: str, component: str) -> str:
    return f"{LOGS_RAW}.{token(chain_id)}.{token(component)}"


def anomaly_detected(chain_id: str) -> str:
    return f"{ANOMALY_DETECTED}.{token(chain_id)}"


def anomaly_resolved(chain_id: str) -> str:
    return f"{ANOMALY_RESOLVED}.{token(chain_id)}"


def rca_completed(chain_id: str) -> str:
    return f"{RCA_COMPLETED}.{token(chain_id)}"


def incident_resolved(chain_id: str) -> str:
    return f"{INCIDENT_RESOLVED}.{token(chain_id)}"


def prediction_made(chain_id: str) -> str:
    return f"{PREDICTION_MADE}.{token(chain_id)}"


def action_proposed(chain_id: str) -> str:
    return f"{ACTION_PROPOSED}.{token(chain_id)}"


def action_approved(chain_id: str) -> str:
    return f"{ACTION_APPROVED}.{token(chain_id)}"


def action_executed(chain_id: str) -> str:
    return f"{ACTION_EXECUTED}.{token(chain_id)}"


def action_command(chain_id: str) -> str:
    return f"{ACTION_COMMAND}.{token(chain_id)}"


def action_requested(chain_id: str) -> str:
    return f"{ACTION_REQUESTED}.{token(chain_id)}"


def action_verdict(chain_id: str, event_id: str) -> str:
    """Where the planner answers the command or request whose ``event_id`` is given (hashed: any id fits)."""
    digest = hashlib.sha256(event_id.encode()).hexdigest()[:32]
    return f"{ACTION_VERDICT}.{token(chain_id)}.{digest}"


def audit(chain_id: str) -> str:
    return f"{AUDIT}.{token(chain_id)}"


def dead_letter(service: str) -> str:
    return f"{DEAD_LETTER}.{token(service)}"


def chain_of(subject: str) -> str | None:
    """The chain token of a chain-scoped subject (``metrics.raw.<chain>.<component>`` …).

    A stored, partitioned sample (``metrics.raw.<k>.<chain>.<component>``) names its chain too.
    """
    parts = subject.split(".")
    if len(parts) == 5 and f"{parts[0]}.{parts[1]}" == METRICS_RAW:
        return parts[3]
    if len(parts) >= 3 and f"{parts[0]}.{parts[1]}" in {
        METRICS_RAW,
        LOGS_RAW,
        ANOMALY_DETECTED,
        ANOMALY_RESOLVED,
        RCA_COMPLETED,
        INCIDENT_RESOLVED,
        PREDICTION_MADE,
        ACTION_PROPOSED,
        ACTION_APPROVED,
        ACTION_EXECUTED,
        ACTION_COMMAND,
        ACTION_REQUESTED,
    }:
        return parts[2]
    if len(parts) == 2 and parts[0] == AUDIT:
        return parts[1]
    return None

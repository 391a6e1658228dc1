"""Every NATS subject SentinAI uses, in one place.

Subjects carry the chain id (and, where it matters, the component) as tokens so that one deployment
watches many chains and consumers filter by wildcard. The design card fixes ``metrics.raw``,
``anomaly.detected``, ``action.proposed`` and ``action.approved``; the rest are ours.
"""

from __future__ import annotations

import re

METRICS_RAW = "metrics.raw"
LOGS_RAW = "logs.raw"
ANOMALY_DETECTED = "anomaly.detected"
ANOMALY_RESOLVED = "anomaly.resolved"
RCA_COMPLETED = "rca.completed"
PREDICTION_MADE = "prediction.made"
ACTION_PROPOSED = "action.proposed"
ACTION_APPROVED = "action.approved"
ACTION_EXECUTED = "action.executed"
ACTION_COMMAND = "action.command"
ACTION_REQUESTED = "action.requested"
AUDIT = "audit"
DEAD_LETTER = "deadletter"

METRICS_RAW_ALL = f"{METRICS_RAW}.*.*"
LOGS_RAW_ALL = f"{LOGS_RAW}.*.*"
ANOMALY_DETECTED_ALL = f"{ANOMALY_DETECTED}.*"
ANOMALY_RESOLVED_ALL = f"{ANOMALY_RESOLVED}.*"
ANOMALY_ALL = "anomaly.>"
DEAD_LETTER_ALL = f"{DEAD_LETTER}.>"
RCA_COMPLETED_ALL = f"{RCA_COMPLETED}.*"
PREDICTION_MADE_ALL = f"{PREDICTION_MADE}.*"
ACTION_PROPOSED_ALL = f"{ACTION_PROPOSED}.*"
ACTION_APPROVED_ALL = f"{ACTION_APPROVED}.*"
ACTION_EXECUTED_ALL = f"{ACTION_EXECUTED}.*"
ACTION_COMMAND_ALL = f"{ACTION_COMMAND}.*"
ACTION_REQUESTED_ALL = f"{ACTION_REQUESTED}.*"
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


def metrics_raw_chain(chain_id: str) -> str:
    """Every component's samples of one chain (a wildcard subject, for subscribing only)."""
    return f"{METRICS_RAW}.{token(chain_id)}.*"


def metrics_raw_component(component: str) -> str:
    """One component's samples of every chain (a wildcard subject, for subscribing only)."""
    return f"{METRICS_RAW}.*.{token(component)}"


def logs_raw(chain_id: str, component: str) -> str:
    return f"{LOGS_RAW}.{token(chain_id)}.{token(component)}"


def anomaly_detected(chain_id: str) -> str:
    return f"{ANOMALY_DETECTED}.{token(chain_id)}"


def anomaly_resolved(chain_id: str) -> str:
    return f"{ANOMALY_RESOLVED}.{token(chain_id)}"


def rca_completed(chain_id: str) -> str:
    return f"{RCA_COMPLETED}.{token(chain_id)}"


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


def audit(chain_id: str) -> str:
    return f"{AUDIT}.{token(chain_id)}"


def dead_letter(service: str) -> str:
    return f"{DEAD_LETTER}.{token(service)}"


def chain_of(subject: str) -> str | None:
    """The chain token of a chain-scoped subject (``metrics.raw.<chain>.<component>`` …)."""
    parts = subject.split(".")
    if len(parts) >= 3 and f"{parts[0]}.{parts[1]}" in {
        METRICS_RAW,
        LOGS_RAW,
        ANOMALY_DETECTED,
        ANOMALY_RESOLVED,
        RCA_COMPLETED,
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

"""The diagnosis engine's input and output types."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from sentinai.common.decisions import ActionExecuted, Corroboration, Hypothesis
from sentinai.common.events import AnomalyDetected, Severity
from sentinai.common.incidents import RootCauseClass
from sentinai.common.settings import ChainRules

DEFAULT_RULES: Final = ChainRules()


@dataclass(frozen=True, slots=True)
class RcaContext:
    """Everything known about one chain when an anomaly arrives; values and lines oldest first."""

    chain_id: str
    anomaly: AnomalyDetected
    active: Sequence[AnomalyDetected]
    metrics: Mapping[str, Mapping[str, Sequence[float]]]
    logs: Mapping[str, Sequence[str]]
    recent_actions: Sequence[ActionExecuted] = ()
    block_time_s: float = 2.0
    # Event times (epoch seconds) parallel to ``metrics`` and ``logs``: how long a signal has held.
    # Absent (tests, old callers), samples are taken one block time apart and lines as one poll.
    metric_times: Mapping[str, Mapping[str, Sequence[float]]] | None = None
    log_times: Mapping[str, Sequence[float]] | None = None
    # The stall multiple and the tx-pool cap, as the service's settings say (the defaults otherwise).
    rules: ChainRules = DEFAULT_RULES


@dataclass(frozen=True, slots=True)
class Diagnosis:
    root_cause: str
    root_cause_class: RootCauseClass
    affected_components: tuple[str, ...]
    risk_level: Severity
    action_plan: str
    hypotheses: tuple[Hypothesis, ...]
    evidence: tuple[str, ...]
    confidence: float
    corroboration: Corroboration | None = None
    # The anomaly episodes this diagnosis explains: the incident is over when they are.
    supporting: tuple[str, ...] = ()

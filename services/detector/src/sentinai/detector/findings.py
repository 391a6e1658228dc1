"""What a rule found: the ``Finding`` before episode bookkeeping, its wording and severity bands.

``zScore`` of each rule kind:

* ``zscore``: (x - mean) / std of the window before x (population std, floored, see ``gauges.std_floor``).
* ``streaming``: the same z of the same window; the streaming model's score (``streaming.py``)
  decides whether it is a finding and its severity, and is quoted in the description.
* ``liveness``: the value over its threshold (a stall of 9 s against 6 s is 1.5); a stall reports
  the block times elapsed instead, because that is the standard unit of an OP Stack head's age;
  binary conditions (target down, no peers, pod not ready) report 1.0, restarts the new restarts.
* ``log``: 0.0: a log line has no baseline to stand out from; ``value`` is the matching lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sentinai.common import catalog
from sentinai.common.events import AnomalyDetected, AnomalyResolved, DetectionRule, Direction, Severity
from sentinai.detector.windows import Baseline

Outcome = AnomalyDetected | AnomalyResolved

TARGET_UP: Final = catalog.TARGET_UP

# Severity bands of the streaming score r / (r + 1): r = 2 and r = 4 times the series' own record.
MEDIUM_SCORE: Final = 2 / 3
HIGH_SCORE: Final = 0.8


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule firing on one event, before episode bookkeeping decides whether to announce it."""

    metric: str
    value: float
    z_score: float
    direction: Direction
    severity: Severity
    description: str
    rule: DetectionRule
    summary: str  # names the episode in its resolution ("CPU spike", "Sequencer stall")
    key: str = ""  # episode key when one metric name is measured twice; defaults to the metric
    evidence: tuple[str, ...] = ()
    baseline: Baseline | None = None  # gauge findings: the window the value departed from

    @property
    def episode_key(self) -> str:
        return self.key or self.metric


def severity_for(z: float) -> Severity:
    """The seed's bands: |z| < 2.5 low, < 3.5 medium, else high (its z = 3.2 example is medium)."""
    magnitude = abs(z)
    if magnitude < 2.5:
        return "low"
    if magnitude < 3.5:
        return "medium"
    return "high"


def streaming_severity(score: float) -> Severity:
    """Bands of the streaming score ``r / (r + 1)``, ``r`` the evidence over the series' own record.

    Under 2/3 (less than twice the largest deviation the series has shown lately) low, under 0.8
    (up to four times it) medium, else high.
    """
    if score < MEDIUM_SCORE:
        return "low"
    if score < HIGH_SCORE:
        return "medium"
    return "high"


def format_value(value: float) -> str:
    if abs(value) >= 10:
        return f"{value:.0f}" if value == int(value) else f"{value:.1f}"
    return f"{value:.3g}"


def label_of(metric: str) -> tuple[str, str]:
    return catalog.LABELS.get(metric, (metric, ""))


def describe_deviation(metric: str, value: float, z: float, *, score: float | None = None) -> str:
    """The seed's wording: ``CPU spike detected: 87.3% (3.2σ above baseline)``, then any score."""
    label, unit = label_of(metric)
    kind, side = ("spike", "above") if z >= 0 else ("drop", "below")
    scored = "" if score is None else f", anomaly score {score:.2f}"
    return f"{label} {kind} detected: {format_value(value)}{unit} ({abs(z):.1f}σ {side} baseline{scored})"


def deviation_finding(metric: str, value: float, z: float, *, score: float | None = None) -> Finding:
    """A deviation of a gauge: judged by the z-score, or by the streaming model when ``score`` is given."""
    label, _ = label_of(metric)
    up = z >= 0
    return Finding(
        metric=metric,
        value=value,
        z_score=round(z, 2),
        direction="up" if up else "down",
        severity=severity_for(z) if score is None else streaming_severity(score),
        description=describe_deviation(metric, value, z, score=score),
        rule="zscore" if score is None else "streaming",
        summary=f"{label} {'spike' if up else 'drop'}",
    )

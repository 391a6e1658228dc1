"""The detector's decisions: gauge scores, liveness rules, log signatures and episodes; no I/O, no clock.

Functions take the state objects of ``windows`` and an event and return the events to publish; the
event's own ``occurredAt`` is the only clock, so a replay decides exactly what the live run did.

``zScore`` of each rule kind:

* ``zscore``: (x - mean) / std of the window before x (population std, floored, see ``std_floor``).
* ``streaming``: the same z of the same window; the streaming model's score (``streaming.py``)
  decides whether it is a finding and its severity, and is quoted in the description.
* ``liveness``: the value over its threshold (a stall of 9 s against 6 s is 1.5); a stall reports
  the block times elapsed instead, because that is the standard unit of an OP Stack head's age;
  binary conditions (target down, no peers, pod not ready) report 1.0, restarts the new restarts.
* ``log``: 0.0: a log line has no baseline to stand out from; ``value`` is the matching lines.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Final, Protocol

from sentinai.common import catalog
from sentinai.common.events import (
    SEVERITY_RANK,
    AnomalyDetected,
    AnomalyResolved,
    DetectionRule,
    Direction,
    LogBatch,
    MetricSample,
    Severity,
)
from sentinai.common.incidents import MARKERS, Marker, spec_of
from sentinai.common.loglines import line_level
from sentinai.detector.settings import DetectorSettings
from sentinai.detector.streaming import StreamingScorer, StreamingSettings
from sentinai.detector.windows import (
    Baseline,
    ChainState,
    ComponentState,
    DetectorState,
    Episode,
    RollingWindow,
)

Outcome = AnomalyDetected | AnomalyResolved

TARGET_UP: Final = "targetUp"

# Gauges judged by a liveness rule instead of a gauge score: a score on an age or a lag would open a
# second episode for the same incident, and cpuRequestCores only moves when someone rescales.
RULE_JUDGED: Final = frozenset(
    {
        catalog.SECONDS_SINCE_HEAD,
        catalog.UNSAFE_L2_AGE,
        catalog.SAFE_L2_AGE,
        catalog.L1_HEAD_AGE,
        catalog.UNSAFE_SAFE_LAG,
        catalog.PEER_COUNT,
        catalog.POD_READY,
        catalog.CPU_REQUEST_CORES,
    }
)
# Absolute twins of judged ratios: cpuUsage is cpuCores over the request and memoryUsage is
# memoryBytes over the limit, so scoring both would open two episodes for one change (and cost a
# third of the scoring time).
TWINS: Final = frozenset({catalog.CPU_CORES, catalog.MEMORY_BYTES})
NOT_SCORED: Final = catalog.MONOTONIC | RULE_JUDGED | TWINS
# Gauges of block production: right after a head outage they show its recovery (one interval that
# spans the outage, then catch-up blocks faster than the block time), not a new incident.
BLOCK_PROGRESS: Final = frozenset(
    {catalog.BLOCK_INTERVAL, catalog.BLOCK_RATE, catalog.SECONDS_SINCE_HEAD, catalog.UNSAFE_L2_AGE}
)
STALL_AGES: Final = (catalog.SECONDS_SINCE_HEAD, catalog.UNSAFE_L2_AGE)
# Components whose RPC being down stops the head as surely as a stall: the sequencing pair.
SEQUENCING: Final = frozenset({"op-geth", "op-node"})

# Severity bands of the streaming score r / (r + 1): r = 2 and r = 4 times the series' own record.
MEDIUM_SCORE: Final = 2 / 3
HIGH_SCORE: Final = 0.8

# Smallest spread treated as real per metric, in the metric's unit: a CPU gauge that sat at exactly
# 40 % must not be "50 sigma above baseline" at 40.3 %. Metrics not listed use only the relative
# floor (0.1 % of the mean, at least 0.001).
_ABS_STD_FLOOR: Final[Mapping[str, float]] = {
    catalog.CPU_USAGE: 0.5,
    catalog.MEMORY_USAGE: 0.5,
    catalog.CPU_CORES: 0.01,
    catalog.MEMORY_BYTES: 1024.0 * 1024.0,
    catalog.GAS_USED_RATIO: 0.01,
    catalog.BLOCK_INTERVAL: 0.05,
    catalog.BLOCK_RATE: 0.05,
    catalog.TX_POOL_COUNT: 1.0,
    catalog.TX_POOL_QUEUED: 1.0,
}


def std_floor(metric: str, mean: float) -> float:
    """The least std a window may have: relative (0.1 % of |mean|, at least 0.001) or per metric."""
    return max(1e-3 * max(1.0, abs(mean)), _ABS_STD_FLOOR.get(metric, 0.0))


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


# ---------------------------------------------------------------------------------------- scoring


class Scorer(Protocol):
    """Judges one gauge value against the memory of its series, which never contains the value."""

    def judge(
        self, component: ComponentState, metric: str, value: float, *, window: RollingWindow, t: float
    ) -> Finding | None:
        """A finding if ``value`` (at ``t``, epoch seconds) is anomalous; the caller pushes the window."""
        ...

    def learn(self, component: ComponentState, metric: str, value: float, *, t: float) -> None:
        """Learn ``value`` without judging it; the caller pushes the window."""
        ...


def z_score(metric: str, value: float, window: RollingWindow) -> float:
    """(value - mean) / std of the window before ``value``, the std floored (``std_floor``)."""
    mean = window.mean
    return (value - mean) / max(window.std, std_floor(metric, mean))


@dataclass(frozen=True, slots=True)
class ZScoreScorer:
    """The seed's z-score, with a minimum history and a floored std so flat series stay quiet."""

    min_points: int
    threshold: float

    def judge(
        self, component: ComponentState, metric: str, value: float, *, window: RollingWindow, t: float
    ) -> Finding | None:
        if window.count < self.min_points:
            return None
        z = z_score(metric, value, window)
        return deviation_finding(metric, value, z) if abs(z) > self.threshold else None

    def learn(self, component: ComponentState, metric: str, value: float, *, t: float) -> None:
        return None  # the window is the whole model


class StreamingGauges:
    """The streaming model (``streaming.py``) of each series, kept next to its window.

    A finding (rule ``streaming``) is a value the model scores at least its alert level *and* whose
    z against the window exceeds the z-score threshold; ``zScore`` and direction come from that z,
    so the event keeps the seed's meaning. The agreement matters in a series' first few hundred
    points: the model's records and context table are still filling and it alerts on values well
    inside the recent range (docs/detection.md), which would also start a cool-down that hides a
    real fault minutes later. Only a finding starts the cool-down; within it only a change in the
    high band (``HIGH_SCORE``) is reported, so a new, much larger fault is not hidden by the last.

    The model learns its first ``warmup`` points (30) without scoring; until then ``young`` (the
    z-score at a higher threshold than the seed's) judges, so a fault in the first minute of a new
    series is not learnt as its baseline, and a fresh deployment does not open an episode for every
    twentieth point of every series.
    """

    __slots__ = ("_alert", "_warmup", "model", "warming", "young")

    def __init__(self, *, model: StreamingScorer, warming: ZScoreScorer, young: ZScoreScorer) -> None:
        self.model = model
        self.warming = warming
        self.young = young
        self._warmup = model.settings.warmup
        self._alert = model.settings.alert

    def judge(
        self, component: ComponentState, metric: str, value: float, *, window: RollingWindow, t: float
    ) -> Finding | None:
        state = component.streams.get(metric)
        if state is None:
            state = component.streams[metric] = self.model.new_state()
        if state.n < self._warmup:
            self.model.raw_score(state, value, t)
            return self.young.judge(component, metric, value, window=window, t=t)
        score = self.model.raw_score(state, value, t)
        if score < self._alert:
            return None
        z = z_score(metric, value, window)
        if abs(z) <= self.warming.threshold:
            return None
        if t < state.cool_until:
            if score < HIGH_SCORE:
                return None
        else:
            self.model.cool_down(state, t)
        return deviation_finding(metric, value, z, score=score)

    def learn(self, component: ComponentState, metric: str, value: float, *, t: float) -> None:
        state = component.streams.get(metric)
        if state is None:
            state = component.streams[metric] = self.model.new_state()
        self.model.raw_score(state, value, t)  # the score is dropped: only the learning is wanted


def live_streaming_settings(settings: DetectorSettings) -> StreamingSettings:
    """The NAB-tuned defaults with the live cool-down: one set for every live series.

    The tiers under the alert (``clean_alert``) are off: they only rank ``StreamingScorer.score``'s
    values under the alert level for NAB's threshold sweep, and live findings come from
    ``raw_score``, which they leave unchanged; off, the clean records cost no time per gauge.
    """
    return replace(StreamingSettings(), cooldown_s=settings.streaming_cooldown_s, clean_alert=0.0)


def make_scorer(settings: DetectorSettings) -> Scorer:
    """The scorer of ``settings.mode``."""
    zscore = ZScoreScorer(min_points=settings.min_points, threshold=settings.z_threshold)
    if settings.mode == "zscore":
        return zscore
    young = ZScoreScorer(min_points=settings.min_points, threshold=settings.young_z_threshold)
    return StreamingGauges(
        model=StreamingScorer(live_streaming_settings(settings)), warming=zscore, young=young
    )


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


def score_gauges(
    component: ComponentState,
    metrics: Mapping[str, float],
    *,
    scorer: Scorer,
    window: int,
    t: float,
    settings: DetectorSettings,
) -> list[Finding]:
    """Judge every gauge against its series, then push it: the baseline never contains the point.

    A gauge whose episode is open is not judged (the episode reports it) and learns only values back
    at the episode's baseline (``at_baseline``): a model that learnt the faulty level would take it
    for normal within a few polls (the streaming model's range and records widen, the window's mean
    moves), and then the return to health for news.
    """
    found: list[Finding] = []
    windows = component.windows
    held = {key[0]: e.baseline for key, e in component.episodes.items() if e.baseline is not None}
    for metric, value in metrics.items():
        if metric in NOT_SCORED or not math.isfinite(value):
            continue
        series = windows.get(metric)
        if series is None:
            series = windows[metric] = RollingWindow(window)
        baseline = held.get(metric)
        if baseline is None:
            finding = scorer.judge(component, metric, value, window=series, t=t)
            if finding is not None:
                mean = series.mean
                std = max(series.std, std_floor(metric, mean))
                baseline = Baseline(mean=mean, std=std, direction=finding.direction, start=value)
                found.append(replace(finding, baseline=baseline))
        elif at_baseline(baseline, metric, value, settings=settings):
            scorer.learn(component, metric, value, t=t)
        else:
            continue
        series.push(value)
    return found


# --------------------------------------------------------------------------------------- liveness


def liveness_findings(
    component: ComponentState, sample: MetricSample, *, settings: DetectorSettings
) -> list[Finding]:
    """Threshold rules on heads, lags, peers and pods; updates the component's rule memory."""
    if not sample.target_up:
        return [target_down(sample)]
    metrics = sample.metrics
    found: list[Finding] = []
    stall_limit = settings.stall_block_times * settings.block_time_s
    for metric in STALL_AGES:
        age = metrics.get(metric)
        if age is not None and age > stall_limit:
            found.append(stall(metric, age, settings=settings))
    l1_age = metrics.get(catalog.L1_HEAD_AGE)
    if l1_age is not None and l1_age > settings.l1_stale_s:
        found.append(
            Finding(
                metric=catalog.L1_HEAD_AGE,
                value=l1_age,
                z_score=round(l1_age / settings.l1_stale_s, 2),
                direction="up",
                severity="high",
                description=(
                    f"L1 head stale: newest L1 block seen is {l1_age:.0f}s old "
                    f"(threshold {settings.l1_stale_s:.0f}s)"
                ),
                rule="liveness",
                summary="L1 head stale",
            )
        )
    lag = metrics.get(catalog.UNSAFE_SAFE_LAG)
    if lag is not None:
        found.extend(lag_findings(component, lag, threshold=settings.lag_threshold))
    peers = metrics.get(catalog.PEER_COUNT)
    if peers is not None and peers <= 0:
        found.append(no_peers(sample.component, peers))
    restarts = metrics.get(catalog.RESTARTS)
    if restarts is not None:
        found.extend(restart_findings(component, restarts, sample=sample, hold_s=settings.restart_hold_s))
    ready = metrics.get(catalog.POD_READY)
    if ready is not None and ready < 0.5:
        found.append(
            Finding(
                metric=catalog.POD_READY,
                value=ready,
                z_score=1.0,
                direction="down",
                severity="high",
                description=f"Pod not ready: {sample.component} reports podReady=0",
                rule="liveness",
                summary=f"{sample.component} pod not ready",
            )
        )
    memory = metrics.get(catalog.MEMORY_USAGE)
    if memory is not None and memory > settings.memory_threshold_pct:
        found.append(
            Finding(
                metric=catalog.MEMORY_USAGE,
                value=memory,
                z_score=round(memory / settings.memory_threshold_pct, 2),
                direction="up",
                severity="high",
                description=(
                    f"Memory near limit: {sample.component} at {memory:.1f}% of its limit "
                    f"(threshold {settings.memory_threshold_pct:g}%)"
                ),
                rule="liveness",
                summary=f"{sample.component} memory near limit",
            )
        )
    return found


def stall(metric: str, age: float, *, settings: DetectorSettings) -> Finding:
    limit = settings.stall_block_times * settings.block_time_s
    return Finding(
        metric=metric,
        value=age,
        z_score=round(age / settings.block_time_s, 2),
        direction="up",
        severity="high",
        description=(
            f"Sequencer stall: unsafe head has not advanced for {age:.1f}s "
            f"({settings.stall_block_times:g} block times = {limit:.1f}s)"
        ),
        rule="liveness",
        summary="Sequencer stall",
    )


def target_down(sample: MetricSample) -> Finding:
    reason = sample.error or "no answer"
    return Finding(
        metric=TARGET_UP,
        value=0.0,
        z_score=1.0,
        direction="down",
        severity="high",
        description=f"{sample.component} {sample.source} target down: {reason}",
        rule="liveness",
        summary=f"{sample.component} {sample.source} target down",
        key=f"{TARGET_UP}:{sample.source}",
    )


def no_peers(component: str, peers: float) -> Finding:
    # A replica op-node without peers stops hearing unsafe blocks; op-geth peers matter less on OP.
    severity: Severity = "medium" if component == "op-node" else "low"
    return Finding(
        metric=catalog.PEER_COUNT,
        value=peers,
        z_score=1.0,
        direction="down",
        severity=severity,
        description=f"Peer loss: {component} has no peers",
        rule="liveness",
        summary=f"{component} peer loss",
    )


def lag_findings(component: ComponentState, lag: float, *, threshold: float) -> list[Finding]:
    """Unsafe-safe lag over the threshold while still growing: the batcher is not getting data to L1.

    The trend flips only on a change, so a lag that holds still between two polls keeps its trend;
    it turns clean when the safe head catches up (the lag falls) or the lag drops under the threshold.
    """
    previous = component.last_lag
    if previous is not None and lag != previous:
        component.lag_rising = lag > previous
    component.last_lag = lag
    if lag <= threshold or not component.lag_rising:
        return []
    return [
        Finding(
            metric=catalog.UNSAFE_SAFE_LAG,
            value=lag,
            z_score=round(lag / threshold, 2),
            direction="up",
            severity="high" if lag > 2 * threshold else "medium",
            description=(
                f"Safe head falling behind: unsafe-safe lag {lag:.0f} blocks and growing "
                f"(threshold {threshold:.0f} blocks); the batcher may not be posting"
            ),
            rule="liveness",
            summary="Safe head lag",
        )
    ]


def restart_findings(
    component: ComponentState, restarts: float, *, sample: MetricSample, hold_s: float
) -> list[Finding]:
    """A restart count that went up; the episode is held for ``hold_s`` so a crash loop is one episode."""
    previous = component.last_restarts
    component.last_restarts = restarts
    now = sample.occurred_at
    new = 0.0 if previous is None else restarts - previous
    if new > 0:
        component.last_restart_at = now
    elif component.last_restart_at is None or (now - component.last_restart_at).total_seconds() >= hold_s:
        return []
    return [
        Finding(
            metric=catalog.RESTARTS,
            value=restarts,
            z_score=max(1.0, new),
            direction="up",
            severity="high",
            description=f"Pod restarted: {sample.component} restart count is {restarts:.0f}",
            rule="liveness",
            summary=f"{sample.component} restarts",
        )
    ]


# ------------------------------------------------------------------------------------------- logs


MAX_EVIDENCE: Final = 5
_MAX_LINE: Final = 500
# Only markers that may open an anomaly; the others only support a diagnosis already open.
ALARMS: Final[tuple[Marker, ...]] = tuple(m for m in MARKERS if m.alarm)
_ANY_ALARM = re.compile("|".join(f"(?:{m.pattern.pattern})" for m in ALARMS))


@dataclass(slots=True)
class _Hit:
    marker: Marker
    matched: str
    count: int = 0
    evidence: list[str] = field(default_factory=list)


def match_logs(lines: Sequence[str], *, component: str) -> list[Finding]:
    """One finding per incident class whose markers matched, quoting up to five matching lines.

    Every marker is tried on every line: a line that carries two classes' messages counts for both.
    """
    hits: dict[str, _Hit] = {}
    for line in lines:
        if _ANY_ALARM.search(line) is None:
            continue
        level = line_level(line)
        counted: set[str] = set()
        for marker in ALARMS:
            match = marker.matches(line, component=component, level=level)
            if match is None:
                continue
            hit = hits.get(marker.cls)
            if hit is None:
                hit = hits[marker.cls] = _Hit(marker, match.group(0))
            elif SEVERITY_RANK[marker.severity] > SEVERITY_RANK[hit.marker.severity]:
                hit.marker, hit.matched = marker, match.group(0)
            if marker.cls in counted:
                continue
            counted.add(marker.cls)
            hit.count += 1
            if len(hit.evidence) < MAX_EVIDENCE:
                hit.evidence.append(line[:_MAX_LINE])
    findings = []
    for cls, hit in hits.items():
        title = spec_of(cls).title.split(":", 1)[0]
        findings.append(
            Finding(
                metric=f"log:{cls}",
                value=float(hit.count),
                z_score=0.0,
                direction="up",
                severity=hit.marker.severity,
                description=(
                    f'{title}: {component} logged "{hit.matched}" '
                    f"({hit.count} line{'s' if hit.count != 1 else ''})"
                ),
                rule="log",
                summary=title,
                evidence=tuple(hit.evidence),
            )
        )
    return findings


# --------------------------------------------------------------------------------------- episodes


def episode_id(chain: str, component: str, key: str, rule: str, trigger_event_id: str) -> str:
    """Derived from the triggering event, so a replayed trigger republishes the same ids (deduplicated)."""
    text = f"{chain}|{component}|{key}|{rule}|{trigger_event_id}"
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def open_episode(
    finding: Finding, *, chain: str, component: str, trigger_event_id: str, now: datetime
) -> tuple[Episode, AnomalyDetected]:
    eid = episode_id(chain, component, finding.episode_key, finding.rule, trigger_event_id)
    episode = Episode(
        episode_id=eid,
        component=component,
        metric=finding.metric,
        rule=finding.rule,
        summary=finding.summary,
        started_at=now,
        last_seen=now,
        severity=finding.severity,
        baseline=finding.baseline,
    )
    anomaly = AnomalyDetected(
        event_id=eid,
        correlation_id=eid,
        occurred_at=now,
        chain_id=chain,
        episode_id=eid,
        component=component,
        metric=finding.metric,
        value=finding.value,
        z_score=finding.z_score,
        direction=finding.direction,
        severity=finding.severity,
        description=finding.description,
        rule=finding.rule,
        evidence=finding.evidence,
    )
    return episode, anomaly


def refresh_episode(episode: Episode, finding: Finding, *, now: datetime) -> None:
    """A further trigger of an open episode: silent, but it resets the clean count and may escalate."""
    episode.last_seen = now
    episode.clean = 0
    if SEVERITY_RANK[finding.severity] > SEVERITY_RANK[episode.severity]:
        episode.severity = finding.severity


def close_episode(episode: Episode, *, chain: str, now: datetime, why: str) -> AnomalyResolved:
    duration = max(0.0, (now - episode.started_at).total_seconds())
    return AnomalyResolved(
        event_id=hashlib.blake2b(f"{episode.episode_id}|resolved".encode(), digest_size=16).hexdigest(),
        correlation_id=episode.episode_id,
        occurred_at=now,
        chain_id=chain,
        episode_id=episode.episode_id,
        component=episode.component,
        metric=episode.metric,
        rule=episode.rule,
        started_at=episode.started_at,
        duration_s=duration,
        description=f"{episode.summary} resolved after {duration:.1f}s ({why})",
    )


def _evaluated(key: str, sample: MetricSample) -> bool:
    """Whether ``sample`` measured what the episode keyed ``key`` watches (silence is not health)."""
    if key.startswith(TARGET_UP):
        return key == f"{TARGET_UP}:{sample.source}"
    value = sample.metrics.get(key)
    return sample.target_up and value is not None and math.isfinite(value)


def pinned_level(metric: str, *, settings: DetectorSettings) -> float | None:
    """A level that is a condition by itself, whatever the series' baseline: a rise holds at or over it."""
    if metric == catalog.CPU_USAGE:
        return settings.cpu_saturated_pct
    if metric == catalog.MEMORY_USAGE:
        return settings.memory_threshold_pct
    return None


def departure(baseline: Baseline, value: float) -> float:
    """How many of the baseline's stds ``value`` lies out, positive on the side its episode left on."""
    z = (value - baseline.mean) / baseline.std
    return z if baseline.direction == "up" else -z


def pinned(baseline: Baseline, metric: str, value: float, *, settings: DetectorSettings) -> bool:
    """Whether a rise is at or over its pinned level (``pinned_level``)."""
    level = pinned_level(metric, settings=settings)
    return baseline.direction == "up" and level is not None and value >= level


def departed(baseline: Baseline, metric: str, value: float, *, settings: DetectorSettings) -> bool:
    """Whether ``value`` is still away from the level a gauge episode left: its condition holds.

    Away is more than ``z_threshold`` of the baseline's stds out on the side the series left on: the
    deviation both scorers require of a finding, so a value that holds would still be one against the
    level it departed from, and a value back within that band, or past it on the healthy side, would
    not. A rise also holds at or over its pinned level, whatever its baseline.
    """
    return pinned(baseline, metric, value, settings=settings) or (
        departure(baseline, value) > settings.z_threshold
    )


def at_baseline(baseline: Baseline, metric: str, value: float, *, settings: DetectorSettings) -> bool:
    """Whether ``value`` is back within ``z_threshold`` stds of a gauge episode's baseline, either side
    (and under any pinned level): the values its series may learn while the episode is open."""
    return abs(departure(baseline, value)) <= settings.z_threshold and not pinned(
        baseline, metric, value, settings=settings
    )


def successor(episode: Episode, value: float, *, settings: DetectorSettings) -> Finding | None:
    """The finding that supersedes a gauge episode at ``value``, if any.

    A rise that opened under its pinned level and has reached it, more severe now than when it
    opened (the z against the same baseline, in the seed's bands), is news that the smaller rise
    still open must not hide: a busy-day CPU step, then saturation. Memory at its limit needs none:
    it opens a liveness episode of its own.
    """
    baseline, metric = episode.baseline, episode.metric
    if (
        baseline is None
        or metric == catalog.MEMORY_USAGE
        or not pinned(baseline, metric, value, settings=settings)
        or pinned(baseline, metric, baseline.start, settings=settings)
    ):
        return None
    z = (value - baseline.mean) / baseline.std
    finding = replace(deviation_finding(metric, value, z), baseline=replace(baseline, start=value))
    return finding if SEVERITY_RANK[finding.severity] > SEVERITY_RANK[episode.severity] else None


def holds(episode: Episode, sample: MetricSample, *, settings: DetectorSettings) -> bool:
    """Whether an episode that no finding triggered on ``sample`` still shows its condition.

    A gauge episode holds while its value is away from its baseline (``departed``); its scorer cannot
    say, having stopped judging the gauge when the episode opened. A stall also holds while the newest
    block interval is over the stall limit: a head that moves once every 12 s is fresh for a moment
    after each block but has not recovered from a 6 s limit, and the first block after a stall comes
    with the whole stall as its interval. Every other rule fires on each sample its condition holds.
    """
    metrics = sample.metrics
    if episode.baseline is not None:
        return departed(episode.baseline, episode.metric, metrics[episode.metric], settings=settings)
    if episode.rule == "liveness" and episode.metric in STALL_AGES:
        interval = metrics.get(catalog.BLOCK_INTERVAL)
        return interval is not None and interval > settings.stall_block_times * settings.block_time_s
    return False


def new_level(episode: Episode, sample: MetricSample, *, settings: DetectorSettings) -> bool:
    """Whether a gauge episode that holds has held ``rebaseline_s`` at a level that is no condition by
    itself (under any pinned level): the series has moved, and its new level is its baseline now."""
    baseline = episode.baseline
    if baseline is None or (sample.occurred_at - episode.started_at).total_seconds() < settings.rebaseline_s:
        return False
    return not pinned(baseline, episode.metric, sample.metrics[episode.metric], settings=settings)


def is_outage(component: str, key: tuple[str, DetectionRule]) -> bool:
    """Whether the episode keyed ``key`` is a head outage: a stall, or the sequencing pair's RPC down."""
    name, rule = key
    return rule == "liveness" and (
        name in STALL_AGES or (name == f"{TARGET_UP}:rpc" and component in SEQUENCING)
    )


def recovering(chain: ChainState, sample: MetricSample, *, settings: DetectorSettings) -> bool:
    """Whether ``sample`` carries block production still recovering from a head outage.

    It does while a head outage episode of any component of the chain is open, and for
    ``recovery_grace_block_times`` after the last one closed: the first block after the outage (an
    interval that spans it) and the catch-up blocks that follow (faster than the block time) end the
    incident its liveness episode reported, and are no level for a model to learn.
    """
    if sample.metrics.keys().isdisjoint(BLOCK_PROGRESS):
        return False
    grace = settings.recovery_grace_block_times * settings.block_time_s
    for name, component in chain.components.items():
        if any(is_outage(name, key) for key in component.episodes):
            return True
        resolved = component.outage_resolved_at
        if resolved is not None and (sample.occurred_at - resolved).total_seconds() <= grace:
            return True
    return False


def announce(component: ComponentState, finding: Finding, *, sample: MetricSample) -> AnomalyDetected | None:
    """Open an episode for ``finding`` and return its anomaly, or refresh the episode already open."""
    key = (finding.episode_key, finding.rule)
    episode = component.episodes.get(key)
    if episode is not None:
        refresh_episode(episode, finding, now=sample.occurred_at)
        return None
    component.episodes[key], anomaly = open_episode(
        finding,
        chain=sample.chain_id,
        component=sample.component,
        trigger_event_id=sample.event_id,
        now=sample.occurred_at,
    )
    return anomaly


def track_component(
    component: ComponentState,
    findings: Sequence[Finding],
    *,
    sample: MetricSample,
    settings: DetectorSettings,
) -> list[Outcome]:
    """Open, refresh or close the component's metric episodes after one evaluated sample.

    An episode closes after ``resolve_after`` evaluations in a row where its condition no longer
    holds (``holds``); a gauge episode also once it has held long enough to be the series' new level,
    or when a saturation supersedes it (``successor``), which opens the next one.
    """
    now = sample.occurred_at
    episodes = component.episodes
    out: list[Outcome] = [a for f in findings if (a := announce(component, f, sample=sample)) is not None]
    triggered = {(f.episode_key, f.rule) for f in findings}
    successors: list[Finding] = []
    resolve_after = settings.resolve_after
    for key, episode in list(episodes.items()):
        if key in triggered or not _evaluated(key[0], sample):
            continue
        next_finding = successor(episode, sample.metrics.get(episode.metric, math.nan), settings=settings)
        if next_finding is not None:
            successors.append(next_finding)
            why = f"superseded: {next_finding.description}"
        elif not holds(episode, sample, settings=settings):
            episode.clean += 1
            if episode.clean < resolve_after:
                continue
            why = f"{resolve_after} clean evaluation{'s' if resolve_after != 1 else ''}"
        elif new_level(episode, sample, settings=settings):
            # The series' model knows only the level it left: it starts again from the new one.
            component.windows.pop(episode.metric, None)
            component.streams.pop(episode.metric, None)
            why = f"held {settings.rebaseline_s:g}s: taken as the new level"
        else:
            episode.last_seen = now
            episode.clean = 0
            continue
        del episodes[key]
        if is_outage(sample.component, key):
            component.outage_resolved_at = now
        out.append(close_episode(episode, chain=sample.chain_id, now=now, why=why))
    out += [a for f in successors if (a := announce(component, f, sample=sample)) is not None]
    return out


def expire_log_episodes(chain: ChainState, *, chain_id: str, now: datetime, quiet_s: float) -> list[Outcome]:
    """Close log episodes with no matching line for ``quiet_s`` of event time."""
    out: list[Outcome] = []
    for key, episode in list(chain.log_episodes.items()):
        if (now - episode.last_seen).total_seconds() >= quiet_s:
            del chain.log_episodes[key]
            why = f"no matching log line for {quiet_s:g}s"
            out.append(close_episode(episode, chain=chain_id, now=now, why=why))
    return out


# ------------------------------------------------------------------------------------ entry points


def evaluate_sample(
    state: DetectorState,
    sample: MetricSample,
    *,
    settings: DetectorSettings,
    scorer: Scorer,
    warmup: bool = False,
) -> list[Outcome]:
    """Everything one metric sample decides. ``warmup`` only rebuilds windows (replayed history)."""
    if not state.seen.add(sample.event_id):
        return []
    chain = state.chain(sample.chain_id)
    component = chain.component(sample.component)
    findings = (
        []
        if recovering(chain, sample, settings=settings)
        else score_gauges(
            component,
            sample.metrics,
            scorer=scorer,
            window=state.window,
            t=sample.occurred_at.timestamp(),
            settings=settings,
        )
    )
    findings.extend(liveness_findings(component, sample, settings=settings))
    if warmup:
        return []
    out = (
        track_component(component, findings, sample=sample, settings=settings)
        if findings or component.episodes
        else []
    )
    if chain.log_episodes:
        out.extend(
            expire_log_episodes(
                chain, chain_id=sample.chain_id, now=sample.occurred_at, quiet_s=settings.log_quiet_s
            )
        )
    return out


def evaluate_logs(state: DetectorState, batch: LogBatch, *, settings: DetectorSettings) -> list[Outcome]:
    """Everything one batch of log lines decides."""
    if not state.seen.add(batch.event_id):
        return []
    chain = state.chain(batch.chain_id)
    now = batch.occurred_at
    out: list[Outcome] = []
    for finding in match_logs(batch.lines, component=batch.component):
        key = (batch.component, finding.metric)
        episode = chain.log_episodes.get(key)
        if episode is None:
            chain.log_episodes[key], anomaly = open_episode(
                finding,
                chain=batch.chain_id,
                component=batch.component,
                trigger_event_id=batch.event_id,
                now=now,
            )
            out.append(anomaly)
        else:
            refresh_episode(episode, finding, now=now)
    out.extend(expire_log_episodes(chain, chain_id=batch.chain_id, now=now, quiet_s=settings.log_quiet_s))
    return out

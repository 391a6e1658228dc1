"""Gauge scoring and judging: the z-score and streaming scorers, and whether an open gauge episode holds.

A gauge is judged against the memory of its series, which never contains the value judged. Once a
gauge episode is open its scorer stops judging it; the functions at the bottom say, against the
baseline the episode left, whether a value still departs from it, is back at it, has reached a
pinned level, or has held long enough to be the series' new level.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Final, Protocol

from sentinai.common import catalog
from sentinai.common.events import SEVERITY_RANK, MetricSample
from sentinai.detector.findings import HIGH_SCORE, Finding, deviation_finding
from sentinai.detector.settings import DetectorSettings
from sentinai.detector.streaming import StreamingScorer, StreamingSettings
from sentinai.detector.windows import Baseline, ComponentState, Episode, RollingWindow

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


# ------------------------------------------------------------------------------ gauge episodes


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


def new_level(episode: Episode, sample: MetricSample, *, settings: DetectorSettings) -> bool:
    """Whether a gauge episode that holds has held ``rebaseline_s`` at a level that is no condition by
    itself (under any pinned level): the series has moved, and its new level is its baseline now."""
    baseline = episode.baseline
    if baseline is None or (sample.occurred_at - episode.started_at).total_seconds() < settings.rebaseline_s:
        return False
    return not pinned(baseline, episode.metric, sample.metrics[episode.metric], settings=settings)

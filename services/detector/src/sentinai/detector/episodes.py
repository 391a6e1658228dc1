"""Episodes: a run of findings folded into one ``anomaly.detected`` and, once over, one ``anomaly.resolved``.

An episode is keyed by what it watches (a metric, or a target of a source) and its rule; its id
derives from the event that opened it, so a replay republishes the same ids (deduplicated).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

from sentinai.common import catalog
from sentinai.common.events import SEVERITY_RANK, AnomalyDetected, AnomalyResolved, MetricSample, derived_id
from sentinai.detector.findings import TARGET_UP, Finding, Outcome
from sentinai.detector.gauges import departed, new_level, successor
from sentinai.detector.liveness import STALL_AGES, is_outage
from sentinai.detector.settings import DetectorSettings
from sentinai.detector.windows import ChainState, ComponentState, Episode


def episode_id(chain: str, component: str, key: str, rule: str, trigger_event_id: str) -> str:
    """Derived from the triggering event, so a replayed trigger republishes the same ids (deduplicated)."""
    return derived_id("episode", chain, component, key, rule, trigger_event_id)


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
        event_id=derived_id("episode-resolved", episode.episode_id),
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
        return interval is not None and interval > settings.stall_limit_s
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

"""The detector's decisions: a sample or a log batch in, the events to publish out; no I/O, no clock.

Functions take the state objects of ``windows`` and an event and return the events to publish; the
event's own ``occurredAt`` is the only clock, so a replay decides exactly what the live run did.
The rules live by kind: ``gauges`` (z-score and streaming scores, and whether a gauge episode
holds), ``liveness`` (thresholds on heads, lags, peers, pods), ``log_rules`` (catalogue markers),
``episodes`` (opening, refreshing and closing them); ``findings`` says what a rule found and how
(``zScore`` of each rule kind). The names the benchmarks use are re-exported here.
"""

from __future__ import annotations

from sentinai.common.events import LogBatch, MetricSample
from sentinai.detector.episodes import (
    expire_log_episodes,
    open_episode,
    refresh_episode,
    track_component,
)
from sentinai.detector.findings import Outcome
from sentinai.detector.gauges import Scorer, make_scorer, score_gauges, z_score
from sentinai.detector.liveness import liveness_findings, recovering
from sentinai.detector.log_rules import match_logs
from sentinai.detector.settings import DetectorSettings
from sentinai.detector.windows import DetectorState

# What the benchmarks (``bench/eval``, ``bench/nab``) and the bus import from here.
__all__ = ["Outcome", "Scorer", "evaluate_logs", "evaluate_sample", "make_scorer", "match_logs", "z_score"]


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

"""Liveness rules: heads, lags, peers, pods, restarts and memory judged by thresholds, and head outages.

These rules fire on every sample their condition holds (an episode closes after enough samples
where it does not); a head outage (a stall, the sequencing pair's RPC down) also keeps block
production from being judged or learnt while the chain recovers from it (``recovering``).
"""

from __future__ import annotations

from typing import Final

from sentinai.common import catalog
from sentinai.common.events import DetectionRule, MetricSample, Severity
from sentinai.detector.findings import TARGET_UP, Finding
from sentinai.detector.settings import DetectorSettings
from sentinai.detector.windows import ChainState, ComponentState

# Gauges of block production: right after a head outage they show its recovery (one interval that
# spans the outage, then catch-up blocks faster than the block time), not a new incident.
BLOCK_PROGRESS: Final = frozenset(
    {catalog.BLOCK_INTERVAL, catalog.BLOCK_RATE, catalog.SECONDS_SINCE_HEAD, catalog.UNSAFE_L2_AGE}
)
STALL_AGES: Final = (catalog.SECONDS_SINCE_HEAD, catalog.UNSAFE_L2_AGE)
# Components whose RPC being down stops the head as surely as a stall: the sequencing pair.
SEQUENCING: Final = frozenset({"op-geth", "op-node"})


def liveness_findings(
    component: ComponentState, sample: MetricSample, *, settings: DetectorSettings
) -> list[Finding]:
    """Threshold rules on heads, lags, peers and pods; updates the component's rule memory."""
    if not sample.target_up:
        return [target_down(sample)]
    metrics = sample.metrics
    found: list[Finding] = []
    stall_limit = settings.stall_limit_s
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
    limit = settings.stall_limit_s
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

"""Replay of one scenario through detector → rca → planner as pure functions, in event-time order.

Each poll's samples and log batches go to the detector's pure core exactly as its bus handlers hand
them over (warm-up polls only rebuild windows, like a restarted detector replaying history). The rca
stage holds what the rca service holds (its ``ContextStore`` and ``IncidentTracker``) and decides
as it does: one diagnosis per incident, re-published only when the answer changes. The plan stage
calls the planner's core with the planner's own scaling memory and cooldown admission.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from eval_score import Run
from eval_telemetry import Poll

from sentinai.common import catalog
from sentinai.common.decisions import ActionProposed, RcaCompleted
from sentinai.common.events import AnomalyDetected, AnomalyResolved
from sentinai.common.policy import Policy
from sentinai.detector import logic as detector
from sentinai.detector.settings import DetectorSettings
from sentinai.detector.windows import DetectorState
from sentinai.planner import logic as planner
from sentinai.planner.settings import PlannerSettings
from sentinai.rca import logic as rca
from sentinai.rca.context import ContextStore
from sentinai.rca.settings import RcaSettings
from sentinai.rca.tracker import IncidentTracker


@dataclass
class RcaStage:
    """The rca service's decisions without its bus: context, incident tracking, rules diagnosis."""

    settings: RcaSettings
    store: ContextStore
    tracker: IncidentTracker
    latencies_ms: list[float] = field(default_factory=list)

    @classmethod
    def create(cls, settings: RcaSettings) -> RcaStage:
        return cls(
            settings=settings,
            store=ContextStore(
                metric_window=settings.metric_window,
                log_lines=settings.log_lines,
                actions=settings.recent_actions,
            ),
            tracker=IncidentTracker(quiet_s=settings.quiet_s, revise_delta=settings.revise_delta),
        )

    def resolved(self, event: AnomalyResolved) -> None:
        self.store.resolved(event)
        self.tracker.resolved(event)

    def detected(self, anomaly: AnomalyDetected) -> RcaCompleted | None:
        self.store.opened(anomaly)
        trigger = self.tracker.detected(anomaly)
        if trigger is None:
            return None
        started = time.perf_counter()
        ctx = self.store.context(anomaly, block_time_s=self.settings.block_time_s)
        diagnosis = rca.diagnose(ctx)
        latency_ms = (time.perf_counter() - started) * 1000
        self.latencies_ms.append(latency_ms)
        publish = self.tracker.should_publish(
            trigger, root_cause_class=diagnosis.root_cause_class, confidence=diagnosis.confidence
        )
        event = None
        if publish:
            event = rca.to_event(
                diagnosis,
                ctx,
                episode_id=trigger.incident_id,
                engine="rules",
                model=None,
                latency_ms=latency_ms,
                cost_usd=0.0,
                now=anomaly.occurred_at,
            )
            self.tracker.published(
                trigger, root_cause_class=diagnosis.root_cause_class, confidence=diagnosis.confidence
            )
        self.tracker.handled(anomaly.event_id)
        return event


@dataclass
class PlanStage:
    """The planner's reaction to an RCA: its core, its scaling memory and cooldown admission."""

    policy: Policy
    settings: PlannerSettings
    memory: planner.ScalingMemory = field(default_factory=planner.ScalingMemory)

    def plan(self, event: RcaCompleted, *, now: datetime, geth_vcpu: float | None) -> list[ActionProposed]:
        if geth_vcpu is not None:
            # What the predictor's forecasts tell the planner: op-geth's current CPU request.
            self.memory.vcpu[(event.chain_id, "op-geth")] = geth_vcpu
        proposals = planner.plan_rca(
            event,
            policy=self.policy,
            now=now,
            current_vcpu=self.memory.current(event.chain_id),
            min_confidence=self.settings.min_rca_confidence,
            block_time_s=self.settings.block_time_s,
        )
        return planner.admit_scaling(proposals, self.memory, now=now)


def detect(
    state: DetectorState, poll: Poll, *, settings: DetectorSettings, scorer: detector.Scorer
) -> list[detector.Outcome]:
    """What the detector's two handlers decide on one poll's samples and log batches."""
    outcomes: list[detector.Outcome] = []
    for sample in poll.samples:
        outcomes += detector.evaluate_sample(
            state, sample, settings=settings, scorer=scorer, warmup=poll.warmup
        )
    if not poll.warmup:
        for batch in poll.logs:
            outcomes += detector.evaluate_logs(state, batch, settings=settings)
    return outcomes


def replay(
    polls: Iterable[Poll],
    *,
    detector_settings: DetectorSettings,
    rca_stage: RcaStage,
    plan_stage: PlanStage,
) -> Run:
    state = DetectorState.empty(window=detector_settings.window, seen_capacity=detector_settings.seen_ids)
    scorer = detector.make_scorer(detector_settings)
    anomalies: list[tuple[float, AnomalyDetected]] = []
    rcas: list[tuple[float, RcaCompleted]] = []
    proposals: list[tuple[float, ActionProposed]] = []
    geth_vcpu: float | None = None
    for poll in polls:
        outcomes = detect(state, poll, settings=detector_settings, scorer=scorer)
        # The rca service consumes telemetry too; by the time an anomaly reaches it, it has the poll.
        for sample in poll.samples:
            rca_stage.store.add_sample(sample)
            if sample.component == "op-geth" and catalog.CPU_REQUEST_CORES in sample.metrics:
                geth_vcpu = sample.metrics[catalog.CPU_REQUEST_CORES]
        for batch in poll.logs:
            rca_stage.store.add_logs(batch)
        for outcome in outcomes:
            if isinstance(outcome, AnomalyResolved):
                rca_stage.resolved(outcome)
                continue
            anomalies.append((poll.at, outcome))
            event = rca_stage.detected(outcome)
            if event is None:
                continue
            rcas.append((poll.at, event))
            planned = plan_stage.plan(event, now=event.occurred_at, geth_vcpu=geth_vcpu)
            proposals.extend((poll.at, p) for p in planned)
    return Run(anomalies=tuple(anomalies), rcas=tuple(rcas), proposals=tuple(proposals))

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

from bench.eval.score import Run
from bench.eval.telemetry import Poll
from sentinai.common import catalog
from sentinai.common.decisions import ActionProposed, IncidentResolved, RcaCompleted
from sentinai.common.events import AnomalyDetected, AnomalyResolved
from sentinai.common.policy import Policy
from sentinai.detector import logic as detector
from sentinai.detector.settings import DetectorSettings
from sentinai.detector.windows import DetectorState
from sentinai.planner import logic as planner
from sentinai.planner.settings import PlannerSettings
from sentinai.rca import logic as rca
from sentinai.rca.context import ContextStore
from sentinai.rca.service import Diagnoser, Pending, diagnoser_from
from sentinai.rca.settings import RcaSettings


@dataclass
class RcaStage:
    """The rca service's decisions without its bus: its ``Diagnoser`` (context, incident tracking, rules
    diagnosis, re-diagnosis from telemetry), publishing what the service would publish."""

    settings: RcaSettings
    diagnoser: Diagnoser
    latencies_ms: list[float] = field(default_factory=list)

    @classmethod
    def create(cls, settings: RcaSettings) -> RcaStage:
        return cls(settings=settings, diagnoser=diagnoser_from(settings))

    @property
    def store(self) -> ContextStore:
        return self.diagnoser.context

    def resolved(self, event: AnomalyResolved) -> None:
        self.diagnoser.resolved(event)

    def closed(self) -> list[IncidentResolved]:
        return self.diagnoser.closed()

    def detected(self, anomaly: AnomalyDetected) -> RcaCompleted | None:
        started = time.perf_counter()
        pending = self.diagnoser.detected(anomaly)
        event = self._publish(pending, started=started)
        self.diagnoser.tracker.handled(anomaly.event_id)
        return event

    def telemetry(self, chain_id: str, *, now: datetime) -> RcaCompleted | None:
        started = time.perf_counter()
        return self._publish(self.diagnoser.telemetry(chain_id, now=now), started=started)

    def _publish(self, pending: Pending | None, *, started: float) -> RcaCompleted | None:
        """The event the service would publish; the latency of each published diagnosis is kept."""
        if pending is None:
            return None
        latency_ms = (time.perf_counter() - started) * 1000
        self.latencies_ms.append(latency_ms)
        event = rca.to_event(
            pending.diagnosis,
            pending.ctx,
            episode_id=pending.trigger.incident_id,
            basis=pending.basis,
            engine="rules",
            model=None,
            latency_ms=latency_ms,
            cost_usd=0.0,
            now=pending.at,
        )
        self.diagnoser.published(pending)
        return event


@dataclass
class PlanStage:
    """The planner's reaction to RCAs and resolved incidents, through the functions its handlers call.

    Its records are kept in memory as the service keeps them in its state store: every proposal by
    action id (a repeat is a replay, or an upgrade to automatic), the decisions (withdrawals here),
    the resolved incidents (their late diagnoses propose nothing). No executor runs in a replay, so
    no cooldown of its holds.
    """

    policy: Policy
    settings: PlannerSettings
    memory: planner.ScalingMemory = field(default_factory=planner.ScalingMemory)
    proposals: dict[str, ActionProposed] = field(default_factory=dict)
    decisions: dict[str, planner.Decision] = field(default_factory=dict)
    resolved_incidents: set[tuple[str, str]] = field(default_factory=set)

    def plan(self, event: RcaCompleted, *, now: datetime, geth_vcpu: float | None) -> list[ActionProposed]:
        """What the planner publishes on ``action.proposed`` for ``event``: new proposals and upgrades."""
        if geth_vcpu is not None:
            # What the predictor's forecasts tell the planner: op-geth's current CPU request.
            self.memory.vcpu[(event.chain_id, "op-geth")] = geth_vcpu
        if (event.chain_id, event.episode_id) in self.resolved_incidents:
            return []
        proposals = planner.plan_rca(
            event,
            policy=self.policy,
            now=now,
            current_vcpu=self.memory.current(event.chain_id),
            min_confidence=self.settings.min_rca_confidence,
            min_notify_confidence=self.settings.min_notify_confidence,
            block_time_s=self.settings.block_time_s,
        )
        published: list[ActionProposed] = []
        for fresh in planner.admit_scaling(proposals, self.memory, now=now):
            aid = fresh.action_id
            known = self.proposals.get(aid)
            out = fresh if known is None else planner.upgrade(known, self.decisions.get(aid), fresh)
            if out is None:
                continue  # a replay: the service publishes nothing
            self.proposals[out.action_id] = out
            published.append(out)
        return published

    def resolved(self, event: IncidentResolved) -> list[ActionProposed]:
        """Withdraw the incident's proposals still waiting for approval, as the planner does; returns them."""
        self.resolved_incidents.add((event.chain_id, event.incident_id))
        waiting = [p for p in self.proposals.values() if p.action_id not in self.decisions]
        withdrawn = planner.withdrawable(waiting, event)
        for proposal in withdrawn:
            self.decisions[proposal.action_id] = "withdrawn"
        return withdrawn


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
        events: list[RcaCompleted] = []
        for outcome in outcomes:
            if isinstance(outcome, AnomalyResolved):
                rca_stage.resolved(outcome)
                continue
            anomalies.append((poll.at, outcome))
            event = rca_stage.detected(outcome)
            for over in rca_stage.closed():
                plan_stage.resolved(over)
            if event is not None:
                events.append(event)
        # Then the telemetry it already folded in may re-diagnose an incident still waiting for evidence.
        chains = {sample.chain_id: sample.occurred_at for sample in poll.samples}
        if not poll.warmup:
            for chain_id, at in chains.items():
                event = rca_stage.telemetry(chain_id, now=at)
                for over in rca_stage.closed():
                    plan_stage.resolved(over)
                if event is not None:
                    events.append(event)
        for event in events:
            rcas.append((poll.at, event))
            planned = plan_stage.plan(event, now=event.occurred_at, geth_vcpu=geth_vcpu)
            proposals.extend((poll.at, p) for p in planned)
    return Run(anomalies=tuple(anomalies), rcas=tuple(rcas), proposals=tuple(proposals))

"""The rca's use cases, without a bus: an anomaly, a resolution, or fresh telemetry in; what to publish out.

The bus (``bus.py``) decodes each message and calls one of the functions at the bottom; ``make eval``
drives the ``Diagnoser`` itself, so what the benchmark scores is what the service emits. An incident
is over once every anomaly of it resolved and ``quiet_s`` of calm followed (a flapping condition
keeps it open); ``closed`` hands out those to announce. An incident's answer is not fixed by its
first anomaly: while the incident is open and its answer still waits for corroboration (or is not
yet sure enough to act on), fresh telemetry re-diagnoses it at most once per ``rediagnose_s``, and
the tracker publishes a revision when the answer changes, gains confidence or meets its class's
evidence rule.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from prometheus_client import Counter, Histogram

from sentinai.common.decisions import ActionExecuted, AuditRecorded, IncidentResolved, RcaCompleted
from sentinai.common.events import AnomalyDetected, AnomalyResolved, LogBatch, MetricSample, utcnow
from sentinai.common.settings import ChainRules
from sentinai.rca import llm, logic
from sentinai.rca.context import ContextStore
from sentinai.rca.llm import LlmConfig, Outcome
from sentinai.rca.model import Diagnosis, RcaContext
from sentinai.rca.settings import RcaSettings
from sentinai.rca.tracker import IncidentTracker, Trigger

log = logging.getLogger(__name__)

RCAS = Counter("sentinai_rca_published_total", "RCAs published", ["chain", "root_cause_class", "engine"])
RCA_SECONDS = Histogram(
    "sentinai_rca_seconds",
    "Time from anomaly received to RCA decided",
    buckets=(0.005, 0.02, 0.1, 0.5, 1, 2, 5, 10),
)


class Publisher(Protocol):
    """Where the use cases' events go: the bus in the service (``bus.BusPublisher``), a list in tests."""

    async def rca_completed(self, event: RcaCompleted) -> None: ...

    async def audit(self, record: AuditRecorded) -> None: ...

    async def incident_resolved(self, event: IncidentResolved) -> None: ...


@dataclass(frozen=True, slots=True)
class Pending:
    """A diagnosis the tracker wants published (the LLM may still add to it before it goes out)."""

    trigger: Trigger
    ctx: RcaContext
    diagnosis: Diagnosis
    basis: str  # what the event id derives from: the anomaly, or the telemetry time of a re-diagnosis
    at: datetime  # the event time it was judged at


@dataclass
class Diagnoser:
    context: ContextStore
    tracker: IncidentTracker
    block_time_s: float
    rediagnose_s: float
    # The stall multiple and the pool cap the signatures judge by (``ServiceSettings.chain_rules``).
    rules: ChainRules = field(default_factory=ChainRules)
    latest: dict[str, AnomalyDetected] = field(default_factory=dict)  # incident id → its newest anomaly
    last_resolution: dict[str, str] = field(default_factory=dict)  # chain → how its last anomaly ended
    over: list[IncidentResolved] = field(default_factory=list)  # closed, not yet handed out

    def detected(self, anomaly: AnomalyDetected) -> Pending | None:
        """The diagnosis an anomaly calls for, if the tracker says it is worth publishing.

        An incident of the chain that was already over is closed first (see ``closed``)."""
        self._close(anomaly.chain_id, now=anomaly.occurred_at)
        self.context.opened(anomaly)
        trigger = self.tracker.detected(anomaly)
        if trigger is None:
            return None
        self.latest[trigger.incident_id] = anomaly
        ctx = self.context.context(anomaly, block_time_s=self.block_time_s, rules=self.rules)
        return self._judge(trigger, ctx, now=anomaly.occurred_at, basis=anomaly.event_id)

    def resolved(self, event: AnomalyResolved) -> None:
        self.context.resolved(event)
        self.tracker.resolved(event)
        if (
            event.chain_id in self.tracker.incidents
            and not self.tracker.incidents[event.chain_id].open_episodes
        ):
            self.last_resolution[event.chain_id] = event.description

    def closed(self) -> list[IncidentResolved]:
        """The incidents found over since the last call (every anomaly resolved, then ``quiet_s`` of calm).

        Publishing them lets the planner withdraw the remedies still waiting for approval.
        """
        out, self.over = self.over, []
        return out

    def telemetry(self, chain_id: str, *, now: datetime) -> Pending | None:
        """Fresh telemetry of ``chain_id`` up to ``now``: close its incident if it is over, else
        re-diagnose it if that is due."""
        self._close(chain_id, now=now)
        trigger = self.tracker.due(chain_id, now=now, every_s=self.rediagnose_s)
        if trigger is None:
            return None
        anomaly = self.latest.get(trigger.incident_id)
        if anomaly is None:
            return None
        ctx = self.context.context(anomaly, block_time_s=self.block_time_s, rules=self.rules, now=now)
        return self._judge(trigger, ctx, now=now, basis=f"{anomaly.event_id}@{now.isoformat()}")

    def _close(self, chain_id: str, *, now: datetime) -> None:
        incident = self.tracker.close_quiet(chain_id, now=now)
        if incident is None:
            return
        self.latest.pop(incident.incident_id, None)
        last = self.last_resolution.pop(chain_id, "")
        since = incident.supported_until or incident.quiet_since or now
        quiet = (now - since).total_seconds()
        self.over.append(
            IncidentResolved(
                correlation_id=incident.incident_id,
                occurred_at=now,
                chain_id=chain_id,
                incident_id=incident.incident_id,
                resolved_at=since,
                reason=(
                    f"the anomalies it explained resolved, {quiet:.0f}s of calm since"
                    + (f" ({last})" if last else "")
                )[:2000],
            )
        )

    def _judge(self, trigger: Trigger, ctx: RcaContext, *, now: datetime, basis: str) -> Pending | None:
        diagnosis = logic.diagnose(ctx)
        self.tracker.diagnosed(trigger, now=now)
        if not self.tracker.should_publish(
            trigger,
            root_cause_class=diagnosis.root_cause_class,
            confidence=diagnosis.confidence,
            corroboration=diagnosis.corroboration,
            now=now,
        ):
            return None
        return Pending(trigger, ctx, diagnosis, basis, now)

    def published(self, pending: Pending) -> None:
        now = pending.at
        self.tracker.published(
            pending.trigger,
            root_cause_class=pending.diagnosis.root_cause_class,
            confidence=pending.diagnosis.confidence,
            corroboration=pending.diagnosis.corroboration,
            now=now,
            supporting=pending.diagnosis.supporting,
        )


def diagnoser_from(settings: RcaSettings) -> Diagnoser:
    """The rca's state and use cases as configured: what the service runs and ``make eval`` scores."""
    return Diagnoser(
        context=ContextStore(
            metric_window=settings.metric_window,
            log_lines=settings.log_lines,
            actions=settings.recent_actions,
            metric_horizon_s=settings.metric_horizon_s,
            log_horizon_s=settings.log_horizon_s,
        ),
        tracker=IncidentTracker(
            quiet_s=settings.quiet_s,
            revise_delta=settings.revise_delta,
            revise_every_s=settings.revise_every_s,
        ),
        block_time_s=settings.block_time_s,
        rediagnose_s=settings.rediagnose_s,
        rules=settings.chain_rules,
    )


@dataclass
class Deps:
    """What the use cases read and write: the diagnoser's state, the LLM (optional), the clock."""

    diagnoser: Diagnoser
    llm: LlmConfig | None = None
    clock: Callable[[], datetime] = field(default=utcnow)
    # Chains whose telemetry arrived since the last re-diagnosis pass, with the newest event time.
    touched: dict[str, datetime] = field(default_factory=dict)


def deps_from(settings: RcaSettings) -> Deps:
    """What the service runs with: the configured ``Diagnoser`` and LLM."""
    return Deps(diagnoser=diagnoser_from(settings), llm=llm.config_from(settings))


# ------------------------------------------------------------------------------------ use cases


def fold_sample(sample: MetricSample, deps: Deps) -> None:
    """A metric sample joins the context; its chain is due a re-diagnosis pass (``rediagnose``)."""
    deps.diagnoser.context.add_sample(sample)
    seen = deps.touched.get(sample.chain_id)
    if seen is None or sample.occurred_at > seen:
        deps.touched[sample.chain_id] = sample.occurred_at


def fold_logs(batch: LogBatch, deps: Deps) -> None:
    deps.diagnoser.context.add_logs(batch)


def fold_action(action: ActionExecuted, deps: Deps) -> None:
    deps.diagnoser.context.add_action(action)


async def rediagnose(deps: Deps, *, publisher: Publisher) -> None:
    """Open incidents of the chains just heard from, re-diagnosed when due (confidence grows); then
    the incidents found over are announced."""
    touched, deps.touched = deps.touched, {}
    for chain_id, at in touched.items():
        pending = deps.diagnoser.telemetry(chain_id, now=at)
        if pending is not None:
            await publish_diagnosis(pending, deps, publisher=publisher, started=time.perf_counter())
    await publish_closed(deps, publisher=publisher)


async def anomaly_detected(anomaly: AnomalyDetected, deps: Deps, *, publisher: Publisher) -> None:
    """The RCA an anomaly calls for, published (with any incident it found over) unless the tracker
    holds it back; then the anomaly is marked handled, so a redelivery publishes nothing."""
    started = time.perf_counter()
    pending = deps.diagnoser.detected(anomaly)
    await publish_closed(deps, publisher=publisher)
    if pending is not None:
        await publish_diagnosis(pending, deps, publisher=publisher, started=started)
    RCA_SECONDS.observe(time.perf_counter() - started)
    deps.diagnoser.tracker.handled(anomaly.event_id)


def anomaly_resolved(event: AnomalyResolved, deps: Deps) -> None:
    deps.diagnoser.resolved(event)


async def publish_closed(deps: Deps, *, publisher: Publisher) -> None:
    """Announce the incidents found over, so the planner withdraws what still waits for approval."""
    for over in deps.diagnoser.closed():
        await publisher.incident_resolved(over)


async def publish_diagnosis(
    pending: Pending, deps: Deps, *, publisher: Publisher, started: float
) -> RcaCompleted:
    """A diagnosis the tracker let through: the RCA event, its audit line, metrics; returns the event."""
    # The LLM, when configured, adds to the rules' answer within one deadline; it never decides.
    outcome = (
        Outcome(pending.diagnosis, "rules", None, 0.0)
        if deps.llm is None
        else await llm.consult(pending.ctx, pending.diagnosis, config=deps.llm)
    )
    event = logic.to_event(
        outcome.diagnosis,
        pending.ctx,
        episode_id=pending.trigger.incident_id,
        basis=pending.basis,
        engine=outcome.engine,
        model=outcome.model,
        latency_ms=1000 * (time.perf_counter() - started),
        cost_usd=outcome.cost_usd,
        now=deps.clock(),
    )
    await publisher.rca_completed(event)
    await publisher.audit(logic.audit_of(event, llm_refused=outcome.failure))
    deps.diagnoser.published(pending)
    RCAS.labels(event.chain_id, event.root_cause_class, event.engine).inc()
    log.info(
        "rca published",
        extra={
            "episodeId": event.episode_id,
            "rootCauseClass": event.root_cause_class,
            "confidence": event.confidence,
            "engine": event.engine,
            "latencyMs": round(event.latency_ms, 1),
            "corroboration": event.corroboration.status if event.corroboration else None,
        },
    )
    return event

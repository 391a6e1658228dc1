"""The rca's use cases, without a bus: an anomaly, a resolution, or fresh telemetry in; what to publish out.

The bus (``bus.py``) and ``make eval`` both drive these, so what the benchmark scores is what the
service emits. An incident is over once every anomaly of it resolved and ``quiet_s`` of calm followed
(a flapping condition keeps it open); ``closed`` hands out those to announce. An incident's answer is
not fixed by its first anomaly: while the incident is open and its answer still waits for
corroboration (or is not yet sure enough to act on), fresh telemetry re-diagnoses it at most once per
``rediagnose_s``, and the tracker publishes a revision when the answer changes, gains confidence or
meets its class's evidence rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sentinai.common.decisions import IncidentResolved
from sentinai.common.events import AnomalyDetected, AnomalyResolved
from sentinai.rca import logic
from sentinai.rca.context import ContextStore
from sentinai.rca.model import Diagnosis, RcaContext
from sentinai.rca.settings import RcaSettings
from sentinai.rca.tracker import IncidentTracker, Trigger


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
        ctx = self.context.context(anomaly, block_time_s=self.block_time_s)
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
        ctx = self.context.context(anomaly, block_time_s=self.block_time_s, now=now)
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
    )

"""The api's read model: every subject folded into views the routes and the live stream read.

Pure state: the bus handlers feed it events, the routes read views of it with ``now`` passed in.
Reading never changes it. Every change is also offered to the ``Hub`` for live clients.
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from sentinai.api.actionview import ActionBook, ActionRecord
from sentinai.api.hub import Hub, Update
from sentinai.api.insights import Insights, prediction_view, rca_view
from sentinai.common import catalog
from sentinai.common.decisions import (
    ActionApproved,
    ActionExecuted,
    ActionProposed,
    AuditRecorded,
    PredictionMade,
    RcaCompleted,
)
from sentinai.common.events import AnomalyDetected, AnomalyResolved, MetricSample

CHAIN_METRIC = Gauge(
    "sentinai_chain_metric", "Latest value of a chain's headline metric", ["chain", "metric"]
)
ANOMALIES = Counter("sentinai_anomalies_total", "Anomalies seen by the api", ["chain", "severity"])
RCA_LATENCY = Histogram(
    "sentinai_rca_latency_seconds",
    "Time the rca service took to diagnose an anomaly",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 15, 30, 60),
)
ACTIONS = Counter("sentinai_actions_total", "Executed actions by outcome", ["chain", "outcome"])
APPROVALS_PENDING = Gauge("sentinai_approvals_pending", "Proposals waiting for approval", ["chain"])

HEADLINE = (
    catalog.BLOCK_HEIGHT,
    catalog.CPU_USAGE,
    catalog.TX_POOL_COUNT,
    catalog.GAS_USED_RATIO,
    catalog.BLOCK_INTERVAL,
    catalog.UNSAFE_L2,
    catalog.SAFE_L2,
    catalog.UNSAFE_SAFE_LAG,
    catalog.L1_HEAD_AGE,
)
# What a chart point carries: the seed's five metrics, the sync lags and the CPU request.
POINT = (
    catalog.BLOCK_HEIGHT,
    catalog.CPU_USAGE,
    catalog.TX_POOL_COUNT,
    catalog.GAS_USED_RATIO,
    catalog.BLOCK_INTERVAL,
    catalog.UNSAFE_SAFE_LAG,
    catalog.L1_HEAD_AGE,
)


@dataclass
class AnomalyRecord:
    event: AnomalyDetected
    resolved_at: datetime | None = None

    def view(self) -> dict[str, Any]:
        body = self.event.model_dump(mode="json", by_alias=True)
        body["chain"] = self.event.chain_id
        body["active"] = self.resolved_at is None
        body["resolvedAt"] = None if self.resolved_at is None else self.resolved_at.isoformat()
        return body


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROS = timedelta(microseconds=1)


class ChartRing:
    """A chain's chart points, oldest first, in arrays allocated in full when the chain appears.

    The api's memory per chain is fixed from its first sample on (1,800 points ≈ 130 KB), not grown
    over the window's first half hour; a point is rebuilt as a dict only when it is read.
    """

    FIELDS = (*POINT, "vcpu")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._at = array("q", bytes(8 * capacity))  # microseconds since the epoch
        self._values = array("d", [math.nan]) * (capacity * len(self.FIELDS))
        self._start = 0
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def append(self, at: datetime, point: dict[str, Any]) -> None:
        slot = (self._start + self._count) % self.capacity
        if self._count == self.capacity:
            self._start = (self._start + 1) % self.capacity
        else:
            self._count += 1
        self._at[slot] = (at - _EPOCH) // _MICROS
        base = slot * len(self.FIELDS)
        for i, name in enumerate(self.FIELDS):
            value = point.get(name)
            self._values[base + i] = math.nan if value is None else float(value)

    def since(self, at: datetime) -> list[dict[str, Any]]:
        """The points at or after ``at``, oldest first, as ``ChainView.point`` made them."""
        cutoff = (at - _EPOCH) // _MICROS
        width = len(self.FIELDS)
        out = []
        for k in range(self._count):
            slot = (self._start + k) % self.capacity
            if self._at[slot] < cutoff:
                continue
            point: dict[str, Any] = {"at": (_EPOCH + self._at[slot] * _MICROS).isoformat()}
            base = slot * width
            for i, name in enumerate(self.FIELDS):
                value = self._values[base + i]
                if not math.isnan(value):  # NaN: the metric was not there
                    point[name] = value
            out.append(point)
        return out


@dataclass
class ChainView:
    history_points: int = 1800
    samples: dict[tuple[str, str], MetricSample] = field(default_factory=dict)
    history: ChartRing = field(init=False)

    def __post_init__(self) -> None:
        self.history = ChartRing(self.history_points)

    def point(self, at: datetime) -> dict[str, Any]:
        """The chain's headline values as of now (a chart point), from each component's newest sample."""
        point: dict[str, Any] = {"at": at.isoformat()}
        for sample in self.samples.values():
            for name in POINT:
                if name in sample.metrics and (sample.component == "op-geth" or name not in point):
                    point[name] = sample.metrics[name]
        k8s = self.samples.get(("op-geth", "k8s"))
        if k8s is not None and catalog.CPU_REQUEST_CORES in k8s.metrics:
            point["vcpu"] = k8s.metrics[catalog.CPU_REQUEST_CORES]
        return point

    def record_point(self, at: datetime, point: dict[str, Any]) -> None:
        self.history.append(at, point)

    def newest(self) -> datetime | None:
        return max((s.occurred_at for s in self.samples.values()), default=None)

    def reachable(self, component: str, source: str) -> bool | None:
        sample = self.samples.get((component, source))
        return None if sample is None else sample.target_up


class ReadModel:
    def __init__(
        self,
        *,
        keep_anomalies: int,
        keep_actions: int = 2000,
        keep_audit: int = 20000,
        keep_rcas: int = 1000,
        keep_predictions: int = 360,
        history_points: int = 1800,
        hub: Hub | None = None,
    ) -> None:
        self.chains: dict[str, ChainView] = {}
        self._anomalies: deque[AnomalyRecord] = deque(maxlen=keep_anomalies)
        self._by_episode: dict[str, AnomalyRecord] = {}
        # Open episodes per chain: /api/metrics and /api/chains read these on every request.
        self._active: dict[str, dict[str, AnomalyRecord]] = {}
        self._history_points = history_points
        # The headline gauges' children, looked up once per chain and metric (not per sample).
        self._gauges: dict[tuple[str, str], Any] = {}
        self.actions = ActionBook(keep=keep_actions, keep_audit=keep_audit)
        self.insights = Insights(keep_rcas=keep_rcas, keep_predictions=keep_predictions)
        self.hub = hub if hub is not None else Hub()

    def chain(self, chain_id: str) -> ChainView:
        view = self.chains.get(chain_id)
        if view is None:
            view = self.chains[chain_id] = ChainView(history_points=self._history_points)
        return view

    def _emit(self, kind: str, chain_id: str, data: dict[str, Any]) -> None:
        self.hub.publish(Update(kind, chain_id, data))

    # ---------------------------------------------------------------------------------- telemetry

    def apply_sample(self, sample: MetricSample) -> None:
        chain = self.chain(sample.chain_id)
        key = (sample.component, sample.source)
        current = chain.samples.get(key)
        # Redeliveries and replays may arrive out of order; the newest sample wins.
        if current is not None and current.occurred_at > sample.occurred_at:
            return
        chain.samples[key] = sample
        if sample.component == "op-geth" or sample.source == "rpc":
            for name in HEADLINE:
                if name in sample.metrics:
                    gauge = self._gauges.get((sample.chain_id, name))
                    if gauge is None:
                        gauge = self._gauges[sample.chain_id, name] = CHAIN_METRIC.labels(
                            sample.chain_id, name
                        )
                    gauge.set(sample.metrics[name])
        # One chart point per op-geth poll: the chain's cadence, whatever the other components do.
        if key == ("op-geth", "rpc"):
            point = chain.point(sample.occurred_at)
            chain.record_point(sample.occurred_at, point)
            self._emit("sample", sample.chain_id, {"chainId": sample.chain_id, **point})

    def apply_anomaly(self, anomaly: AnomalyDetected) -> None:
        if anomaly.episode_id in self._by_episode:
            return
        if len(self._anomalies) == self._anomalies.maxlen:
            oldest = self._anomalies[0].event
            self._by_episode.pop(oldest.episode_id, None)
            self._active.get(oldest.chain_id, {}).pop(oldest.episode_id, None)
        record = AnomalyRecord(anomaly)
        self._anomalies.append(record)
        self._by_episode[anomaly.episode_id] = record
        self._active.setdefault(anomaly.chain_id, {})[anomaly.episode_id] = record
        self.chain(anomaly.chain_id)
        ANOMALIES.labels(anomaly.chain_id, anomaly.severity).inc()
        self._emit("anomaly", anomaly.chain_id, record.view())

    def apply_resolved(self, resolved: AnomalyResolved) -> None:
        record = self._by_episode.get(resolved.episode_id)
        if record is not None and record.resolved_at is None:
            record.resolved_at = resolved.occurred_at
            self._active.get(resolved.chain_id, {}).pop(resolved.episode_id, None)
            self._emit("anomaly_resolved", resolved.chain_id, record.view())

    def active_count(self, chain_id: str) -> int:
        return len(self._active.get(chain_id, {}))

    # ------------------------------------------------------------------------------ the decision loop

    def apply_rca(self, rca: RcaCompleted) -> None:
        if self.insights.apply_rca(rca):
            self.chain(rca.chain_id)
            RCA_LATENCY.observe(rca.latency_ms / 1000)
            self._emit("rca", rca.chain_id, rca_view(rca))

    def apply_prediction(self, prediction: PredictionMade) -> None:
        if self.insights.apply_prediction(prediction):
            self.chain(prediction.chain_id)
            self._emit("prediction", prediction.chain_id, prediction_view(prediction))

    def apply_proposed(self, proposal: ActionProposed) -> None:
        self._changed(self.actions.apply_proposed(proposal))

    def apply_action(self, event: ActionApproved | ActionExecuted) -> None:
        record = self.actions.apply(event)
        if record is not None and isinstance(event, ActionExecuted):
            ACTIONS.labels(event.chain_id, event.outcome).inc()
        self._changed(record)

    def apply_audit(self, audit: AuditRecorded) -> None:
        new, record = self.actions.apply_audit(audit)
        if new:
            self._emit("audit", audit.chain_id, audit.model_dump(mode="json", by_alias=True))
        self._changed(record)

    def _changed(self, record: ActionRecord | None) -> None:
        if record is None:
            return
        chain_id = record.proposal.chain_id
        self.chain(chain_id)
        APPROVALS_PENDING.labels(chain_id).set(self.actions.pending_count(chain_id))
        self._emit("action", chain_id, record.view())

    def anomalies(self, *, chain: str | None, active_only: bool, limit: int) -> list[dict[str, Any]]:
        pool: Iterable[AnomalyRecord] = self._anomalies
        if active_only:
            chains = [chain] if chain is not None else list(self._active)
            pool = [r for c in chains for r in self._active.get(c, {}).values()]
        found = []
        for record in sorted(pool, key=lambda r: r.event.occurred_at, reverse=True):
            if chain is not None and record.event.chain_id != chain:
                continue
            if active_only and record.resolved_at is not None:
                continue
            found.append(record.view())
            if len(found) >= limit:
                break
        return found

    def metrics(self, chain_id: str) -> dict[str, Any]:
        chain = self.chains[chain_id]
        components: dict[str, dict[str, Any]] = {}
        flat: dict[str, float] = {}
        for (component, source), sample in sorted(chain.samples.items()):
            components.setdefault(component, {})[source] = {
                "metrics": sample.metrics,
                "targetUp": sample.target_up,
                "error": sample.error,
                "at": sample.occurred_at.isoformat(),
            }
            if component == "op-geth" or source == "rpc":
                for name, value in sample.metrics.items():
                    flat.setdefault(name, value)
        newest = chain.newest()
        return {
            "chainId": chain_id,
            "updatedAt": None if newest is None else newest.isoformat(),
            "metrics": {name: flat[name] for name in HEADLINE if name in flat},
            "components": components,
            "anomalies": self.anomalies(chain=chain_id, active_only=True, limit=100),
        }

    def health(self, *, now: datetime, stale_after_s: float) -> list[dict[str, Any]]:
        report = []
        for chain_id, chain in sorted(self.chains.items()):
            newest = chain.newest()
            age = None if newest is None else (now - newest).total_seconds()
            report.append(
                {
                    "chainId": chain_id,
                    "lastSampleAt": None if newest is None else newest.isoformat(),
                    "ageS": None if age is None else round(age, 3),
                    "fresh": age is not None and age <= stale_after_s,
                    "l2Reachable": chain.reachable("op-geth", "rpc"),
                    "opNodeReachable": chain.reachable("op-node", "rpc"),
                    "k8sReachable": chain.reachable("op-geth", "k8s"),
                }
            )
        return report

    def history(self, chain_id: str, *, since: datetime) -> list[dict[str, Any]]:
        # Points are kept in arrival order, as the stream delivered them.
        return self.chains[chain_id].history.since(since)

    def chain_summaries(self, *, now: datetime, stale_after_s: float) -> list[dict[str, Any]]:
        summaries = []
        for health in self.health(now=now, stale_after_s=stale_after_s):
            chain_id = health["chainId"]
            latest = self.insights.latest_prediction(chain_id)
            summaries.append(
                {
                    "chainId": chain_id,
                    "lastSampleAt": health["lastSampleAt"],
                    "fresh": health["fresh"],
                    "activeAnomalies": self.active_count(chain_id),
                    "pendingApprovals": self.actions.pending_count(chain_id),
                    "latestPrediction": None
                    if latest is None
                    else {
                        "predictedVCpu": latest.predicted_vcpu,
                        "currentVCpu": latest.current_vcpu,
                        "trend": latest.trend,
                        "confidence": latest.confidence,
                        "occurredAt": latest.occurred_at.isoformat(),
                    },
                }
            )
        return summaries

    def decisions(self, *, chain: str | None, limit: int) -> list[dict[str, Any]]:
        """The seed's decision export: anomaly → RCA → proposals → approvals → outcome, newest first.

        One entry per diagnosed incident (its newest RCA, the anomaly that opened it, its proposals);
        proposals without an incident (forecast-driven scaling, operator and agent requests) are
        entries of their own. Anomalies nobody diagnosed are in ``/api/anomalies``, not here.
        """
        by_event = {r.event.event_id: r for r in self._anomalies}
        entries: list[tuple[datetime, dict[str, Any]]] = []
        incidents: set[str] = set()
        for rca in self.insights.incidents(chain=chain):
            incidents.add(rca.episode_id)
            opened = by_event.get(rca.anomaly_event_id)
            entries.append(
                (
                    rca.occurred_at,
                    {
                        "episodeId": rca.episode_id,
                        "chainId": rca.chain_id,
                        "trigger": "anomaly",
                        "anomaly": None if opened is None else opened.view(),
                        "rca": rca_view(rca),
                        "actions": [r.view() for r in self.actions.of_episode(rca.episode_id)],
                    },
                )
            )
        for action in self.actions.records(chain=chain, status="all"):
            proposal = action.proposal
            if proposal.episode_id is not None and proposal.episode_id in incidents:
                continue
            trigger = "prediction" if proposal.proposed_by == "planner" else "request"
            entries.append(
                (
                    proposal.occurred_at,
                    {
                        "episodeId": proposal.episode_id,
                        "chainId": proposal.chain_id,
                        "trigger": "anomaly" if proposal.incident is not None else trigger,
                        "anomaly": None,
                        "rca": None,
                        "actions": [action.view()],
                    },
                )
            )
        entries.sort(key=lambda e: e[0], reverse=True)
        return [body for _, body in entries[:limit]]

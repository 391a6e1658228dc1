"""Bounded recent history per chain (metric windows, log tails, active anomalies, actions) for RCA.

Values and lines keep their event time: a diagnosis sees only what happened within a horizon before
its anomaly. A quiet component's 50-line tail can be hours old, and the last incident's lines must not
explain the next one.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sentinai.common.decisions import ActionExecuted
from sentinai.common.events import AnomalyDetected, AnomalyResolved, LogBatch, MetricSample
from sentinai.common.settings import ChainRules
from sentinai.rca.evidence import TARGET_UP
from sentinai.rca.model import DEFAULT_RULES, RcaContext

LOG_HORIZON_BLOCKS = 40


@dataclass(slots=True)
class ChainHistory:
    metrics: dict[str, dict[str, deque[tuple[datetime, float]]]] = field(default_factory=dict)
    logs: dict[str, deque[tuple[datetime, str]]] = field(default_factory=dict)
    active: dict[str, AnomalyDetected] = field(default_factory=dict)  # episode id → anomaly
    actions: deque[ActionExecuted] = field(default_factory=deque)


class ContextStore:
    def __init__(
        self,
        *,
        metric_window: int = 120,
        log_lines: int = 50,
        actions: int = 20,
        metric_horizon_s: float = 180.0,
        log_horizon_s: float = 120.0,
    ) -> None:
        self.metric_window = metric_window
        self.log_lines = log_lines
        self.max_actions = actions
        self.metric_horizon = timedelta(seconds=metric_horizon_s)
        self.log_horizon = timedelta(seconds=log_horizon_s)
        self.chains: dict[str, ChainHistory] = {}

    def chain(self, chain_id: str) -> ChainHistory:
        history = self.chains.get(chain_id)
        if history is None:
            history = self.chains[chain_id] = ChainHistory(actions=deque(maxlen=self.max_actions))
        return history

    def add_sample(self, sample: MetricSample) -> None:
        windows = self.chain(sample.chain_id).metrics.setdefault(sample.component, {})
        # A silent target is a fact too: op-geth answering nothing is how an OOM kill looks from outside.
        values = {**sample.metrics, TARGET_UP: 1.0 if sample.target_up else 0.0}
        for metric, value in values.items():
            window = windows.get(metric)
            if window is None:
                window = windows[metric] = deque(maxlen=self.metric_window)
            window.append((sample.occurred_at, value))

    def add_logs(self, batch: LogBatch) -> None:
        logs = self.chain(batch.chain_id).logs
        tail = logs.get(batch.component)
        if tail is None:
            tail = logs[batch.component] = deque(maxlen=self.log_lines)
        tail.extend((batch.occurred_at, line) for line in batch.lines)

    def add_action(self, executed: ActionExecuted) -> None:
        self.chain(executed.chain_id).actions.append(executed)

    def opened(self, anomaly: AnomalyDetected) -> None:
        self.chain(anomaly.chain_id).active[anomaly.episode_id] = anomaly

    def resolved(self, resolved: AnomalyResolved) -> None:
        self.chain(resolved.chain_id).active.pop(resolved.episode_id, None)

    def context(
        self,
        anomaly: AnomalyDetected,
        *,
        block_time_s: float,
        now: datetime | None = None,
        rules: ChainRules = DEFAULT_RULES,
    ) -> RcaContext:
        """A snapshot as of ``now`` (default: the anomaly's time); later telemetry must not change a
        diagnosis while it is being made. A re-diagnosis of an open incident passes a later ``now``."""
        history = self.chain(anomaly.chain_id)
        at = anomaly.occurred_at if now is None else max(now, anomaly.occurred_at)
        metrics_since = at - self.metric_horizon
        # Components log on a block cadence (a proposer every few dozen blocks): the horizon covers at
        # least LOG_HORIZON_BLOCKS of this chain, so two of its lines can corroborate at 12 s blocks too.
        logs_since = at - max(self.log_horizon, timedelta(seconds=LOG_HORIZON_BLOCKS * block_time_s))
        metrics = {
            c: {m: [(t, v) for t, v in window if t >= metrics_since] for m, window in ms.items()}
            for c, ms in history.metrics.items()
        }
        logs = {c: [(t, line) for t, line in tail if t >= logs_since] for c, tail in history.logs.items()}
        return RcaContext(
            chain_id=anomaly.chain_id,
            anomaly=anomaly,
            active=tuple(history.active.values()),
            metrics={c: {m: tuple(v for _, v in tv) for m, tv in ms.items()} for c, ms in metrics.items()},
            logs={c: tuple(line for _, line in tail) for c, tail in logs.items()},
            recent_actions=tuple(history.actions),
            block_time_s=block_time_s,
            metric_times={
                c: {m: tuple(t.timestamp() for t, _ in tv) for m, tv in ms.items()}
                for c, ms in metrics.items()
            },
            log_times={c: tuple(t.timestamp() for t, _ in tail) for c, tail in logs.items()},
            rules=rules,
        )

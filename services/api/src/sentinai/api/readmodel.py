"""The api's read model: latest samples and anomalies per chain, folded from the bus.

Pure state: the bus handlers feed it events, the routes read views of it with ``now`` passed in.
Reading never changes it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sentinai.common import catalog
from sentinai.common.events import AnomalyDetected, AnomalyResolved, MetricSample

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


@dataclass
class ChainView:
    samples: dict[tuple[str, str], MetricSample] = field(default_factory=dict)

    def newest(self) -> datetime | None:
        return max((s.occurred_at for s in self.samples.values()), default=None)

    def reachable(self, component: str, source: str) -> bool | None:
        sample = self.samples.get((component, source))
        return None if sample is None else sample.target_up


class ReadModel:
    def __init__(self, *, keep_anomalies: int) -> None:
        self.chains: dict[str, ChainView] = {}
        self._anomalies: deque[AnomalyRecord] = deque(maxlen=keep_anomalies)
        self._by_episode: dict[str, AnomalyRecord] = {}

    def apply_sample(self, sample: MetricSample) -> None:
        chain = self.chains.setdefault(sample.chain_id, ChainView())
        key = (sample.component, sample.source)
        current = chain.samples.get(key)
        # Redeliveries and replays may arrive out of order; the newest sample wins.
        if current is None or current.occurred_at <= sample.occurred_at:
            chain.samples[key] = sample

    def apply_anomaly(self, anomaly: AnomalyDetected) -> None:
        if anomaly.episode_id in self._by_episode:
            return
        if len(self._anomalies) == self._anomalies.maxlen:
            self._by_episode.pop(self._anomalies[0].event.episode_id, None)
        record = AnomalyRecord(anomaly)
        self._anomalies.append(record)
        self._by_episode[anomaly.episode_id] = record
        self.chains.setdefault(anomaly.chain_id, ChainView())

    def apply_resolved(self, resolved: AnomalyResolved) -> None:
        record = self._by_episode.get(resolved.episode_id)
        if record is not None and record.resolved_at is None:
            record.resolved_at = resolved.occurred_at

    def anomalies(self, *, chain: str | None, active_only: bool, limit: int) -> list[dict[str, Any]]:
        found = []
        for record in sorted(self._anomalies, key=lambda r: r.event.occurred_at, reverse=True):
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

"""Bounded per-chain history of op-geth points, merged from the rpc and k8s samples of each poll."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace
from datetime import datetime

from sentinai.common.dedup import SeenIds
from sentinai.common.events import MetricSample
from sentinai.predictor.logic import Point, point_fields

# The collector stamps the rpc and k8s samples of one poll with the same instant.
MERGE_S = 1.0


class History:
    """The last ``max_points`` points of one chain spanning at most ``span_s`` seconds, oldest first."""

    __slots__ = ("_points", "max_points", "newest", "span_s")

    def __init__(self, *, max_points: int, span_s: float) -> None:
        self.max_points = max_points
        self.span_s = span_s
        self._points: deque[Point] = deque(maxlen=max_points)
        self.newest: datetime | None = None

    def add(self, sample: MetricSample) -> None:
        fields = point_fields(sample)
        at = sample.occurred_at
        self.newest = at if self.newest is None else max(self.newest, at)
        if not fields:
            return
        t = at.timestamp()
        last = self._points[-1] if self._points else None
        if last is not None and abs(last.t - t) <= MERGE_S and all(getattr(last, f) is None for f in fields):
            self._points[-1] = replace(last, **fields)
        else:
            self._points.append(
                Point(
                    t=t,
                    cpu_cores=fields.get("cpu_cores"),
                    cpu_request=fields.get("cpu_request"),
                    tx_pool=fields.get("tx_pool"),
                    gas_used_ratio=fields.get("gas_used_ratio"),
                    block_interval=fields.get("block_interval"),
                )
            )
        while self._points and self._points[0].t < t - self.span_s:
            self._points.popleft()

    def points(self) -> list[Point]:
        return list(self._points)

    def __len__(self) -> int:
        return len(self._points)


@dataclass
class PredictorState:
    """Every chain's history and, per chain, the newest sample time already predicted from."""

    max_points: int
    span_s: float
    seen: SeenIds
    chains: dict[str, History] = field(default_factory=dict)
    predicted_at: dict[str, datetime] = field(default_factory=dict)

    def add(self, sample: MetricSample) -> bool:
        """Fold ``sample`` into its chain's history; ``False`` for a redelivered one."""
        if not self.seen.add(sample.event_id):
            return False
        history = self.chains.get(sample.chain_id)
        if history is None:
            history = self.chains[sample.chain_id] = History(max_points=self.max_points, span_s=self.span_s)
        history.add(sample)
        return True

    def due(self) -> list[tuple[str, History]]:
        """Chains with samples newer than their last prediction (a silent chain is not re-predicted)."""
        return [
            (chain, history)
            for chain, history in self.chains.items()
            if history.newest is not None
            and (chain not in self.predicted_at or history.newest > self.predicted_at[chain])
        ]

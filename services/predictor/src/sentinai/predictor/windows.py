"""Bounded per-chain history of op-geth points, merged from the rpc and k8s samples of each poll."""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field
from datetime import datetime

from sentinai.common.dedup import SeenIds
from sentinai.common.events import MetricSample
from sentinai.predictor.model import Point, point_fields

# The collector stamps the rpc and k8s samples of one poll with the same instant.
MERGE_S = 1.0
# A ``Point``'s measured fields, in its order after ``t``.
FIELDS = ("cpu_cores", "cpu_request", "tx_pool", "gas_used_ratio", "block_interval")
INDEX = {name: i for i, name in enumerate(FIELDS)}


class History:
    """The last ``max_points`` points of one chain spanning at most ``span_s`` seconds, oldest first.

    Kept in arrays allocated in full when the chain first appears (a missing value is NaN), so the
    predictor's memory per chain is fixed from its first sample on instead of growing until the
    window is full; ``points()`` builds the ``Point``s when a prediction reads them.
    """

    __slots__ = ("_count", "_start", "_t", "_values", "max_points", "newest", "span_s")

    def __init__(self, *, max_points: int, span_s: float) -> None:
        self.max_points = max_points
        self.span_s = span_s
        self._t = array("d", bytes(8 * max_points))
        self._values = array("d", [math.nan]) * (max_points * len(FIELDS))
        self._start = 0
        self._count = 0
        self.newest: datetime | None = None

    def _slot(self, k: int) -> int:
        """The array slot of the ``k``-th point, oldest first (negative ``k`` from the newest)."""
        return (self._start + (k if k >= 0 else self._count + k)) % self.max_points

    def add(self, sample: MetricSample) -> None:
        fields = point_fields(sample)
        at = sample.occurred_at
        self.newest = at if self.newest is None else max(self.newest, at)
        if not fields:
            return
        t = at.timestamp()
        width = len(FIELDS)
        if self._count:
            last = self._slot(-1) * width
            if abs(self._t[self._slot(-1)] - t) <= MERGE_S and all(
                math.isnan(self._values[last + INDEX[f]]) for f in fields
            ):
                for name, value in fields.items():
                    self._values[last + INDEX[name]] = value
                self._drop_before(t - self.span_s)
                return
        if self._count == self.max_points:
            self._start = (self._start + 1) % self.max_points
        else:
            self._count += 1
        slot = self._slot(-1)
        self._t[slot] = t
        base = slot * width
        for i, name in enumerate(FIELDS):
            self._values[base + i] = fields.get(name, math.nan)
        self._drop_before(t - self.span_s)

    def _drop_before(self, t: float) -> None:
        while self._count and self._t[self._start] < t:
            self._start = (self._start + 1) % self.max_points
            self._count -= 1

    def points(self) -> list[Point]:
        width = len(FIELDS)
        out = []
        for k in range(self._count):
            slot = self._slot(k)
            v = [self._values[slot * width + i] for i in range(width)]
            out.append(Point(self._t[slot], *(None if math.isnan(x) else x for x in v)))
        return out

    def __len__(self) -> int:
        return self._count


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

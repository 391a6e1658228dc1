"""Small state holders of the detector: rolling windows, seen event ids, open episodes, per-series memory."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

from sentinai.common.dedup import SeenIds
from sentinai.common.events import DetectionRule, Direction, Severity
from sentinai.detector.streaming import StreamState


class RollingWindow:
    """The last ``size`` values of one series with their mean and variance in O(1) per push.

    Sliding Welford (replace the oldest value, update mean and the sum of squared deviations) is
    numerically far better than running sum/sum-of-squares for large values with small spread
    (memory in bytes, base fees); a full recomputation every ``size`` replacements bounds the drift.
    """

    __slots__ = ("_m2", "_mean", "_next", "_since_exact", "_values", "count", "size")

    def __init__(self, size: int) -> None:
        if size < 2:
            raise ValueError("a window needs at least two points")
        self.size = size
        self.count = 0
        self._values = [0.0] * size
        self._next = 0
        self._mean = 0.0
        self._m2 = 0.0
        self._since_exact = 0

    def push(self, value: float) -> None:
        if self.count < self.size:
            self._values[self._next] = value
            self.count += 1
            delta = value - self._mean
            self._mean += delta / self.count
            self._m2 += delta * (value - self._mean)
        else:
            old = self._values[self._next]
            self._values[self._next] = value
            new_mean = self._mean + (value - old) / self.size
            self._m2 += (value - old) * (value - new_mean + old - self._mean)
            self._mean = new_mean
            self._since_exact += 1
            if self._since_exact >= self.size:
                self._recompute()
        self._next = (self._next + 1) % self.size

    def _recompute(self) -> None:
        self._since_exact = 0
        self._mean = math.fsum(self._values) / self.size
        self._m2 = math.fsum((v - self._mean) ** 2 for v in self._values)

    @property
    def mean(self) -> float:
        return self._mean

    @property
    def std(self) -> float:
        """Population standard deviation of the values in the window (0 when fewer than two)."""
        if self.count < 2:
            return 0.0
        return math.sqrt(max(self._m2, 0.0) / self.count)

    def values(self) -> list[float]:
        """Oldest first."""
        if self.count < self.size:
            return self._values[: self.count]
        return self._values[self._next :] + self._values[: self._next]


@dataclass(frozen=True, slots=True)
class Baseline:
    """The healthy level a gauge episode departed from: its window just before the first finding."""

    mean: float
    std: float  # floored, as the z-score floors it
    direction: Direction  # the side the series left it on
    start: float  # the value that opened the episode


@dataclass(slots=True)
class Episode:
    """One incident of one series or rule: opened by one anomaly, closed by one resolution."""

    episode_id: str
    component: str
    metric: str
    rule: DetectionRule
    summary: str
    started_at: datetime
    last_seen: datetime
    severity: Severity
    clean: int = 0
    # Gauge episodes only (rules zscore and streaming): they close on a return to this level.
    baseline: Baseline | None = None


@dataclass(slots=True)
class ComponentState:
    """Everything the detector remembers about one component of one chain."""

    windows: dict[str, RollingWindow] = field(default_factory=dict)
    # The streaming model of each gauge next to its window (streaming mode only).
    streams: dict[str, StreamState] = field(default_factory=dict)
    # Keyed by (episode key, rule); the key is the metric name except where one metric name is
    # measured twice (``targetUp`` per source).
    episodes: dict[tuple[str, DetectionRule], Episode] = field(default_factory=dict)
    last_restarts: float | None = None
    last_restart_at: datetime | None = None
    last_lag: float | None = None
    lag_rising: bool = False
    # When this component's last head outage (a stall, or its RPC down) was resolved: the chain's
    # block-production gauges are still catching up for a short grace after it.
    outage_resolved_at: datetime | None = None


@dataclass(slots=True)
class ChainState:
    components: dict[str, ComponentState] = field(default_factory=dict)
    # Log episodes close on a quiet period measured on any later event of the chain.
    log_episodes: dict[tuple[str, str], Episode] = field(default_factory=dict)

    def component(self, name: str) -> ComponentState:
        state = self.components.get(name)
        if state is None:
            state = self.components[name] = ComponentState()
        return state


@dataclass(slots=True)
class DetectorState:
    """All in-memory detector state; the detector that owns a series is the only one to hold it."""

    window: int
    seen: SeenIds
    chains: dict[str, ChainState] = field(default_factory=dict)

    @classmethod
    def empty(cls, *, window: int, seen_capacity: int) -> DetectorState:
        return cls(window=window, seen=SeenIds(seen_capacity))

    def chain(self, name: str) -> ChainState:
        state = self.chains.get(name)
        if state is None:
            state = self.chains[name] = ChainState()
        return state

    def open_episodes(self) -> list[Episode]:
        found: list[Episode] = []
        for chain in self.chains.values():
            found.extend(chain.log_episodes.values())
            for component in chain.components.values():
                found.extend(component.episodes.values())
        return found

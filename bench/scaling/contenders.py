"""The contenders of ``bench.scaling.run``: each sees one observation per step and may ask for a step.

``Live`` is not a model of SentinAI: it drives the live predictor's pure core (``predict``) and the
planner's prediction path (``plan_prediction`` with its cooldown and hysteresis, ``record_executed``)
with the services' own default settings, exactly as their handlers call them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

import numpy as np

from sentinai.common.actions import ScaleCpu, ScaleDown
from sentinai.common.decisions import ActionExecuted
from sentinai.common.policy import Policy
from sentinai.planner import logic as planner
from sentinai.planner.settings import PlannerSettings
from sentinai.predictor import logic as predictor
from sentinai.predictor.logic import Point
from sentinai.predictor.settings import PredictorSettings

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
CHAIN = "bench"


class Contender(Protocol):
    name: str
    # The harness holds back a step asked for within the cooldown; the live planner does it itself.
    own_cooldown: bool

    def start(self, *, ladder: Sequence[float], vcpu: float) -> None: ...

    def decide(self, point: Point) -> float | None:
        """The ladder step wanted after ``point`` (the newest observation), or None for no change."""
        ...

    def executed(self, *, t: float, vcpu: float) -> None:
        """A step this contender asked for has taken effect at ``t``."""
        ...


def tier(cores: float, ladder: Sequence[float]) -> float:
    """The smallest step holding ``cores``; the top step when none does."""
    return next((s for s in ladder if s >= cores - 1e-9), ladder[-1])


@dataclass
class Static:
    vcpu: float
    name: str = ""
    own_cooldown: bool = False

    def __post_init__(self) -> None:
        self.name = self.name or f"static {self.vcpu:g} vCPU"

    def start(self, *, ladder: Sequence[float], vcpu: float) -> None:
        self._asked = False

    def decide(self, point: Point) -> float | None:
        return self.vcpu if point.cpu_request != self.vcpu else None

    def executed(self, *, t: float, vcpu: float) -> None:
        return None


@dataclass
class Vpa:
    """The Kubernetes VPA recommender and updater, on CPU, mapped to the ladder.

    Recommender: a histogram of usage samples (buckets from 0.01 cores growing 5 %), each weighted by
    the pod's request (at least 0.1) and by 2^(age / half-life) with a 24 h half-life; target = the
    ``target`` percentile, lower bound = p50, upper bound = p95, all times 1.15 (safety margin), the
    bounds widened by the history's confidence (lower x (1 + 0.001/days)^-2, upper x (1 + 1/days)).
    Updater: evicts the pod when its request is below the lower bound or above the step holding the
    upper bound, and the new pod gets the step holding the target.
    """

    name: str
    target: float = 0.90
    half_life_s: float = 86_400.0
    own_cooldown: bool = False
    _edges: np.ndarray = field(default_factory=lambda: 0.01 * 1.05 ** np.arange(200))

    def start(self, *, ladder: Sequence[float], vcpu: float) -> None:
        self._ladder = list(ladder)
        self._weights = np.zeros(len(self._edges))
        self._first: float | None = None

    def decide(self, point: Point) -> float | None:
        if point.cpu_cores is None or point.cpu_request is None:
            return None
        self._first = point.t if self._first is None else self._first
        bucket = min(len(self._edges) - 1, int(np.searchsorted(self._edges, point.cpu_cores, side="right")))
        # Weights grow with time instead of old ones decaying: the same ratios, one addition a step.
        growth = 2 ** ((point.t - self._first) / self.half_life_s)
        self._weights[bucket] += max(point.cpu_request, 0.1) * growth
        days = max((point.t - self._first) / 86_400, 1 / 1440)
        target = 1.15 * self._percentile(self.target)
        lower = 1.15 * self._percentile(0.50) * (1 + 0.001 / days) ** -2
        upper = 1.15 * self._percentile(0.95) * (1 + 1 / days)
        current = point.cpu_request
        wanted = tier(target, self._ladder)
        out_of_bounds = current < lower or current > tier(upper, self._ladder)
        return wanted if out_of_bounds and wanted != current else None

    def _percentile(self, q: float) -> float:
        cumulative = np.cumsum(self._weights)
        index = int(np.searchsorted(cumulative, q * cumulative[-1]))
        return float(self._edges[min(index + 1, len(self._edges) - 1)])

    def executed(self, *, t: float, vcpu: float) -> None:
        return None


@dataclass
class Reactive:
    """Up one step when usage reaches 80 % of the allocation; down one step once usage has stayed
    under 80 % of the step below for ``sustain_s``."""

    name: str = "reactive 80 %"
    share: float = 0.8
    sustain_s: float = 600.0
    own_cooldown: bool = False

    def start(self, *, ladder: Sequence[float], vcpu: float) -> None:
        self._ladder = list(ladder)
        self._low_since: float | None = None

    def decide(self, point: Point) -> float | None:
        if point.cpu_cores is None or point.cpu_request is None:
            return None
        current = point.cpu_request
        i = self._ladder.index(current) if current in self._ladder else 0
        if point.cpu_cores >= self.share * current:
            self._low_since = None
            return self._ladder[min(i + 1, len(self._ladder) - 1)] if i + 1 < len(self._ladder) else None
        if i > 0 and point.cpu_cores < self.share * self._ladder[i - 1]:
            self._low_since = point.t if self._low_since is None else self._low_since
            if point.t - self._low_since >= self.sustain_s:
                return self._ladder[i - 1]
        else:
            self._low_since = None
        return None

    def executed(self, *, t: float, vcpu: float) -> None:
        self._low_since = None


@dataclass
class SeedScore:
    """The original's score: CPU % x 0.3 + gas used % x 0.3 + txPool/200 x 0.2 + AI severity x 0.2.

    <30 → 1 vCPU, <70 → 2, <77 → 4, else 8. CPU % is usage over the allocation (what the original
    read from the container); with no LLM the AI severity is 0; a trace without L2 signals scores
    them 0, so CPU alone can never lift the score past 30.
    """

    name: str = "seed score"
    own_cooldown: bool = False

    def start(self, *, ladder: Sequence[float], vcpu: float) -> None:
        self._ladder = list(ladder)

    def decide(self, point: Point) -> float | None:
        if point.cpu_cores is None or not point.cpu_request:
            return None
        cpu = 100 * min(1.0, point.cpu_cores / point.cpu_request)
        gas = 100 * (point.gas_used_ratio or 0.0)
        pool = 100 * min(1.0, (point.tx_pool or 0.0) / 200)
        score = 0.3 * cpu + 0.3 * gas + 0.2 * pool
        wanted = 1.0 if score < 30 else 2.0 if score < 70 else 4.0 if score < 77 else 8.0
        wanted = tier(wanted, self._ladder)
        return wanted if wanted != point.cpu_request else None

    def executed(self, *, t: float, vcpu: float) -> None:
        return None


@dataclass
class Live:
    """SentinAI: the predictor's ``predict`` and the planner's ``plan_prediction``, as deployed."""

    policy: Policy
    predictor_settings: PredictorSettings = field(default_factory=PredictorSettings)
    planner_settings: PlannerSettings = field(default_factory=PlannerSettings)
    forecaster: predictor.Forecaster | None = None
    name: str = "SentinAI"
    own_cooldown: bool = True
    # (decision time, published upper bound) of every prediction, for the coverage check.
    bounds: list[tuple[float, float]] = field(default_factory=list)

    def start(self, *, ladder: Sequence[float], vcpu: float) -> None:
        s = self.predictor_settings
        self._ladder = tuple(ladder)
        self._forecaster = self.forecaster or predictor.StatForecaster(
            block_time_s=s.block_time_s, min_points=s.min_points
        )
        self._history: deque[Point] = deque(maxlen=s.history_points)
        self._memory = planner.ScalingMemory()
        self._actions = 0
        self.bounds = []

    def decide(self, point: Point) -> float | None:
        s = self.predictor_settings
        self._history.append(point)
        while self._history[0].t < point.t - s.history_s:
            self._history.popleft()
        now = EPOCH + timedelta(seconds=point.t)
        prediction = predictor.predict(
            list(self._history),
            forecaster=self._forecaster,
            ladder=self._ladder,
            horizon_s=s.horizon_s,
            headroom=s.headroom,
            down_headroom=s.down_headroom,
            up_tolerance=s.up_tolerance,
            chain_id=CHAIN,
            now=now,
            min_points=s.min_points,
        )
        if prediction is None:
            return None
        self.bounds.append((point.t, prediction.upper_bound_cores))
        proposals = planner.plan_prediction(
            prediction,
            policy=self.policy,
            now=now,
            state=self._memory,
            min_confidence=self.planner_settings.min_prediction_confidence,
            sustain_s=self.planner_settings.scale_down_sustain_s,
            partway_sustain_s=self.planner_settings.scale_down_partway_sustain_s,
            action_price_core_h=self.planner_settings.scale_action_price_core_h,
            lull_memory_s=self.planner_settings.scale_lull_memory_s,
        )
        for proposal in proposals:
            # A scale-down waits for an approval in production; the harness approves it at once.
            if proposal.status != "refused" and isinstance(proposal.action, ScaleCpu | ScaleDown):
                self._pending = proposal
                return proposal.action.vcpu
        return None

    def executed(self, *, t: float, vcpu: float) -> None:
        proposal = self._pending
        at = EPOCH + timedelta(seconds=t)
        planner.record_executed(
            ActionExecuted(
                chain_id=CHAIN,
                action_id=proposal.action_id,
                action=proposal.action,
                outcome="succeeded",
                detail="bench",
                dry_run=False,
                started_at=at,
                finished_at=at,
            ),
            self._memory,
        )

"""What the signatures read from a context: metric values and trends, matching log lines, anomalies."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from sentinai.common import catalog
from sentinai.common.events import AnomalyDetected
from sentinai.common.loglines import WARN, line_level
from sentinai.rca.model import RcaContext

TARGET_UP: Final = "targetUp"
MAX_QUOTE: Final = 300
MAX_QUOTES_PER_FACT: Final = 2
# Batchers post every few minutes; a safe head stuck for longer than this many L2 blocks is not cadence.
SAFE_STUCK_BLOCKS: Final = 60.0
# Samples that count as "now" for facts that must be current (restarts, a memory peak).
RECENT: Final = 10


def quote(component: str, line: str) -> str:
    line = line.strip()
    return f"{component}: {line[:MAX_QUOTE]}{'…' if len(line) > MAX_QUOTE else ''}"


def fmt(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}" if abs(value) >= 1 else f"{value:.3g}"


@dataclass(frozen=True, slots=True)
class LogHit:
    quotes: tuple[str, ...]
    count: int


def rising(values: Sequence[float], *, min_step: float) -> bool:
    """The newest third is above the oldest third by at least ``min_step`` (noise-tolerant trend)."""
    if len(values) < 3:
        return False
    third = max(1, len(values) // 3)
    old, new = values[:third], values[-third:]
    return sum(new) / len(new) - sum(old) / len(old) >= min_step


def flat(values: Sequence[float], *, points: int = 3) -> bool:
    """The last ``points`` values are all the same (a head that stopped moving)."""
    return len(values) >= points and len(set(values[-points:])) == 1


def advancing(values: Sequence[float]) -> bool:
    return len(values) >= 2 and values[-1] > values[0]


@dataclass(slots=True)
class Case:
    """A signature's running score and the evidence quoted for it."""

    score: float = 0.0
    evidence: list[str] = field(default_factory=list)

    def add(self, weight: float, *quotes: str) -> None:
        self.score += weight
        self.evidence.extend(q for q in quotes if q not in self.evidence)

    def log(self, hit: LogHit | None, weight: float) -> None:
        """A repeated line is a pattern; a single one may be a blip, so it counts for less."""
        if hit is not None:
            self.add(weight if hit.count >= 2 else 0.7 * weight, *hit.quotes)

    @property
    def capped(self) -> float:
        return round(min(1.0, self.score), 3)


class Facts:
    """Read-only view of an ``RcaContext`` with the lookups the signatures need."""

    def __init__(self, ctx: RcaContext) -> None:
        self.ctx = ctx
        self.block_time_s = ctx.block_time_s
        logs: dict[str, list[str]] = {component: list(lines) for component, lines in ctx.logs.items()}
        # The detector quotes the lines that opened a log episode; they count even if the tail moved on.
        for anomaly in self.anomalies():
            if anomaly.rule == "log":
                tail = logs.setdefault(anomaly.component, [])
                tail.extend(line for line in anomaly.evidence if line not in tail)
        self.logs = logs

    def anomalies(self) -> list[AnomalyDetected]:
        """The chain's active anomalies, the trigger included once."""
        seen = {a.event_id for a in self.ctx.active}
        extra = [] if self.ctx.anomaly.event_id in seen else [self.ctx.anomaly]
        return [*self.ctx.active, *extra]

    def series(self, component: str, metric: str) -> list[float]:
        values = self.ctx.metrics.get(component, {}).get(metric, ())
        return [v for v in values if math.isfinite(v)]

    def anomaly(self, metric: str, component: str | None = None) -> AnomalyDetected | None:
        found = [
            a
            for a in self.anomalies()
            if a.metric == metric and (component is None or a.component == component)
        ]
        return max(found, key=lambda a: a.occurred_at) if found else None

    def latest(self, component: str, metric: str) -> float | None:
        """The newest value, from the metric window or else from an anomaly that reported it."""
        values = self.series(component, metric)
        if values:
            return values[-1]
        anomaly = self.anomaly(metric, component)
        return anomaly.value if anomaly is not None else None

    def logged(
        self, pattern: str, *, components: Iterable[str] | None = None, min_level: int = WARN
    ) -> LogHit | None:
        """Lines matching ``pattern`` at ``min_level`` or above, quoted with their component."""
        regex = re.compile(pattern)
        allowed = None if components is None else set(components)
        quotes: list[str] = []
        count = 0
        for component, lines in self.logs.items():
            if allowed is not None and component not in allowed:
                continue
            for line in lines:
                if regex.search(line) and line_level(line) >= min_level:
                    count += 1
                    if len(quotes) < MAX_QUOTES_PER_FACT:
                        quotes.append(quote(component, line))
        return LogHit(tuple(quotes), count) if count else None

    def text_mentions(self, pattern: str) -> str | None:
        """An anomaly description or log line (any level) mentioning ``pattern``, quoted."""
        regex = re.compile(pattern)
        for anomaly in self.anomalies():
            if regex.search(anomaly.description):
                return f"{anomaly.component}: {anomaly.description[:MAX_QUOTE]}"
        hit = self.logged(pattern, min_level=0)
        return hit.quotes[0] if hit else None

    # ---- shared judgements ------------------------------------------------------------------------

    def head_moving(self) -> bool:
        """The head advanced over the last 3 samples: late (catching up, or slow), but not stopped."""
        for component, metric in (("op-geth", catalog.BLOCK_HEIGHT), ("op-node", catalog.UNSAFE_L2)):
            values = self.series(component, metric)[-3:]
            if len(values) >= 2 and values[-1] > values[0]:
                return True
        return False

    def head_stalled(self) -> list[str]:
        """The unsafe head older than 3 block times (the OP Stack stall rule) and not moving, quoted."""
        if self.head_moving():
            return []
        limit = 3 * self.block_time_s
        quotes = []
        for component, metric in (
            ("op-geth", catalog.SECONDS_SINCE_HEAD),
            ("op-node", catalog.UNSAFE_L2_AGE),
        ):
            age = self.latest(component, metric)
            if age is not None and age > limit:
                quotes.append(f"{component} {metric}={age:.1f} (3 block times = {limit:.1f}s)")
        return quotes

    def l1_stale(self) -> str | None:
        age = self.latest("op-node", catalog.L1_HEAD_AGE)
        # L1 makes a block every 12 s; five missed blocks is an outage, not jitter.
        if age is not None and age > 60.0:
            return f"op-node {catalog.L1_HEAD_AGE}={age:.1f}s (L1 makes a block every 12s)"
        return None

    def l1_trouble(self) -> bool:
        """Something upstream on L1 that explains a stuck batcher or proposer."""
        return self.l1_stale() is not None or (
            self.logged(r"L1 temporary error|failed to poll L1 block|Failed to query L1 tip") is not None
        )

    def rising_quote(self, component: str, metric: str, *, min_step: float) -> str | None:
        values = self.series(component, metric)
        if rising(values, min_step=min_step):
            return f"{component} {metric} rising {fmt(values[0])} → {fmt(values[-1])}"
        return None

    def safe_flat_unsafe_moving(self) -> str | None:
        """The safe head stuck while the unsafe head went on by more than a batch normally spans."""
        safe, unsafe = self.series("op-node", catalog.SAFE_L2), self.series("op-node", catalog.UNSAFE_L2)
        stuck = 0
        while stuck < min(len(safe), len(unsafe)) and safe[-1 - stuck] == safe[-1]:
            stuck += 1
        if stuck < 3:
            return None
        progress = unsafe[-1] - unsafe[-stuck]
        if progress < SAFE_STUCK_BLOCKS:
            return None
        return f"op-node safeL2 flat at {safe[-1]:.0f} while unsafeL2 advanced {progress:.0f} blocks"

    def restarted(self, component: str) -> str | None:
        """Restarts in the last few samples: a crash loop now, not one that an earlier fix ended."""
        values = self.series(component, catalog.RESTARTS)[-RECENT:]
        if advancing(values):
            return f"{component} restarts {values[0]:.0f} → {values[-1]:.0f}"
        anomaly = self.anomaly(catalog.RESTARTS, component)
        return f"{component}: {anomaly.description}" if anomaly is not None else None

    def down(self, component: str) -> str | None:
        ready = self.latest(component, catalog.POD_READY)
        if ready is not None and ready < 0.5:
            return f"{component} podReady=0"
        anomaly = self.anomaly(TARGET_UP, component)
        return f"{component}: {anomaly.description}" if anomaly is not None else None

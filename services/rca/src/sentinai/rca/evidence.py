"""What the signatures read from a context: metric values and trends, matching log lines, anomalies."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from sentinai.common import catalog
from sentinai.common.events import AnomalyDetected
from sentinai.common.incidents import MARKERS_OF, IncidentClass, Marker
from sentinai.common.loglines import WARN, line_level
from sentinai.rca.model import RcaContext

TARGET_UP: Final = catalog.TARGET_UP
MAX_QUOTE: Final = 300
MAX_QUOTES_PER_FACT: Final = 2
# Batchers post every few minutes, or every few dozen blocks: a safe head stuck while the unsafe head
# went on for longer than both of these is not cadence (at 1 s blocks the time bound decides, at 12 s
# the block bound).
SAFE_STUCK_S: Final = 120.0
SAFE_STUCK_BLOCKS: Final = 60.0


def batch_cadence_blocks(block_time_s: float) -> float:
    """The unsafe-safe lag, in blocks, a healthy batcher's cadence can leave on this chain."""
    return max(SAFE_STUCK_BLOCKS, SAFE_STUCK_S / block_time_s)


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
class Held:
    """How long a signal has held: the observations (samples, or polls that logged it) and their span."""

    polls: int
    span_s: float

    def __bool__(self) -> bool:
        return self.polls > 0


NOT_HELD: Final = Held(0, 0.0)


@dataclass(frozen=True, slots=True)
class LogHit:
    quotes: tuple[str, ...]
    count: int
    held: Held = NOT_HELD


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
    # Independent signals seen (a metric condition, a component's marker lines) and how long each held.
    signals: dict[str, Held] = field(default_factory=dict)

    def add(self, weight: float, *quotes: str, signal: str | None = None, held: Held | None = None) -> None:
        self.score += weight
        self.evidence.extend(q for q in quotes if q not in self.evidence)
        if signal is not None:
            have = self.signals.get(signal, NOT_HELD)
            new = held or Held(1, 0.0)
            self.signals[signal] = max(have, new, key=lambda h: (h.polls, h.span_s))

    def log(self, hit: LogHit | None, weight: float, *, signal: str = "log") -> None:
        """A repeated line is a pattern; a single one may be a blip, so it counts for less."""
        if hit is not None:
            self.add(weight if hit.count >= 2 else 0.7 * weight, *hit.quotes, signal=signal, held=hit.held)

    def markers(self, facts: Facts, cls: IncidentClass) -> None:
        """Every catalogue marker of ``cls``, each weighed once; a component's lines are one signal."""
        for marker in MARKERS_OF[cls]:
            for component, hit in facts.marker_hits(marker).items():
                self.log(hit, marker.weight, signal=f"{component} log")

    def strongest(self) -> Held:
        return max(self.signals.values(), key=lambda h: (h.polls, h.span_s), default=NOT_HELD)

    @property
    def capped(self) -> float:
        return round(min(1.0, self.score), 3)


class Facts:
    """Read-only view of an ``RcaContext`` with the lookups the signatures need."""

    def __init__(self, ctx: RcaContext) -> None:
        self.ctx = ctx
        self.block_time_s = ctx.block_time_s
        # How old a head may grow before it has stalled, and how many transactions the pool holds.
        self.stall_block_times = ctx.rules.stall_block_times
        self.stall_limit_s = ctx.rules.stall_limit_s(ctx.block_time_s)
        self.txpool_cap = ctx.rules.txpool_cap
        logs: dict[str, list[str]] = {component: list(lines) for component, lines in ctx.logs.items()}
        log_times: dict[str, list[float]] = {}
        for component, lines in logs.items():
            times = list((ctx.log_times or {}).get(component, ()))
            # Without times every line counts as one poll: a tail alone never proves persistence.
            log_times[component] = times if len(times) == len(lines) else [0.0] * len(lines)
        # The detector quotes the lines that opened a log episode; they count even if the tail moved on.
        for anomaly in self.anomalies():
            if anomaly.rule == "log":
                tail = logs.setdefault(anomaly.component, [])
                times = log_times.setdefault(anomaly.component, [])
                for line in anomaly.evidence:
                    if line not in tail:
                        tail.append(line)
                        times.append(anomaly.occurred_at.timestamp())
        self.logs = logs
        self.log_times = log_times

    def anomalies(self) -> list[AnomalyDetected]:
        """The chain's active anomalies, the trigger included once."""
        seen = {a.event_id for a in self.ctx.active}
        extra = [] if self.ctx.anomaly.event_id in seen else [self.ctx.anomaly]
        return [*self.ctx.active, *extra]

    def series(self, component: str, metric: str) -> list[float]:
        values = self.ctx.metrics.get(component, {}).get(metric, ())
        return [v for v in values if math.isfinite(v)]

    def timed(self, component: str, metric: str) -> list[tuple[float, float]]:
        """(event time, value) pairs, oldest first; without times, samples one block time apart."""
        values = self.ctx.metrics.get(component, {}).get(metric, ())
        times = (self.ctx.metric_times or {}).get(component, {}).get(metric, ())
        if len(times) != len(values):
            times = [i * self.block_time_s for i in range(len(values))]
        return [(t, v) for t, v in zip(times, values, strict=True) if math.isfinite(v)]

    def held(
        self, component: str, metric: str, holds: Callable[[float], bool], *, recurring: bool = False
    ) -> Held:
        """How long ``holds`` has been true of the newest samples of ``metric`` (back to the first miss).

        ``recurring``: every sample in the window where it held counts, spanning first to last — for a
        condition that comes back (a leak that is killed and grows again), not one that must be unbroken.
        """
        timed = self.timed(component, metric)
        if recurring:
            times = [t for t, value in timed if holds(value)]
            return Held(len(times), times[-1] - times[0]) if times else NOT_HELD
        polls = 0
        for _, value in reversed(timed):
            if not holds(value):
                break
            polls += 1
        if polls == 0:
            return NOT_HELD
        return Held(polls, timed[-1][0] - timed[-polls][0])

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
        polls: set[float] = set()
        for component, lines in self.logs.items():
            if allowed is not None and component not in allowed:
                continue
            for line, at in zip(lines, self.log_times.get(component, ()), strict=False):
                if regex.search(line) and line_level(line) >= min_level:
                    count += 1
                    polls.add(at)
                    if len(quotes) < MAX_QUOTES_PER_FACT:
                        quotes.append(quote(component, line))
        if not count:
            return None
        return LogHit(tuple(quotes), count, Held(len(polls), max(polls) - min(polls)))

    def marker_hits(self, marker: Marker) -> dict[str, LogHit]:
        """The lines each component logged that carry ``marker``, with the polls they came in."""
        out: dict[str, LogHit] = {}
        for component, lines in self.logs.items():
            quotes: list[str] = []
            count = 0
            polls: set[float] = set()
            for line, at in zip(lines, self.log_times.get(component, ()), strict=False):
                if marker.matches(line, component=component):
                    count += 1
                    polls.add(at)
                    if len(quotes) < MAX_QUOTES_PER_FACT:
                        quotes.append(quote(component, line))
            if count:
                out[component] = LogHit(tuple(quotes), count, Held(len(polls), max(polls) - min(polls)))
        return out

    def marker_score(self, cls: IncidentClass) -> float:
        """The weight of ``cls``'s own log markers seen: how much specific, cause-naming evidence there is."""
        case = Case()
        case.markers(self, cls)
        return case.score

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
        """The unsafe head older than the stall multiple of block times (3 by the OP Stack rule) and not
        moving, quoted."""
        if self.head_moving():
            return []
        limit = self.stall_limit_s
        quotes = []
        for component, metric in (
            ("op-geth", catalog.SECONDS_SINCE_HEAD),
            ("op-node", catalog.UNSAFE_L2_AGE),
        ):
            age = self.latest(component, metric)
            if age is not None and age > limit:
                quotes.append(
                    f"{component} {metric}={age:.1f} ({self.stall_block_times:g} block times = {limit:.1f}s)"
                )
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
        if progress < batch_cadence_blocks(self.block_time_s):
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

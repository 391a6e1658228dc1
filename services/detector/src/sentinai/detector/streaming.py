"""A streaming anomaly scorer: robust evidence, learned ranges, suppression after a detection.

Every point is judged against the model of the points before it, then learned (causal). The state
is a fixed set of numbers per series (O(1) per point, bounded memory) and one ``StreamingSettings``
serves every series. The score is in [0, 1]; higher is more anomalous.

Evidence, in units of a robust scale (a Huber-clipped EW mean absolute deviation) unless noted:

* shift: distance of a fast EW mean from a slow, Huber-clipped EW location (a level change, from
  its first samples);
* novelty: how far the value leaves the learned range (decaying min/max), in range widths;
* season: distance from the robust location of the same hour of day (daily patterns).

Each kind is divided by the largest value of that kind seen so far (a slowly decaying peak): only a
new record of the series is surprising, which calibrates every series to one global threshold. Two
more terms are already ratios, taken by the same max: a **context** (the last ``context_depth``
values quantised into ``context_bins`` bins of the learned range) never seen before in the series
scores ``context_weight`` (a bounded table of ``bins ** depth`` flags, CAD OSE-like); a value beyond
its **hour slot's range** (a per-slot decaying min/max, pooled with ``slot_neighbours`` slots on
either side so that a daily pattern arriving a little early or late is not news) scores
``slot_range_weight`` per slot width.
The strongest ratio ``r`` gives ``r / (r + 1)`` (0.5 at a tie with the record), damped for ``cooldown_s``
seconds after a detection: NAB rewards the first sample of a change and charges each further alert.
"""

from __future__ import annotations

from dataclasses import dataclass

KINDS = 3  # shift, novelty, season: the order of ``Evidence.magnitudes``
NOVELTY = 1  # measured in range widths, not scales: its own least record
HOURS = 24


@dataclass(frozen=True, slots=True)
class StreamingSettings:
    """One set for every series."""

    slow_alpha: float = 0.01  # long-term location and scale (~100 points)
    fast_alpha: float = 0.3  # short-term mean for level shifts
    season_alpha: float = 0.2  # per hour of day: a few days of memory
    season_min: int = 5  # points an hour slot needs before it is judged
    huber: float = 4.0  # updates clip values this many scales away, so outliers barely move the model
    range_decay: float = 0.0005  # the learned min/max relax toward the location at this rate per point
    warmup: int = 30  # points learned before anything is scored
    peak_decay: float = 0.0005  # the record of each evidence kind relaxes at this rate per point
    peak_floor: float = 3.0  # least record in scales: a quiet series' noise is no record
    novelty_floor: float = 0.75  # least record of novelty, in range widths
    alert: float = 0.56  # a score at or above this is a detection and starts the cool-down
    cooldown_s: float = 55_000.0  # seconds damped after a detection: time, so any sampling rate fits
    damp: float = 0.1  # factor applied to scores during the cool-down
    context_weight: float = 1.3  # ratio of a never-seen context (0 turns contextual novelty off)
    context_bins: int = 5  # the learned range is cut into this many bins
    context_depth: int = 2  # a context is this many consecutive bins
    slot_range_weight: float = 2.0  # ratio per slot-range width beyond the pooled hour slots' range
    slot_neighbours: int = 1  # hour slots on either side whose ranges are pooled with the slot's own
    slot_range_decay: float = 0.001  # each hour slot's min/max relax toward its location at this rate
    rel_floor: float = 1e-3  # least scale relative to |location|: flat series stay quiet
    abs_floor: float = 1e-9


class StreamState:
    """The per-series model: a fixed set of numbers, never a history of values."""

    __slots__ = (
        "cool_until",
        "ctx",
        "fast",
        "hi",
        "lo",
        "loc",
        "n",
        "peaks",
        "seen",
        "slot_count",
        "slot_hi",
        "slot_lo",
        "slot_loc",
        "slot_spread",
        "spread",
    )

    def __init__(self, contexts: int) -> None:
        self.n = 0
        self.loc = 0.0
        self.spread = 0.0
        self.fast = 0.0
        self.lo = 0.0
        self.hi = 0.0
        self.cool_until = 0.0
        self.ctx = 0
        self.seen = bytearray(contexts)
        self.slot_lo = [0.0] * HOURS
        self.slot_hi = [0.0] * HOURS
        self.peaks = [0.0] * KINDS
        self.slot_loc = [0.0] * HOURS
        self.slot_spread = [0.0] * HOURS
        self.slot_count = [0] * HOURS


@dataclass(frozen=True, slots=True)
class Evidence:
    """What one value shows against the model before it; ``shift`` is signed."""

    shift: float
    novelty: float
    season: float

    def magnitudes(self) -> tuple[float, float, float]:
        return (abs(self.shift), self.novelty, self.season)


def _hour(t: float) -> int:
    return int(t // 3600) % HOURS


class StreamingScorer:
    """Scores one series point by point: ``score`` first judges the value, then learns it."""

    __slots__ = ("settings",)

    def __init__(self, settings: StreamingSettings | None = None) -> None:
        self.settings = settings or StreamingSettings()

    def new_state(self) -> StreamState:
        return StreamState(self.settings.context_bins**self.settings.context_depth)

    def _floor(self, location: float) -> float:
        return max(self.settings.rel_floor * abs(location), self.settings.abs_floor)

    def evidence(self, state: StreamState, value: float, t: float) -> Evidence | None:
        """What ``value`` at ``t`` (epoch seconds) shows against the model; ``None`` while warming up."""
        s = self.settings
        if state.n < s.warmup:
            return None
        floor = self._floor(state.loc)
        spread = max(state.spread, floor)
        fast = state.fast + s.fast_alpha * (value - state.fast)
        beyond = max(value - state.hi, state.lo - value, 0.0)
        h = _hour(t)
        season = 0.0
        if state.slot_count[h] >= s.season_min:
            slot_floor = self._floor(state.slot_loc[h])
            season = abs(value - state.slot_loc[h]) / max(state.slot_spread[h], slot_floor)
        return Evidence(
            shift=(fast - state.loc) / spread,
            novelty=beyond / max(state.hi - state.lo, spread),
            season=season,
        )

    def surprise(self, state: StreamState, evidence: Evidence) -> float:
        """The strongest evidence over its kind's record (> 1: a new record); then update the records."""
        s = self.settings
        strongest = 0.0
        for i, magnitude in enumerate(evidence.magnitudes()):
            least = s.novelty_floor if i == NOVELTY else s.peak_floor
            strongest = max(strongest, magnitude / max(state.peaks[i], least))
            state.peaks[i] = max(state.peaks[i] * (1.0 - s.peak_decay), magnitude)
        return strongest

    def score(self, state: StreamState, value: float, t: float) -> float:
        """The anomaly score in [0, 1] of ``value`` at ``t`` (epoch seconds); then learn from it."""
        s = self.settings
        # Contexts are learnt from the second point on, but judged only after the warm-up.
        extra = s.context_weight * self.context(state, value) if state.n > 0 else 0.0
        if state.n < s.warmup:
            extra = 0.0
        else:
            extra = max(extra, s.slot_range_weight * self.slot_range(state, value, _hour(t)))
        evidence = self.evidence(state, value, t)
        self.learn(state, value, t)
        if evidence is None:
            return 0.0
        ratio = max(self.surprise(state, evidence), extra)
        raw = ratio / (ratio + 1.0)
        if t < state.cool_until:
            return raw * s.damp
        if raw >= s.alert:
            state.cool_until = t + s.cooldown_s
        return raw

    def context(self, state: StreamState, value: float) -> float:
        """1.0 if the last ``context_depth`` range bins never occurred in this order; then remember them."""
        s = self.settings
        width = max(state.hi - state.lo, state.spread, self._floor(state.loc))
        q = min(s.context_bins - 1, max(0, int((value - state.lo) / width * s.context_bins)))
        state.ctx = (state.ctx * s.context_bins + q) % len(state.seen)
        novel = state.seen[state.ctx] == 0
        state.seen[state.ctx] = 1
        return 1.0 if novel else 0.0

    def slot_range(self, state: StreamState, value: float, h: int) -> float:
        """How far ``value`` leaves its hour slot's learned range pooled with its neighbours', in widths."""
        s = self.settings
        if state.slot_count[h] < s.season_min:
            return 0.0
        lo, hi = state.slot_lo[h], state.slot_hi[h]
        for k in range(1, s.slot_neighbours + 1):
            for j in ((h - k) % HOURS, (h + k) % HOURS):
                if state.slot_count[j] >= s.season_min:
                    lo, hi = min(lo, state.slot_lo[j]), max(hi, state.slot_hi[j])
        width = max(hi - lo, state.spread, self._floor(state.loc))
        return max(value - hi, lo - value, 0.0) / width

    def learn(self, state: StreamState, value: float, t: float) -> None:
        s = self.settings
        self._learn_hour(state, value, _hour(t))
        if state.n == 0:
            state.loc = state.fast = state.lo = state.hi = value
            state.n = 1
            return
        floor = self._floor(state.loc)
        spread = max(state.spread, floor)
        # Huber clipping: an outlier moves location and scale as if it sat at the clip.
        clipped = max(-s.huber * spread, min(s.huber * spread, value - state.loc))
        # The first points learn at 1/n (a plain mean) so the model is usable after the warm-up.
        a = max(s.slow_alpha, 1.0 / (state.n + 1))
        state.loc += a * clipped
        state.spread += a * (abs(clipped) - state.spread)
        state.fast += s.fast_alpha * (value - state.fast)
        state.lo = min(value, state.lo + s.range_decay * (state.loc - state.lo))
        state.hi = max(value, state.hi - s.range_decay * (state.hi - state.loc))
        state.n += 1

    def _learn_hour(self, state: StreamState, value: float, h: int) -> None:
        s = self.settings
        count = state.slot_count[h]
        if count == 0:
            state.slot_loc[h] = state.slot_lo[h] = state.slot_hi[h] = value
        else:
            spread = max(state.slot_spread[h], self._floor(state.slot_loc[h]))
            clipped = max(-s.huber * spread, min(s.huber * spread, value - state.slot_loc[h]))
            a = max(s.season_alpha, 1.0 / (count + 1))
            state.slot_loc[h] += a * clipped
            state.slot_spread[h] += a * (abs(clipped) - state.slot_spread[h])
        if count:
            mid = state.slot_loc[h]
            state.slot_lo[h] = min(value, state.slot_lo[h] + s.slot_range_decay * (mid - state.slot_lo[h]))
            state.slot_hi[h] = max(value, state.slot_hi[h] - s.slot_range_decay * (state.slot_hi[h] - mid))
        state.slot_count[h] = count + 1

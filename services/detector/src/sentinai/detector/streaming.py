"""A streaming anomaly scorer: robust evidence, learned ranges, suppression after a detection.

Every point is judged against the model of the points before it, then learned (causal). The state
is a fixed set of numbers per series (O(1) per point, bounded memory) and one ``StreamingSettings``
serves every series. The score is in [0, 1]; higher is more anomalous.

Evidence, in units of a robust scale (a Huber-clipped EW mean absolute deviation, at least
``range_floor`` of the learned range) unless noted:

* shift: distance of a fast EW mean from a slow, Huber-clipped EW location (a level change, from
  its first samples);
* novelty: how far the value leaves the learned range (decaying min/max), in range widths;
* season: distance from the robust location of the same hour of day (daily patterns).

Each kind is divided by the largest value of that kind seen so far (a slowly decaying peak): only a
new record of the series is surprising, which calibrates every series to one global threshold. Two
more terms are already ratios, taken by the same max: a **context** (the last ``context_depth``
values quantised into ``context_bins`` bins of the learned range) never seen before in the series
scores ``context_weight`` (a bounded table of ``bins ** depth`` flags, CAD OSE-like) if a second
channel agrees: the **shape** of the last ``shape_length`` values (in learned-range units) is far from
every codeword of a small codebook of window shapes learnt online (ART-like: a window beyond the
vigilance of every codeword becomes one, otherwise the nearest moves toward it); a value beyond
its **hour slot's range** (a per-slot decaying min/max, pooled with ``slot_neighbours`` slots on
either side so that a daily pattern arriving a little early or late is not news) scores
``slot_range_weight`` per slot width.
The strongest ratio ``r``, times ``drop_weight`` when the value lies below the series' location, gives
``r / (r + 1)`` (0.5 at a tie with the record), damped for ``cooldown_s`` seconds after a detection: NAB
rewards the first sample of a change and charges each further alert.

Under the alert the score is ranked in tiers (``score`` only; ``raw_score``, which the live detector
uses, is unchanged). Scores within ``near_band`` of the alert keep their value. Below them, the
first point outside every cool-down whose score over the series' **clean records** (the same
records, but never raised by a detection or within a cool-down) is at least ``clean_alert`` is
lifted into a band of its own, once per ``clean_cooldown_s``; every other score is halved beneath it. An
anomaly the series has shown before set the ordinary record, so its repeat is no news to it; the
clean record remembers only ordinary behaviour, and a repeat beats it. A global threshold taken in
that band (where a missed window costs more than a false positive) finds such repeats, first
samples only; a threshold at or above the near band sees the scores as before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from operator import sub

KINDS = 3  # shift, novelty, season: the order of ``StreamState.peaks``
HOURS = 24
# The clean-record tier (``StreamingScorer.suppress``): its scores lie in [CLEAN_BASE, CLEAN_BASE +
# CLEAN_SPAN) (0.4 up to 0.5 for a clean score from 0.5 to 1); every other score under the near band
# is multiplied by BELOW (under 0.28), so the tier ranks above them and below the near band.
CLEAN_BASE = 0.3
CLEAN_SPAN = 0.2
BELOW = 0.5


@dataclass(frozen=True, slots=True)
class StreamingSettings:
    """One set for every series."""

    slow_alpha: float = 0.0067  # long-term location and scale (~150 points)
    fast_alpha: float = 0.28  # short-term mean for level shifts
    season_alpha: float = 0.085  # per hour slot: ~12 of its points (a day at 5 min, 12 days hourly)
    season_min: int = 5  # points an hour slot needs before it is judged
    huber: float = 5.7  # updates clip values this many scales away, so outliers barely move the model
    range_decay: float = 0.0005  # the learned min/max relax toward the location at this rate per point
    warmup: int = 30  # points learned before anything is scored
    peak_decay: float = 0.00047  # the record of each evidence kind relaxes at this rate per point
    peak_floor: float = 4.5  # least record in scales: a quiet series' noise is no record
    novelty_floor: float = 1.0  # least record of novelty, in range widths
    alert: float = 0.558  # a score at or above this is a detection and starts the cool-down
    cooldown_s: float = 59_000.0  # seconds damped after a detection: time, so any sampling rate fits
    damp: float = 0.1  # factor applied to scores during the cool-down
    context_weight: float = 1.3  # ratio of a never-seen context (0 turns contextual novelty off)
    context_bins: int = 5  # the learned range is cut into this many bins
    context_depth: int = 2  # a context is this many consecutive bins
    slot_range_weight: float = 2.0  # ratio per slot-range width beyond the pooled hour slots' range
    slot_neighbours: int = 1  # hour slots on either side whose ranges are pooled with the slot's own
    slot_range_decay: float = 0.0005  # each hour slot's min/max relax toward its location at this rate
    rel_floor: float = 1e-3  # least scale relative to |location|: flat series stay quiet
    abs_floor: float = 1e-9
    # Least scale as a fraction of the learned range: between the spikes of a sparse spike train the
    # clipped scale shrinks toward 0, and every spike would be a new record of shift.
    range_floor: float = 0.0025
    # The strongest ratio counts this much more when the value is below the series' location: upward
    # excursions (bursts of traffic, load, volume) are routine in telemetry; drops are rarer and more
    # often a failure (a stalled producer, a dead feed).
    drop_weight: float = 1.125
    # Shape channel: a bounded codebook of the last ``shape_length`` values (in learned-range widths),
    # learnt online (ART-like: a window farther than ``shape_vigilance`` from every codeword becomes a
    # new one; otherwise the nearest moves toward it at ``shape_rate``). An unseen context counts only
    # if the window is also at least ``shape_agree`` vigilances from every codeword: two channels agree.
    shape_length: int = 8  # 0 turns the shape channel off (an unseen context then counts alone)
    shape_codes: int = 16  # codewords kept; when full, the one matched longest ago is replaced
    shape_vigilance: float = 0.25  # mean absolute distance, in range widths, that makes a window new
    shape_rate: float = 0.1  # how far the matched codeword moves toward the window
    shape_agree: float = 0.8  # least distance from every codeword, in vigilances (at most 1)
    # Tiers under the alert (``score`` only): scores within ``near_band`` under the alert keep their
    # value; a clean score (the ratio over the clean records, as ``r / (r + 1)``) at or above
    # ``clean_alert`` outside every cool-down is lifted into the clean tier, at most once per
    # ``clean_cooldown_s``; the rest are halved. ``clean_alert`` 0 turns the tiers off (``score`` is
    # then the damped raw score, as before).
    near_band: float = 0.016
    clean_alert: float = 0.5  # the clean ratio at least 1: a new record of the series' ordinary evidence
    clean_cooldown_s: float = 86_400.0


class StreamState:
    """The per-series model: a fixed set of numbers, never a history of values."""

    __slots__ = (
        "clean",
        "clean_score",
        "clean_until",
        "code_count",
        "code_sums",
        "code_used",
        "codes",
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
        "win",
        "winner",
    )

    def __init__(self, contexts: int, shape_length: int = 0, shape_codes: int = 0) -> None:
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
        # Records of each kind never raised by a detection or within a cool-down, the last point's
        # score over them, and the end of the clean tier's own cool-down.
        self.clean = [0.0] * KINDS
        self.clean_score = 0.0
        self.clean_until = 0.0
        self.slot_loc = [0.0] * HOURS
        self.slot_spread = [0.0] * HOURS
        self.slot_count = [0] * HOURS
        # The last ``shape_length`` values, oldest first, and the shape codebook (at most ``shape_codes``
        # codewords of ``shape_length`` values in learned-range units).
        # Allocated in full up front, so the state never grows; ``code_count`` of them are in use.
        self.win = [0.0] * shape_length
        self.codes = [[0.0] * shape_length for _ in range(shape_codes)]
        self.code_count = 0
        self.code_used = [0] * shape_codes
        self.code_sums = [0.0] * shape_codes  # each codeword's sum: a cheap bound on the distance
        self.winner = -1


class StreamingScorer:
    """Scores one series point by point: ``score`` first judges the value, then learns it.

    The steps are written out with conditional expressions in place of ``min``/``max`` calls and
    without a helper per evidence kind: the live detector scores every gauge of every sample, and
    those calls were most of the cost (≈ 3x faster). ``x if x > m else m`` is exactly ``max(m, x)``,
    ties and NaN included, so the scores are bit for bit those of the plain version.
    """

    __slots__ = ("_pools", "settings")

    def __init__(self, settings: StreamingSettings | None = None) -> None:
        self.settings = settings or StreamingSettings()
        # The hour slots pooled with each slot's range: its neighbours on either side.
        near = range(1, self.settings.slot_neighbours + 1)
        self._pools = tuple(
            tuple(j for k in near for j in ((h - k) % HOURS, (h + k) % HOURS)) for h in range(HOURS)
        )

    def new_state(self) -> StreamState:
        s = self.settings
        return StreamState(s.context_bins**s.context_depth, s.shape_length, s.shape_codes)

    def score(self, state: StreamState, value: float, t: float) -> float:
        """The anomaly score in [0, 1] of ``value`` at ``t`` (epoch seconds); then learn from it."""
        return self.suppress(state, self.raw_score(state, value, t), t)

    def suppress(self, state: StreamState, raw: float, t: float) -> float:
        """``raw`` damped within a cool-down; outside one, a detection starts the cool-down; under the
        alert, the tiers of the module doc (the near band, the clean tier, the rest halved)."""
        s = self.settings
        if t < state.cool_until:
            return raw * s.damp
        if raw >= s.alert:
            self.cool_down(state, t)
            return raw
        if not s.clean_alert or raw >= s.alert - s.near_band:
            return raw
        clean = state.clean_score
        if clean >= s.clean_alert and t >= state.clean_until:
            state.clean_until = t + s.clean_cooldown_s
            return CLEAN_BASE + CLEAN_SPAN * clean
        return raw * BELOW

    def cool_down(self, state: StreamState, t: float) -> None:
        """Start the cool-down that follows a detection at ``t``."""
        state.cool_until = t + self.settings.cooldown_s

    def raw_score(self, state: StreamState, value: float, t: float) -> float:
        """The score of ``value`` at ``t`` before any cool-down (0 while warming up); then learn it.

        One pass in a fixed order: judge against the model as it was (context, hour-slot range,
        shift, novelty, season), learn the value (its hour slot, then the series), then compare
        each evidence kind with its record.
        """
        s = self.settings
        h = int(t // 3600) % HOURS
        n = state.n
        loc, lo, hi, spread = state.loc, state.lo, state.hi, state.spread
        floor = self.scale_floor(loc, lo, hi)
        warm = n >= s.warmup
        ratio = shift = novelty = season = 0.0
        # Contexts are learnt from the second point on, but judged only after the warm-up.
        if n > 0:
            bins = s.context_bins
            width = hi - lo if hi - lo >= spread else spread
            width = width if width >= floor else floor
            q = int((value - lo) / width * bins)
            q = 0 if q < 0 else (bins - 1 if q > bins - 1 else q)
            seen = state.seen
            ctx = state.ctx = (state.ctx * bins + q) % len(seen)
            # The shape channel learns every point (so it is asked first); an unseen context needs it.
            agree = self.shape_agrees(state, value, lo, width, warm)
            ratio = s.context_weight if agree and warm and not seen[ctx] else 0.0
            seen[ctx] = 1
        slot_count = state.slot_count[h]
        if warm:
            slot = s.slot_range_weight * self.slot_range(state, value, h)
            ratio = slot if slot > ratio else ratio
            # Evidence against the model before ``value`` (see the module doc).
            scale = spread if spread >= floor else floor
            shift = abs((state.fast + s.fast_alpha * (value - state.fast) - loc) / scale)
            beyond = value - hi if value - hi >= lo - value else lo - value
            novelty = (beyond if beyond >= 0.0 else 0.0) / (hi - lo if hi - lo >= scale else scale)
            if slot_count >= s.season_min:
                season = self.season_distance(state, value, h)
        self.learn(state, value, h)
        if not warm:
            return 0.0
        # Each kind over its own decaying record: only a new record of the series is surprising.
        peaks, decay, least = state.peaks, 1.0 - s.peak_decay, s.peak_floor
        shift_peak, novelty_peak, season_peak = peaks
        clean_ratio = ratio  # the ratios that are not records (context, slot range) count for both
        r = shift / (least if least > shift_peak else shift_peak)
        ratio = r if r > ratio else ratio
        r = novelty / (s.novelty_floor if s.novelty_floor > novelty_peak else novelty_peak)
        ratio = r if r > ratio else ratio
        r = season / (least if least > season_peak else season_peak)
        ratio = r if r > ratio else ratio
        shift_peak, novelty_peak, season_peak = shift_peak * decay, novelty_peak * decay, season_peak * decay
        peaks[:] = (
            shift if shift > shift_peak else shift_peak,
            novelty if novelty > novelty_peak else novelty_peak,
            season if season > season_peak else season_peak,
        )
        weight = s.drop_weight if value < loc else 1.0
        score = ratio * weight / (ratio * weight + 1.0)
        if s.clean_alert:
            ordinary = t >= state.cool_until and score < s.alert
            self.judge_clean(state, clean_ratio, (shift, novelty, season), weight, ordinary)
        return score

    def judge_clean(
        self,
        state: StreamState,
        base: float,
        evidence: tuple[float, float, float],
        weight: float,
        ordinary: bool,
    ) -> None:
        """The score over the clean records, kept for ``suppress``; then the clean records learn the
        point if it is ``ordinary`` (under the alert and outside every cool-down: a detection starts
        one). ``base`` is the largest ratio that is no record (context, slot range), ``weight`` the
        drop weight that applies to the point."""
        s = self.settings
        clean, least, decay = state.clean, s.peak_floor, 1.0 - s.peak_decay
        ratio = base
        for k, (value, floor) in enumerate(zip(evidence, (least, s.novelty_floor, least), strict=True)):
            peak = clean[k]
            r = value / (floor if floor > peak else peak)
            ratio = r if r > ratio else ratio
            peak *= decay
            clean[k] = value if ordinary and value > peak else peak
        ratio *= weight
        state.clean_score = ratio / (ratio + 1.0)

    def shape_agrees(self, state: StreamState, value: float, lo: float, width: float, warm: bool) -> bool:
        """Whether the shape channel agrees that the window ending at ``value`` is new (always, with the
        channel off); the channel learns every point once the model is warm and the window full."""
        win = state.win
        if not win:
            return True
        del win[0]
        win.append(value)
        if not warm or state.n < len(win):
            return True
        return self.shape_novelty(state, lo, width) >= self.settings.shape_agree

    def shape_novelty(self, state: StreamState, lo: float, width: float) -> float:
        """Distance of the current window from the codebook, in vigilances; then learn the window.

        ART-like: the window is first matched against the last winning codeword; only when that one
        is at least ``shape_agree`` vigilances away is the whole codebook searched. A window farther
        than the vigilance from every codeword becomes a codeword (replacing the one matched longest
        ago when the book is full); otherwise the matched codeword moves toward the window.
        """
        s = self.settings
        inv = 1.0 / width
        u = [(x - lo) * inv for x in state.win]
        codes, winner = state.codes, state.winner
        scale = 1.0 / (len(u) * s.shape_vigilance)
        novelty = sum(map(abs, map(sub, u, codes[winner]))) * scale if winner >= 0 else math.inf
        if novelty >= s.shape_agree:
            # |mean(u) - mean(code)| is a lower bound of the distance: most codewords need no more.
            total, means, count = sum(u), state.code_sums, state.code_count
            for j in range(count):
                if abs(total - means[j]) * scale < novelty:
                    d = sum(map(abs, map(sub, u, codes[j]))) * scale
                    if d < novelty:
                        winner, novelty = j, d
            if novelty > 1.0:
                if count < len(codes):
                    state.code_count = count + 1
                    winner = count
                else:
                    used = state.code_used
                    winner = min(range(count), key=used.__getitem__)
                codes[winner][:] = u
                means[winner] = total
                state.code_used[winner] = state.n
                state.winner = winner
                return novelty
        rate = s.shape_rate
        code = codes[winner]
        code[:] = [c + rate * (x - c) for c, x in zip(code, u, strict=True)]
        state.code_sums[winner] = sum(code)
        state.code_used[winner] = state.n
        state.winner = winner
        return novelty

    def season_distance(self, state: StreamState, value: float, h: int) -> float:
        """How far ``value`` lies from its hour slot's robust location, in the slot's robust scale."""
        s = self.settings
        slot_loc = state.slot_loc[h]
        slot_floor = s.rel_floor * abs(slot_loc)
        slot_floor = s.abs_floor if s.abs_floor > slot_floor else slot_floor
        slot_spread = state.slot_spread[h]
        return abs(value - slot_loc) / (slot_spread if slot_spread >= slot_floor else slot_floor)

    def scale_floor(self, loc: float, lo: float, hi: float) -> float:
        """The least scale of a series at ``loc`` whose learned range is ``lo``..``hi``."""
        s = self.settings
        floor = s.rel_floor * abs(loc)
        floor = s.abs_floor if s.abs_floor > floor else floor
        wide = s.range_floor * (hi - lo)
        return wide if wide > floor else floor

    def slot_range(self, state: StreamState, value: float, h: int) -> float:
        """How far ``value`` leaves its hour slot's learned range pooled with its neighbours', in widths."""
        s = self.settings
        counts, least = state.slot_count, s.season_min
        if counts[h] < least:
            return 0.0
        lo, hi = state.slot_lo[h], state.slot_hi[h]
        for j in self._pools[h]:
            if counts[j] >= least:
                lo = state.slot_lo[j] if state.slot_lo[j] < lo else lo
                hi = state.slot_hi[j] if state.slot_hi[j] > hi else hi
        beyond = value - hi if value - hi >= lo - value else lo - value
        # The width is at least the series' scale and its floor, so flat series stay quiet.
        width = hi - lo if hi - lo >= state.spread else state.spread
        floor = s.rel_floor * abs(state.loc)
        floor = s.abs_floor if s.abs_floor > floor else floor
        return (beyond if beyond >= 0.0 else 0.0) / (width if width >= floor else floor)

    def learn(self, state: StreamState, value: float, h: int) -> None:
        """Learn ``value`` into its hour slot ``h``, then into the series' model."""
        s = self.settings
        rel_floor, abs_floor, huber = s.rel_floor, s.abs_floor, s.huber
        slot_count, n = state.slot_count[h], state.n
        # Learn the hour slot: a robust location and spread, and a min/max relaxing toward the location.
        if slot_count == 0:
            state.slot_loc[h] = state.slot_lo[h] = state.slot_hi[h] = value
        else:
            mid = state.slot_loc[h]
            mid_floor = rel_floor * abs(mid)
            mid_floor = abs_floor if abs_floor > mid_floor else mid_floor
            slot_spread = state.slot_spread[h]
            clip = huber * (slot_spread if slot_spread >= mid_floor else mid_floor)
            clipped = value - mid
            clipped = clip if clip < clipped else clipped
            clipped = -clip if clipped < -clip else clipped
            a = 1.0 / (slot_count + 1)
            a = a if a > s.season_alpha else s.season_alpha
            mid += a * clipped
            state.slot_loc[h] = mid
            state.slot_spread[h] = slot_spread + a * (abs(clipped) - slot_spread)
            slot_lo = state.slot_lo[h] + s.slot_range_decay * (mid - state.slot_lo[h])
            state.slot_lo[h] = slot_lo if slot_lo < value else value
            slot_hi = state.slot_hi[h] - s.slot_range_decay * (state.slot_hi[h] - mid)
            state.slot_hi[h] = slot_hi if slot_hi > value else value
        state.slot_count[h] = slot_count + 1
        # Learn the series; Huber clipping: an outlier moves location and scale as if it sat at the clip.
        if n == 0:
            state.loc = state.fast = state.lo = state.hi = value
            state.n = 1
            return
        loc, lo, hi, spread = state.loc, state.lo, state.hi, state.spread
        floor = rel_floor * abs(loc)
        floor = abs_floor if abs_floor > floor else floor
        clip = huber * (spread if spread >= floor else floor)
        clipped = value - loc
        clipped = clip if clip < clipped else clipped
        clipped = -clip if clipped < -clip else clipped
        # The first points learn at 1/n (a plain mean) so the model is usable after the warm-up.
        a = 1.0 / (n + 1)
        a = a if a > s.slow_alpha else s.slow_alpha
        loc += a * clipped
        state.loc = loc
        state.spread = spread + a * (abs(clipped) - spread)
        state.fast += s.fast_alpha * (value - state.fast)
        lo += s.range_decay * (loc - lo)
        state.lo = lo if lo < value else value
        hi -= s.range_decay * (hi - loc)
        state.hi = hi if hi > value else value
        state.n = n + 1

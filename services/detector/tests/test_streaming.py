"""The streaming scorer: bounded state, causal, first-sample detection, quiet on flat series, suppression."""

from __future__ import annotations

import math
import random
import sys
from dataclasses import replace

import pytest

from sentinai.detector.streaming import (
    BELOW,
    CLEAN_BASE,
    CLEAN_SPAN,
    StreamingScorer,
    StreamingSettings,
    StreamState,
)

STEP_S = 300.0  # NAB's usual 5-minute spacing


def noisy(n: int, *, seed: int = 1, level: float = 100.0, noise: float = 1.0) -> list[float]:
    rng = random.Random(seed)
    return [level + rng.gauss(0.0, noise) for _ in range(n)]


def run(scorer: StreamingScorer, values: list[float], state: StreamState | None = None) -> list[float]:
    state = scorer.new_state() if state is None else state
    return [scorer.score(state, v, i * STEP_S) for i, v in enumerate(values)]


def state_size(state: StreamState) -> int:
    size = sys.getsizeof(state)
    for slot in StreamState.__slots__:
        item = getattr(state, slot)
        size += sys.getsizeof(item)
        if isinstance(item, list):
            size += sum(sys.getsizeof(x) for x in item)
    return size


def test_state_stays_bounded_over_a_long_series() -> None:
    scorer = StreamingScorer()
    state = scorer.new_state()
    run(scorer, noisy(1_000), state)
    early = state_size(state)
    run(scorer, noisy(20_000, seed=2), state)
    assert state_size(state) == early
    assert early < 64 * 1024


def test_scores_are_causal_a_point_never_sees_itself_or_the_future() -> None:
    scorer = StreamingScorer()
    base = noisy(600)
    changed = [*base[:400], 500.0, *base[401:]]
    before, after = run(scorer, base), run(scorer, changed)
    assert before[:400] == after[:400]
    assert after[400] > before[400]


def test_the_same_series_scores_the_same_every_time() -> None:
    values = [*noisy(900), 160.0, *noisy(300, seed=6)]
    scorer = StreamingScorer()
    assert run(scorer, values) == run(scorer, values) == run(StreamingScorer(), values)


def test_scores_stay_in_the_unit_interval() -> None:
    values = [*noisy(500), 1e12, -1e12, 0.0, *noisy(200, seed=3)]
    assert all(0.0 <= s <= 1.0 for s in run(StreamingScorer(), values))


@pytest.mark.parametrize(
    "tail",
    [
        pytest.param([160.0] * 50, id="step-up"),
        pytest.param([40.0] * 50, id="step-down"),
        pytest.param([160.0, *noisy(49, seed=4)], id="spike"),
    ],
)
def test_a_change_scores_high_on_its_first_sample(tail: list[float]) -> None:
    scores = run(StreamingScorer(), [*noisy(800), *tail])
    first = scores[800]
    assert first >= StreamingSettings().alert
    assert first > max(scores[400:800]) + 0.25  # noise only ever ties its own record (≈ 0.5)


def test_a_flat_series_never_alerts() -> None:
    scores = run(StreamingScorer(), [42.0] * 3_000)
    assert max(scores) < 0.5


def test_a_flat_series_with_tiny_wobble_stays_quiet() -> None:
    values = [42.0 + (1e-6 if i % 7 == 0 else 0.0) for i in range(3_000)]
    assert max(run(StreamingScorer(), values)) < 0.5


def cooldown_points(settings: StreamingSettings, step_s: float = STEP_S) -> int:
    return math.ceil(settings.cooldown_s / step_s)


def test_the_run_after_a_detection_is_suppressed() -> None:
    settings = StreamingSettings()
    points = cooldown_points(settings)
    rising = [160.0 + 5.0 * k for k in range(points)]
    scores = run(StreamingScorer(settings), [*noisy(800), *rising])
    assert scores[800] >= settings.alert
    assert max(scores[801 : 800 + points]) <= settings.damp


@pytest.mark.parametrize("step_s", [pytest.param(600.0, id="10-min"), pytest.param(3600.0, id="1-hour")])
def test_the_cooldown_lasts_a_time_not_a_number_of_points(step_s: float) -> None:
    settings = StreamingSettings()
    scorer = StreamingScorer(settings)
    state = scorer.new_state()
    values = [*noisy(800), 300.0, *noisy(cooldown_points(settings, step_s) + 50, seed=5)]
    scores = [scorer.score(state, v, i * step_s) for i, v in enumerate(values)]
    assert scores[800] >= settings.alert
    assert state.cool_until == 800 * step_s + settings.cooldown_s
    quiet = [s for i, s in enumerate(scores[801:], start=801) if i * step_s < state.cool_until]
    assert len(quiet) == cooldown_points(settings, step_s) - 1
    assert max(quiet) <= settings.damp


def test_a_second_change_after_the_cooldown_is_detected_again() -> None:
    settings = StreamingSettings()
    gap = cooldown_points(settings) + 50
    values = [*noisy(800), 300.0, *noisy(gap, seed=5), -200.0]
    scores = run(StreamingScorer(settings), values)
    assert scores[800] >= settings.alert
    assert scores[801 + gap] >= settings.alert


DAY_POINTS = round(86_400 / STEP_S)


def repeated_spike() -> list[float]:
    """A spike the model detects, then, a day later in the same hour slot, a slightly smaller one."""
    return [*noisy(800), 160.0, *noisy(DAY_POINTS - 1, seed=5), 150.0, *noisy(100, seed=6)]


def test_a_repeat_of_a_detected_anomaly_is_lifted_into_the_clean_tier() -> None:
    settings = StreamingSettings()
    values = repeated_spike()
    repeat = 800 + DAY_POINTS
    untiered = run(StreamingScorer(replace(settings, clean_alert=0.0)), values)
    scores = run(StreamingScorer(settings), values)
    assert scores[800] == untiered[800] >= settings.alert
    # The first spike raised the record, so its repeat is no record (under the near band) ...
    assert untiered[repeat] < settings.alert - settings.near_band
    # ... but it beats the clean record, which detections never raise: it ranks in the clean tier,
    # above every ordinary point of the series after the cool-down, which are halved under the tier.
    tier_floor = CLEAN_BASE + CLEAN_SPAN * settings.clean_alert
    assert tier_floor <= scores[repeat] < CLEAN_BASE + CLEAN_SPAN
    ordinary = [s for i, s in enumerate(scores[900:], start=900) if i != repeat]
    assert max(ordinary) < BELOW * (settings.alert - settings.near_band) < tier_floor
    # Without the tiers the same ordinary points come within 0.1 of the repeat.
    assert max(u for i, u in enumerate(untiered[900:], start=900) if i != repeat) > untiered[repeat] - 0.1


def test_the_clean_tier_lifts_one_point_per_its_cooldown() -> None:
    settings = StreamingSettings()
    scorer = StreamingScorer(settings)
    state = scorer.new_state()
    state.clean_score = 0.9  # a point that beats the clean records, its own score under the near band
    first = scorer.suppress(state, 0.3, 1_000.0)
    assert first == pytest.approx(CLEAN_BASE + CLEAN_SPAN * 0.9)
    assert state.clean_until == 1_000.0 + settings.clean_cooldown_s
    assert scorer.suppress(state, 0.3, 1_000.0 + settings.clean_cooldown_s - 1.0) == pytest.approx(
        0.3 * BELOW
    )
    assert scorer.suppress(state, 0.3, 1_000.0 + settings.clean_cooldown_s) == pytest.approx(first)
    # Scores in the near band keep their value; within the cool-down of a detection nothing is lifted.
    near = settings.alert - settings.near_band / 2
    assert scorer.suppress(state, near, 1e9) == near
    scorer.cool_down(state, 2e9)
    assert scorer.suppress(state, 0.3, 2e9 + 1.0) == pytest.approx(0.3 * settings.damp)


def test_the_tiers_change_neither_the_raw_score_nor_the_detections() -> None:
    settings = StreamingSettings()
    values = [*repeated_spike(), *noisy(400, seed=8, level=120.0, noise=3.0)]
    tiered, plain = StreamingScorer(settings), StreamingScorer(replace(settings, clean_alert=0.0))
    a, b = tiered.new_state(), plain.new_state()
    # The live detector reads ``raw_score``: the tiers only rank ``score``'s values under the alert.
    raw = [tiered.raw_score(a, v, i * STEP_S) for i, v in enumerate(values)]
    assert raw == [plain.raw_score(b, v, i * STEP_S) for i, v in enumerate(values)]
    with_tiers, without = run(tiered, values), run(plain, values)
    assert [s for s in with_tiers if s >= settings.alert] == [s for s in without if s >= settings.alert]
    high = [i for i, s in enumerate(without) if s >= settings.alert - settings.near_band]
    assert [with_tiers[i] for i in high] == [without[i] for i in high]


def test_warmup_scores_zero() -> None:
    settings = StreamingSettings()
    scores = run(StreamingScorer(settings), [1.0, 1e6, -1e6, *noisy(settings.warmup)])
    assert scores[: settings.warmup] == [0.0] * settings.warmup
    assert not any(math.isnan(s) for s in scores)


def test_context_table_is_fixed_size_and_only_fills() -> None:
    settings = StreamingSettings()
    scorer = StreamingScorer(settings)
    state = scorer.new_state()
    run(scorer, noisy(5_000), state)
    assert len(state.seen) == settings.context_bins**settings.context_depth
    assert set(state.seen) <= {0, 1}


def test_an_unseen_context_scores_once_then_is_known() -> None:
    # Half of these values lie below the location: without the drop weight (tested on its own) every
    # unseen context scores the same. The shape channel is off: the context table alone is tested here.
    settings = StreamingSettings(drop_weight=1.0, shape_length=0)
    scorer = StreamingScorer(settings)
    state = scorer.new_state()
    # A warmed-up model of a range 0..10 (five bins of width 2) whose scale makes 0 and 9 ordinary.
    state.n, state.hi, state.loc, state.fast, state.spread = settings.warmup, 10.0, 5.0, 5.0, 10.0
    novel = settings.context_weight / (settings.context_weight + 1.0)
    # One point per hour: no hour slot has the points it needs to be judged.
    values = (0.0, 0.0, 9.0, 9.0, 0.0, 9.0, 0.0)
    scores = [scorer.raw_score(state, v, i * 3600.0) for i, v in enumerate(values)]
    assert [s == pytest.approx(novel) for s in scores] == [True, False, True, True, True, False, False]
    assert max(s for s in scores if s != pytest.approx(novel)) < 0.5


def warm_context_state(scorer: StreamingScorer) -> StreamState:
    """A warmed-up model of a range 0..10 whose last ``shape_length`` values were all 5 (bin 2)."""
    settings = scorer.settings
    state = scorer.new_state()
    state.n, state.hi, state.loc, state.fast, state.spread = settings.warmup, 10.0, 5.0, 5.0, 10.0
    state.ctx = 2
    state.seen[2 * settings.context_bins + 2] = 1  # "5 then 5" is known
    state.win[:] = [5.0] * settings.shape_length
    return state


def test_an_unseen_context_counts_only_when_the_window_shape_is_new_too() -> None:
    settings = StreamingSettings(drop_weight=1.0)
    scorer = StreamingScorer(settings)
    novel = settings.context_weight / (settings.context_weight + 1.0)
    # An empty codebook: every window shape is new, so the unseen context "5 then 9" counts.
    fresh = warm_context_state(scorer)
    assert scorer.raw_score(fresh, 9.0, 0.0) == pytest.approx(novel)
    # The same step when the codebook already holds that window's shape: the context alone is no alert.
    known = warm_context_state(scorer)
    known.codes[0][:] = [0.5] * (settings.shape_length - 1) + [0.9]
    known.code_sums[0], known.code_count = sum(known.codes[0]), 1
    assert scorer.raw_score(known, 9.0, 0.0) < 0.5
    assert known.seen[2 * settings.context_bins + 4] == 1  # the context is learnt all the same


def test_the_shape_codebook_learns_a_repeating_shape_and_stays_bounded() -> None:
    settings = StreamingSettings()
    scorer = StreamingScorer(settings)
    state = scorer.new_state()
    lo, width = 0.0, 10.0
    cycle = [0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 8.0, 6.0, 4.0, 2.0]
    novelties = []
    for value in cycle * 40:
        del state.win[0]
        state.win.append(value)
        novelties.append(scorer.shape_novelty(state, lo, width))
        state.n += 1
    # Ten phases of one cycle: ten codewords at most, and a repeat of the cycle is nothing new.
    assert state.code_count <= len(cycle)
    assert max(novelties[-len(cycle) :]) < settings.shape_agree
    # A window unlike any phase of the cycle is new: farther than the vigilance from every codeword.
    state.win[:] = [10.0] * settings.shape_length
    assert scorer.shape_novelty(state, lo, width) > 1.0
    # Random windows fill the codebook but never grow it past its size.
    rng = random.Random(3)
    for _ in range(2_000):
        del state.win[0]
        state.win.append(rng.uniform(0.0, 10.0))
        scorer.shape_novelty(state, lo, width)
        state.n += 1
    assert state.code_count == settings.shape_codes == len(state.codes)
    assert all(len(code) == settings.shape_length for code in state.codes)


def working_days(days: int = 20) -> tuple[list[float], list[float]]:
    """Every day: 200 ± 1 from 09:00 to 17:00, 100 ± 1 the rest of the day, hourly."""
    day = 86_400.0
    values, stamps = [], []
    rng = random.Random(7)
    for d in range(days):
        for h in range(24):
            values.append((200.0 if 9 <= h <= 17 else 100.0) + rng.gauss(0.0, 1.0))
            stamps.append(d * day + h * 3600.0)
    return values, stamps


def learnt_working_days() -> tuple[StreamingScorer, StreamState]:
    scorer = StreamingScorer()
    state = scorer.new_state()
    for v, t in zip(*working_days(), strict=True):
        scorer.score(state, v, t)
    return scorer, state


def test_a_value_outside_its_hour_slot_range_scores_even_inside_the_global_range() -> None:
    scorer, state = learnt_working_days()
    assert scorer.slot_range(state, 200.0, 3) > 1.0  # a working-hours value at 03:00
    assert scorer.slot_range(state, 100.0, 3) == 0.0


def test_a_daily_pattern_arriving_an_hour_early_or_late_is_not_news() -> None:
    scorer, state = learnt_working_days()
    assert scorer.slot_range(state, 200.0, 8) == 0.0  # work starts at 08:00 instead of 09:00
    assert scorer.slot_range(state, 100.0, 17) == 0.0  # and ends an hour early


def odds(score: float) -> float:
    """The ratio ``r`` behind a score ``r / (r + 1)``."""
    return score / (1.0 - score)


def test_a_drop_below_the_usual_level_counts_more_than_a_rise_of_the_same_size() -> None:
    settings = StreamingSettings()
    unweighted = StreamingScorer(replace(settings, drop_weight=1.0))
    base = noisy(800)
    drop, rise = [*base, 70.0], [*base, 130.0]
    weighted_drop, plain_drop = run(StreamingScorer(settings), drop)[-1], run(unweighted, drop)[-1]
    assert odds(weighted_drop) == pytest.approx(settings.drop_weight * odds(plain_drop))
    assert run(StreamingScorer(settings), rise)[-1] == run(unweighted, rise)[-1]


def test_a_regular_spike_train_stops_alerting_once_every_hour_slot_has_seen_a_spike() -> None:
    # 0 with a spike to 20 every 200 points (16 h 40 min): between spikes the clipped scale would
    # shrink toward 0 and make every spike a new record of shift; the range floor keeps it known.
    settings = StreamingSettings()
    train = [20.0 if i % 200 == 0 else 0.0 for i in range(4_400)]
    spikes = range(2_200, 4_400, 200)  # by then every hour slot (pooled with its neighbours) has had one
    floored = run(StreamingScorer(settings), train)
    assert max(floored[i] for i in spikes) < settings.alert
    unfloored = run(StreamingScorer(replace(settings, range_floor=0.0)), train)
    assert min(unfloored[i] for i in spikes) >= settings.alert

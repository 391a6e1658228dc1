"""Behaviour of the predictor's pure core: demand, trend, upper bound, coverage, ladder step."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt
import pytest

from sentinai.common.decisions import PredictionMade
from sentinai.common.dedup import SeenIds
from sentinai.common.events import MetricSample, MetricSource
from sentinai.predictor import logic
from sentinai.predictor.logic import Forecast, Point, StatForecaster
from sentinai.predictor.windows import History, PredictorState

T0 = datetime(2026, 11, 27, 0, 0, tzinfo=UTC)
LADDER = (1.0, 2.0, 4.0, 8.0)
FORECASTER = StatForecaster()


def points(
    cpu: Iterable[float],
    *,
    request: float = 1.0,
    pool: Iterable[float] | None = None,
    interval: Iterable[float] | None = None,
    gas: float = 0.3,
    step_s: float = 10.0,
) -> list[Point]:
    pools = None if pool is None else list(pool)
    intervals = None if interval is None else list(interval)
    return [
        Point(
            t=T0.timestamp() + i * step_s,
            cpu_cores=float(c),
            cpu_request=request,
            tx_pool=40.0 if pools is None else float(pools[i]),
            gas_used_ratio=gas,
            block_interval=2.0 if intervals is None else float(intervals[i]),
        )
        for i, c in enumerate(cpu)
    ]


def noise(n: int, *, seed: int = 7, sd: float = 0.02) -> npt.NDArray[np.float64]:
    return np.random.default_rng(seed).normal(0, sd, n)


def run(history: Sequence[Point], *, headroom: float = 0.15) -> PredictionMade:
    prediction = logic.predict(
        history,
        forecaster=FORECASTER,
        ladder=LADDER,
        horizon_s=300,
        headroom=headroom,
        chain_id="opmain",
        now=T0 + timedelta(seconds=history[-1].t - T0.timestamp()),
    )
    assert prediction is not None
    return prediction


def test_flat_load_is_stable_and_keeps_the_current_step() -> None:
    prediction = run(points(0.45 + noise(60)))
    assert (prediction.trend, prediction.predicted_vcpu, prediction.current_vcpu) == ("stable", 1.0, 1.0)
    assert 0.4 < prediction.forecast_cores < prediction.upper_bound_cores < 0.55
    assert prediction.key_factors[0] == "CPU at 44% of its 1 vCPU request"
    assert "the current 1 vCPU covers its 5-min peak bound of 0." in prediction.reasoning


def test_rising_load_is_rising_and_asks_for_a_higher_step() -> None:
    prediction = run(points(np.linspace(0.3, 0.9, 60) + noise(60)))
    assert (prediction.trend, prediction.predicted_vcpu) == ("rising", 2.0)
    # 0.06 cores/min for 5 more minutes on top of ~0.9 now.
    assert 1.1 < prediction.forecast_cores < 1.3
    assert "Demand rising +0.06" in " ".join(prediction.key_factors)
    assert "1 vCPU is not enough for its 5-min peak bound of 1." in prediction.reasoning
    assert prediction.reasoning.endswith(": scale to 2 vCPU.")


@pytest.mark.parametrize("after", [3, 10, 20, 25, 30, 40], ids=lambda k: f"{10 * k}s-after-the-jump")
def test_a_step_up_is_a_new_level_not_a_runaway_trend(after: int) -> None:
    cpu = np.r_[np.full(60 - after, 0.5), np.full(after, 0.8)] + noise(60, sd=0.01)
    prediction = run(points(cpu, request=2.0))
    assert prediction.trend == "stable"
    assert 0.75 < prediction.forecast_cores < 0.85
    assert prediction.predicted_vcpu == 2.0


def test_falling_load_is_falling_but_the_step_takes_no_credit_for_the_fall() -> None:
    history = points(np.linspace(0.9, 0.3, 60) + noise(60), request=2.0)
    prediction = run(history)
    assert prediction.trend == "falling"
    assert prediction.forecast_cores < 0.4
    # The ceiling the step is sized on stays at today's level (~0.3), not the forecast fall.
    ceiling = FORECASTER.forecast(history, horizon_s=300).ceiling_cores
    assert ceiling is not None and 0.3 <= ceiling < 0.5
    assert prediction.predicted_vcpu == 1.0


@pytest.mark.parametrize(
    "before",
    [pytest.param(180, id="after-a-healthy-half-hour"), pytest.param(0, id="saturated-since-the-start")],
)
def test_saturated_op_geth_gets_more_than_it_uses(before: int) -> None:
    n = before + 30
    cpu = np.r_[0.5 + noise(before), np.full(n - before, 1.05)]
    pool = np.r_[np.full(before, 40.0), 40.0 + 25.0 * np.arange(n - before)]
    interval = np.r_[np.full(before, 2.0), np.full(n - before, 4.3)]
    prediction = run(points(cpu, pool=pool, interval=interval))
    assert prediction.predicted_vcpu >= 2.0 > prediction.current_vcpu  # type: ignore[operator]
    # Used CPU is pinned at ~1.05; stretched 2.15x blocks say demand is ~1.5 cores.
    assert 1.4 < prediction.forecast_cores < 1.7
    factors = prediction.key_factors
    assert factors[0] == "CPU at 105% of its 1 vCPU request (saturated: it needs more than it gets)"
    assert factors[1].startswith("Block interval 4.3s, 2.1x the 2s norm")
    assert factors[2].startswith("TxPool growth +150/min")


def test_full_blocks_are_a_key_factor() -> None:
    prediction = run(points(0.6 + noise(30), gas=0.97))
    assert "Gas used ratio 0.97: blocks are full" in prediction.key_factors


def test_confidence_is_the_measured_coverage_of_the_bound() -> None:
    calm = 0.45 + noise(180)
    # The newest polls turn bursty: the bound calibrated on the calm past is missed, and said so.
    turned = np.r_[calm[:130], 0.45 + noise(50, seed=3) + 0.3 * (np.arange(50) % 2 == 1)]
    forecasts = [FORECASTER.forecast(points(cpu), horizon_s=300) for cpu in (calm, turned)]
    for forecast in forecasts:
        assert forecast.coverage is not None
        assert forecast.evaluated == 30
        expected = 100 * (forecast.coverage * 30 + 0.5 * 5) / 35
        assert logic.confidence(forecast) == pytest.approx(expected)
    steady, bursty = forecasts
    assert steady.coverage is not None and bursty.coverage is not None
    assert steady.coverage >= 0.8 > bursty.coverage
    assert run(points(calm)).confidence > run(points(turned)).confidence + 10


def test_a_growing_tx_pool_raises_the_forecast_before_cpu_moves() -> None:
    # Every 25 polls the pool swells and, 8 polls (80 s) later, op-geth needs 0.4 more cores for a while.
    n, lead = 200, 8
    swell = (np.arange(n) % 25 >= 15) & (np.arange(n) % 25 < 22)
    cpu = 0.5 + 0.4 * np.roll(swell, lead) + noise(n, sd=0.01)
    pool = 40 + 400 * swell
    now = n - 25 + 16  # the pool swelled a poll ago; CPU has not moved yet
    with_pool = FORECASTER.forecast(points(cpu[:now], pool=pool[:now]), horizon_s=120)
    without = FORECASTER.forecast(points(cpu[:now]), horizon_s=120)
    assert with_pool.point_cores > without.point_cores + 0.1


def test_confidence_is_shrunk_toward_half_while_nothing_could_be_checked() -> None:
    # 20 polls of 10 s span less than the 5-minute horizon: no past forecast has come due.
    forecast = FORECASTER.forecast(points(0.45 + noise(20)), horizon_s=300)
    assert (forecast.coverage, forecast.evaluated) == (None, 0)
    assert logic.confidence(forecast) == 50.0
    assert "no past forecast could be checked yet" in run(points(0.45 + noise(20))).reasoning


def test_short_history_gives_no_prediction() -> None:
    history = points(0.45 + noise(9))
    kwargs = {"forecaster": FORECASTER, "ladder": LADDER, "horizon_s": 300.0, "headroom": 0.15}
    assert logic.predict(history, chain_id="opmain", now=T0, **kwargs) is None  # type: ignore[arg-type]
    rpc_only = [
        Point(t=p.t, cpu_cores=None, cpu_request=None, tx_pool=1, gas_used_ratio=0.3, block_interval=2)
        for p in points(0.45 + noise(30))
    ]
    assert logic.predict(rpc_only, chain_id="opmain", now=T0, **kwargs) is None  # type: ignore[arg-type]


def test_same_history_gives_the_same_event_id() -> None:
    history = points(0.45 + noise(30))
    assert run(history).event_id == run(history).event_id
    assert run(history).event_id != run(history[:-1]).event_id


def forecast(upper: float) -> Forecast:
    return Forecast(
        point_cores=upper, upper_cores=upper, trend="stable", slope_per_min=0.0, key_factors=(), coverage=None
    )


@pytest.mark.parametrize(
    ("upper", "current", "expected"),
    [
        pytest.param(0.5, 1.0, 1.0, id="fits-current-step"),
        pytest.param(0.9, 1.0, 2.0, id="needs-headroom-above-current"),
        pytest.param(1.5, 1.0, 2.0, id="next-step-up"),
        pytest.param(2.5, 1.0, 4.0, id="skips-a-step"),
        pytest.param(30.0, 4.0, 8.0, id="capped-at-the-top"),
        pytest.param(0.5, 4.0, 1.0, id="down-with-double-headroom"),
        pytest.param(0.65, 2.0, 1.0, id="down-when-double-headroom-fits"),
        pytest.param(0.85, 2.0, 2.0, id="hovering-near-a-step-keeps-current"),
        pytest.param(1.5, 8.0, 4.0, id="part-way-down-when-the-full-step-lacks-the-down-margin"),
        pytest.param(0.5, None, 1.0, id="unknown-allocation"),
    ],
)
def test_recommend_picks_the_smallest_step_with_headroom(
    upper: float, current: float | None, expected: float
) -> None:
    assert logic.recommend(forecast(upper), ladder=LADDER, current_vcpu=current, headroom=0.25) == expected


@pytest.mark.parametrize(
    ("level", "point", "ceiling", "short", "expected"),
    [
        pytest.param(3.0, 3.0, 4.5, True, 4.0, id="a-high-ceiling-over-a-lower-level-stays"),
        pytest.param(3.0, 4.2, 4.5, True, 4.0, id="a-correction-alone-moves-nothing-up"),
        pytest.param(3.85, 3.85, 4.2, True, 8.0, id="a-full-step-with-late-blocks-goes-up"),
        pytest.param(3.85, 3.85, 3.9, True, 4.0, id="a-full-step-that-still-holds-the-ceiling-stays"),
        pytest.param(3.85, 3.85, 4.2, None, 4.0, id="without-block-intervals-96-percent-is-not-full"),
        pytest.param(3.97, 3.97, 4.2, None, 8.0, id="without-block-intervals-99-percent-is-full"),
    ],
)
def test_a_step_up_needs_the_level_to_fill_the_step(
    level: float, point: float, ceiling: float, short: bool | None, expected: float
) -> None:
    f = Forecast(
        point_cores=point,
        upper_cores=ceiling,
        trend="stable",
        slope_per_min=0.0,
        key_factors=(),
        coverage=None,
        ceiling_cores=ceiling,
        level_cores=level,
        short=short,
    )
    assert logic.recommend(f, ladder=LADDER, current_vcpu=4.0, headroom=0.0, up_tolerance=0.05) == expected


def test_a_pinned_op_geth_climbing_fast_gets_the_step_that_holds_it_in_one_move() -> None:
    # Two hours at 0.4 cores on 1 vCPU, sampled every minute; then op-geth is pinned and blocks
    # take 4.75 s: demand is ~1.54 cores and was 0.4 a minute ago.
    cpu = np.r_[0.4 + noise(119, sd=0.01), 1.0]
    interval = np.r_[np.full(119, 2.0), 4.75]
    prediction = run(points(cpu, interval=interval, step_s=60.0), headroom=0.0)
    # Read at once: neither the level's median nor the block-interval smoothing waits for more samples.
    assert prediction.forecast_cores == pytest.approx(1.54, abs=0.02)
    # 2 vCPU would hold 1.54 cores now, but not the rise that is still going on; the next change
    # could only land after the cooldown.
    assert prediction.predicted_vcpu == 4.0


@pytest.mark.parametrize(
    ("interval", "short", "expected"),
    [
        pytest.param(2.0, False, 4.0, id="blocks-on-time-it-has-what-it-needs"),
        pytest.param(2.2, False, 4.0, id="blocks-a-little-late-still-keeping-up"),
        pytest.param(3.0, True, 8.0, id="blocks-late-it-is-short"),
    ],
)
def test_at_its_request_op_geth_is_short_only_when_its_blocks_run_late(
    interval: float, short: bool, expected: float
) -> None:
    # Two hours at ~2.5 cores on 4 vCPU, then a crest at 97 % of the request for five minutes.
    cpu = np.r_[2.5 + noise(115, sd=0.05), np.full(5, 3.88)]
    intervals = np.r_[np.full(115, 2.0), np.full(5, interval)]
    history = points(cpu, request=4.0, interval=intervals, step_s=60.0)
    forecast = FORECASTER.forecast(history, horizon_s=300)
    assert forecast.short is short
    prediction = run(history, headroom=0.0)
    assert prediction.predicted_vcpu == expected
    if short:
        assert "(saturated: it needs more than it gets)" in prediction.key_factors[0]
    else:
        # On time, what it uses is what it needs (no 10 % "pinned" premium on the estimate).
        assert prediction.forecast_cores == pytest.approx(3.88, abs=0.02)
        assert prediction.key_factors[0] == "CPU at 97% of its 4 vCPU request (blocks on time: it keeps up)"


@pytest.mark.parametrize(
    ("share", "expected", "pinned"),
    [
        pytest.param(0.97, 4.0, False, id="97-percent-keeps-up"),
        pytest.param(1.0, 8.0, True, id="at-the-request"),
    ],
)
def test_without_block_intervals_only_usage_at_the_request_counts_as_pinned(
    share: float, expected: float, pinned: bool
) -> None:
    # A chain (or a NAB series) that reports no block interval: saturation is all there is to go on,
    # so it must be the whole request, not the 95 % that counts where late blocks corroborate it.
    cpu = np.r_[2.5 + noise(115, sd=0.05), np.full(5, 4.0 * share)]
    history = [
        Point(t=p.t, cpu_cores=p.cpu_cores, cpu_request=p.cpu_request, tx_pool=None, gas_used_ratio=None,
              block_interval=None)
        for p in points(cpu, request=4.0, step_s=60.0)
    ]  # fmt: skip
    assert FORECASTER.forecast(history, horizon_s=300).short is None
    prediction = run(history, headroom=0.0)
    assert prediction.predicted_vcpu == expected
    saturated = "(saturated: it needs more than it gets)"
    assert (saturated in prediction.key_factors[0]) is pinned, prediction.key_factors[0]


def test_recommend_respects_a_smaller_ladder() -> None:
    assert logic.recommend(forecast(5.0), ladder=(4.0, 1.0, 2.0), current_vcpu=1.0, headroom=0.2) == 4.0


# ------------------------------------------------------------------------------------------ history


def sample(
    at: float, source: MetricSource, metrics: dict[str, float], *, event_id: str, up: bool = True
) -> MetricSample:
    return MetricSample(
        event_id=event_id,
        occurred_at=T0 + timedelta(seconds=at),
        chain_id="opmain",
        component="op-geth",
        source=source,
        metrics=metrics,
        target_up=up,
    )


def test_rpc_and_k8s_samples_of_one_poll_merge_into_one_point() -> None:
    history = History(max_points=10, span_s=3600)
    history.add(sample(0, "k8s", {"cpuCores": 0.4, "cpuRequestCores": 1.0, "memoryBytes": 1e9}, event_id="a"))
    history.add(
        sample(0, "rpc", {"txPoolCount": 12, "gasUsedRatio": 0.2, "blockInterval": 2.0}, event_id="b")
    )
    history.add(sample(2, "rpc", {"txPoolCount": 15, "gasUsedRatio": 0.3}, event_id="c"))
    history.add(sample(2, "k8s", {}, event_id="d", up=False))
    first, second = history.points()
    assert first == Point(
        t=T0.timestamp(), cpu_cores=0.4, cpu_request=1.0, tx_pool=12, gas_used_ratio=0.2, block_interval=2.0
    )
    assert (second.cpu_cores, second.tx_pool, second.block_interval) == (None, 15, None)
    assert history.newest == T0 + timedelta(seconds=2)


def test_history_is_bounded_by_points_and_span() -> None:
    by_points = History(max_points=5, span_s=3600)
    by_span = History(max_points=100, span_s=60)
    for i in range(20):
        for history in (by_points, by_span):
            history.add(sample(10 * i, "k8s", {"cpuCores": i}, event_id=f"s{i}"))
    assert [p.cpu_cores for p in by_points.points()] == [15, 16, 17, 18, 19]
    assert [p.cpu_cores for p in by_span.points()] == [13, 14, 15, 16, 17, 18, 19]


def test_redelivered_sample_is_folded_once_and_quiet_chains_are_not_due() -> None:
    state = PredictorState(max_points=10, span_s=3600, seen=SeenIds(100))
    first = sample(0, "k8s", {"cpuCores": 0.4}, event_id="a")
    assert state.add(first)
    assert not state.add(first)
    assert len(state.chains["opmain"]) == 1
    assert [chain for chain, _ in state.due()] == ["opmain"]
    state.predicted_at["opmain"] = first.occurred_at
    assert state.due() == []
    state.add(sample(2, "k8s", {"cpuCores": 0.5}, event_id="b"))
    assert [chain for chain, _ in state.due()] == ["opmain"]


def said(*, ceiling: float, vcpu: float, current: float | None, headroom: float = 0.0) -> str:
    forecast = logic.Forecast(
        point_cores=ceiling * 0.8, upper_cores=ceiling * 0.9, trend="stable", slope_per_min=0.0,
        key_factors=("CPU at 50% of its 2 vCPU request",), coverage=0.9, evaluated=30, ceiling_cores=ceiling,
    )  # fmt: skip
    return logic.reasoning(forecast, vcpu=vcpu, current=current, horizon_s=300, headroom=headroom)


@pytest.mark.parametrize(
    ("ceiling", "vcpu", "current", "headroom", "verdict"),
    [
        (1.5, 2, 2, 0.0, "the current 2 vCPU covers its 5-min peak bound of 1.50 cores (25% spare)."),
        (
            1.5,
            2,
            2,
            0.2,
            "the current 2 vCPU covers its 5-min peak bound of 1.50 cores plus 20% headroom (10% spare).",
        ),
        (2.6, 4, 2, 0.0, "2 vCPU is not enough for its 5-min peak bound of 2.60 cores: scale to 4 vCPU."),
        (
            0.5,
            1,
            4,
            0.0,
            "1 vCPU still covers its 5-min peak bound of 0.50 cores (50% spare), so 4 can come down.",
        ),
        (
            4.1,
            4,
            4,
            0.0,
            "the current 4 vCPU stays, below its 5-min peak bound of 4.10 cores (see the key factors).",
        ),
        (0.9, 1, None, 0.0, "1 vCPU covers its 5-min peak bound of 0.90 cores (10% spare)."),
    ],
    ids=["keeps", "keeps-with-headroom", "up", "down", "stays-below-its-bound", "no-current"],
)
def test_the_verdict_states_the_real_margin_against_the_peak_bound(
    ceiling: float, vcpu: float, current: float | None, headroom: float, verdict: str
) -> None:
    text = said(ceiling=ceiling, vcpu=vcpu, current=current, headroom=headroom)
    assert text.endswith(f"so {verdict}"), text
    assert text.startswith("CPU at 50% of its 2 vCPU request. op-geth demand is stable")

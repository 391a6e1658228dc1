"""Behaviour of the detector's pure core: scoring (both modes), rules, log signatures and episodes."""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from sentinai.common import catalog
from sentinai.common.dedup import SeenIds
from sentinai.common.events import AnomalyDetected, AnomalyResolved, LogBatch, MetricSample
from sentinai.detector import findings, gauges, liveness, logic
from sentinai.detector.logic import Outcome
from sentinai.detector.settings import DetectorSettings
from sentinai.detector.streaming import StreamingScorer, StreamingSettings
from sentinai.detector.windows import ComponentState, DetectorState, RollingWindow

T0 = datetime(2026, 11, 26, 23, 0, tzinfo=UTC)
LF = "t=2026-11-26T23:14:15+0000 "  # logfmt (op-node, op-batcher, op-proposer)
GETH_WARN = "WARN [11-26|23:14:15.123] "  # geth terminal format
# Most tests pin the seed's z-score; the streaming default has its own section below.
SETTINGS = DetectorSettings(mode="zscore")
MODES = ("zscore", "streaming")
_ids = itertools.count()


def sample(
    metrics: dict[str, float],
    *,
    at: float = 0.0,
    component: str = "op-geth",
    source: str = "k8s",
    chain: str = "opmain",
    target_up: bool = True,
    error: str | None = None,
    event_id: str | None = None,
) -> MetricSample:
    return MetricSample(
        event_id=event_id or f"s{next(_ids)}",
        occurred_at=T0 + timedelta(seconds=at),
        chain_id=chain,
        component=component,
        source=source,
        metrics=metrics,
        target_up=target_up,
        error=error,
    )


def logs(lines: list[str], *, at: float = 0.0, component: str = "op-node", chain: str = "opmain") -> LogBatch:
    return LogBatch(
        event_id=f"l{next(_ids)}",
        occurred_at=T0 + timedelta(seconds=at),
        chain_id=chain,
        component=component,
        lines=tuple(lines),
    )


def fresh() -> DetectorState:
    return DetectorState.empty(window=SETTINGS.window, seen_capacity=1000)


def feed(state: DetectorState, samples: list[MetricSample], **overrides: object) -> list[Outcome]:
    settings = SETTINGS.model_copy(update=overrides) if overrides else SETTINGS
    scorer = logic.make_scorer(settings)
    out: list[Outcome] = []
    for s in samples:
        out += logic.evaluate_sample(state, s, settings=settings, scorer=scorer)
    return out


def detected(outcomes: list[Outcome]) -> list[AnomalyDetected]:
    return [o for o in outcomes if isinstance(o, AnomalyDetected)]


def resolved(outcomes: list[Outcome]) -> list[AnomalyResolved]:
    return [o for o in outcomes if isinstance(o, AnomalyResolved)]


def cpu_series(values: list[float], *, start: float = 0.0, **kw: object) -> list[MetricSample]:
    return [sample({catalog.CPU_USAGE: v}, at=start + 5 * i, **kw) for i, v in enumerate(values)]  # type: ignore[arg-type]


def noisy(n: int, *, seed: int = 5, level: float = 50.0, sigma: float = 2.0) -> list[float]:
    rng = random.Random(seed)
    return [level + rng.gauss(0.0, sigma) for _ in range(n)]


# ------------------------------------------------------------------------------------ the window


@pytest.mark.parametrize(
    ("size", "values"),
    [
        pytest.param(5, [1.0, 2.0, 3.0], id="partly-filled"),
        pytest.param(5, [float(i % 7) for i in range(23)], id="wrapped-several-times"),
        pytest.param(60, [1e9 + (i % 3) for i in range(500)], id="large-offset-small-spread"),
    ],
)
def test_window_mean_and_std_match_the_last_values(size: int, values: list[float]) -> None:
    window = RollingWindow(size)
    for v in values:
        window.push(v)
    tail = values[-size:]
    assert window.values() == tail
    assert window.mean == pytest.approx(np.mean(tail), rel=1e-12)
    assert window.std == pytest.approx(np.std(tail), rel=1e-6, abs=1e-9)


def test_seen_ids_forget_the_oldest_beyond_capacity() -> None:
    seen = SeenIds(2)
    assert [seen.add("a"), seen.add("a"), seen.add("b"), seen.add("c"), seen.add("a")] == [
        True,
        False,
        True,
        True,
        True,
    ]
    assert len(seen) == 2


# ----------------------------------------------------------------------------------------- z-score


def test_seed_example_reproduces_z_3_2_medium() -> None:
    state = fresh()
    baseline = [45.3, 65.3] * 30  # mean 55.3, population std 10
    out = feed(state, cpu_series([*baseline, 87.3]))
    [anomaly] = detected(out)
    assert anomaly.metric == "cpuUsage"
    assert anomaly.value == 87.3
    assert anomaly.z_score == pytest.approx(3.2)
    assert anomaly.direction == "up"
    assert anomaly.severity == "medium"
    assert anomaly.description == "CPU spike detected: 87.3% (3.2σ above baseline)"
    assert anomaly.rule == "zscore"
    seed_shape = anomaly.model_dump(by_alias=True)
    assert {"metric", "value", "zScore", "direction", "severity", "description"} <= seed_shape.keys()


def test_baseline_excludes_the_point_being_scored() -> None:
    state = fresh()
    history = [50.0, 52.0, 48.0, 51.0, 49.0, 50.0, 53.0, 47.0, 50.0, 50.0]
    out = feed(state, cpu_series([*history, 70.0]))
    expected = (70.0 - np.mean(history)) / np.std(history)
    [anomaly] = detected(out)
    assert anomaly.z_score == pytest.approx(expected, abs=0.01)
    window = state.chains["opmain"].components["op-geth"].windows["cpuUsage"]
    assert window.values() == [*history, 70.0]


@pytest.mark.parametrize(
    ("metric", "flat", "new", "severity"),
    [
        pytest.param("cpuUsage", 40.0, 40.3, None, id="cpu-tiny-change-on-flat-series-is-quiet"),
        pytest.param("cpuUsage", 40.0, 45.0, "high", id="cpu-real-jump-on-flat-series-alerts"),
        pytest.param("baseFeeGwei", 0.001, 0.0011, None, id="relative-floor-for-unlisted-metric"),
        pytest.param("memoryBytes", 2e9, 2e9 + 4096, None, id="bytes-floor"),
    ],
)
def test_flat_window_gets_a_std_floor(metric: str, flat: float, new: float, severity: str | None) -> None:
    state = fresh()
    out = feed(state, [sample({metric: v}, at=i) for i, v in enumerate([flat] * 20 + [new])])
    assert [a.severity for a in detected(out)] == ([severity] if severity else [])
    assert all(math.isfinite(a.z_score) for a in detected(out))


def test_no_score_before_min_points() -> None:
    state = fresh()
    out = feed(state, cpu_series([50.0, 51.0, 49.0] * 3 + [99.0]))  # 9 points of history
    assert detected(out) == []
    out = feed(state, cpu_series([99.0], start=100))  # the 10th point makes history long enough
    assert len(detected(out)) == 1


@pytest.mark.parametrize("metric", sorted(catalog.MONOTONIC), ids=str)
@pytest.mark.parametrize("mode", MODES)
def test_monotonic_metrics_are_never_scored(metric: str, mode: str) -> None:
    state = fresh()
    values = [float(i) for i in range(100)] + [10_000.0]
    out = feed(state, [sample({metric: v}, at=i) for i, v in enumerate(values)], mode=mode)
    assert [a for a in detected(out) if a.rule in {"zscore", "streaming"}] == []
    component = state.chains["opmain"].components["op-geth"]
    assert metric not in component.windows
    assert metric not in component.streams


def test_non_finite_values_are_skipped_not_averaged() -> None:
    state = fresh()
    feed(state, cpu_series([50.0, 51.0, float("nan"), 49.0, float("inf")]))
    window = state.chains["opmain"].components["op-geth"].windows["cpuUsage"]
    assert window.values() == [50.0, 51.0, 49.0]


@pytest.mark.parametrize(
    ("z", "severity"),
    [
        (2.1, "low"),
        (2.49, "low"),
        (2.5, "medium"),
        (3.2, "medium"),
        (3.49, "medium"),
        (3.5, "high"),
        (-4.0, "high"),
    ],
    ids=str,
)
def test_severity_bands(z: float, severity: str) -> None:
    assert findings.severity_for(z) == severity


@pytest.mark.parametrize(
    ("metric", "value", "z", "text"),
    [
        pytest.param("cpuUsage", 87.3, 3.2, "CPU spike detected: 87.3% (3.2σ above baseline)", id="cpu-up"),
        pytest.param(
            "txPoolCount", 12.0, -2.4, "TxPool drop detected: 12 txs (2.4σ below baseline)", id="pool-down"
        ),
        pytest.param(
            "gasUsedRatio",
            0.987,
            2.9,
            "Gas used ratio spike detected: 0.987 (2.9σ above baseline)",
            id="ratio",
        ),
        pytest.param(
            "blockInterval", 6.25, 5.0, "Block interval spike detected: 6.25s (5.0σ above baseline)"
        ),
        pytest.param("someNewGauge", 1500.0, 2.2, "someNewGauge spike detected: 1500 (2.2σ above baseline)"),
    ],
)
def test_description_text(metric: str, value: float, z: float, text: str) -> None:
    assert findings.describe_deviation(metric, value, z) == text


# ------------------------------------------------------------------------------ both scoring modes


def test_streaming_is_the_default_mode_and_zscore_stays_selectable(monkeypatch: pytest.MonkeyPatch) -> None:
    assert DetectorSettings().mode == "streaming"
    assert isinstance(logic.make_scorer(DetectorSettings()), gauges.StreamingGauges)
    monkeypatch.setenv("SENTINAI_DETECTOR_MODE", "zscore")
    assert isinstance(logic.make_scorer(DetectorSettings()), gauges.ZScoreScorer)


def test_live_streaming_settings_are_the_nab_defaults_with_the_cooldown_replaced_and_no_tiers() -> None:
    live = gauges.live_streaming_settings(DetectorSettings(streaming_cooldown_s=900.0))
    assert live == replace(StreamingSettings(), cooldown_s=900.0, clean_alert=0.0)
    assert StreamingSettings().cooldown_s == 59_000.0  # NAB's own figure is untouched
    assert StreamingSettings().clean_alert > 0.0
    # The tiers only rank NAB's scores under the alert: the raw score live findings use is the same.
    rng = random.Random(3)
    values = [50.0 + rng.gauss(0.0, 2.0) for _ in range(600)] + [90.0, *[50.0] * 50, 85.0]
    nab, live_model = StreamingScorer(), StreamingScorer(live)
    a, b = nab.new_state(), live_model.new_state()
    nab_raw = [nab.raw_score(a, v, i * 2.0) for i, v in enumerate(values)]
    assert nab_raw == [live_model.raw_score(b, v, i * 2.0) for i, v in enumerate(values)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "values",
    [
        pytest.param([40.0] * 400, id="flat"),
        pytest.param([40.0 + (0.01 if i % 7 == 0 else 0.0) for i in range(400)], id="flat-with-tiny-wobble"),
    ],
)
def test_a_flat_series_stays_quiet(mode: str, values: list[float]) -> None:
    assert detected(feed(fresh(), cpu_series(values), mode=mode)) == []


@pytest.mark.parametrize(("mode", "rule"), [("zscore", "zscore"), ("streaming", "streaming")])
def test_a_cpu_step_is_flagged_at_its_first_sample(mode: str, rule: str) -> None:
    state = fresh()
    baseline = noisy(200)
    out = feed(state, cpu_series([*baseline, *[85.0] * 20]), mode=mode)
    step = [a for a in detected(out) if a.occurred_at >= T0 + timedelta(seconds=5 * 200)]
    [anomaly] = step
    window = baseline[-SETTINGS.window :]
    assert anomaly.occurred_at == T0 + timedelta(seconds=5 * 200)
    assert (anomaly.value, anomaly.direction, anomaly.rule) == (85.0, "up", rule)
    assert anomaly.z_score == pytest.approx((85.0 - np.mean(window)) / np.std(window), abs=0.01)
    assert anomaly.severity == "high"
    assert anomaly.description.startswith(f"CPU spike detected: 85% ({anomaly.z_score:.1f}σ above baseline")


def test_noise_alone_gives_far_fewer_anomalies_in_streaming_mode() -> None:
    """Healthy Gaussian noise: the seed's |z| > 2 fires on about one point in twenty."""
    values = cpu_series(noisy(1_000, seed=9))
    zscore = detected(feed(fresh(), values, mode="zscore"))
    streaming = detected(feed(fresh(), values, mode="streaming"))
    assert len(zscore) > 40
    assert len(streaming) <= 3


# --------------------------------------------------------------------------------- streaming mode


def settled() -> DetectorState:
    """25 minutes of healthy CPU at one poll per 5 s: past the model's warm-up and first alerts."""
    state = fresh()
    feed(state, cpu_series(noisy(300)), mode="streaming")
    return state


AFTER = 1_500.0  # the first poll after ``settled``


def test_streaming_finding_keeps_the_seed_fields_and_quotes_the_score() -> None:
    [anomaly] = detected(feed(settled(), cpu_series([70.0], start=AFTER), mode="streaming"))
    score = float(anomaly.description.rsplit("anomaly score ", 1)[1].rstrip(")"))
    assert anomaly.rule == "streaming"
    assert anomaly.severity == findings.streaming_severity(score)
    assert anomaly.description == (
        f"CPU spike detected: 70% ({anomaly.z_score:.1f}σ above baseline, anomaly score {score:.2f})"
    )
    assert anomaly.z_score > 2


@pytest.mark.parametrize(
    ("score", "severity"),
    [(0.56, "low"), (0.66, "low"), (0.67, "medium"), (0.79, "medium"), (0.8, "high"), (0.99, "high")],
    ids=str,
)
def test_streaming_severity_bands(score: float, severity: str) -> None:
    assert findings.streaming_severity(score) == severity


def test_each_series_keeps_a_stream_state_next_to_its_window() -> None:
    state = fresh()
    samples = [sample({"cpuUsage": v, "memoryUsage": 40.0}, at=5 * i) for i, v in enumerate(noisy(50))]
    feed(state, samples, mode="streaming")
    component = state.chains["opmain"].components["op-geth"]
    assert set(component.streams) == set(component.windows) == {"cpuUsage", "memoryUsage"}
    assert component.streams["cpuUsage"].n == 50


def test_streaming_mode_judges_a_young_series_by_zscore_until_the_model_has_warmed_up() -> None:
    out = feed(fresh(), cpu_series([50.0, 51.0, 49.0] * 5 + [95.0]), mode="streaming")
    [anomaly] = detected(out)
    assert (anomaly.value, anomaly.rule) == (95.0, "zscore")


def test_a_young_series_opens_no_episode_for_the_noise_the_seed_threshold_would_flag() -> None:
    # Thirty healthy points, then a spike, all inside the model's warm-up: a fresh deployment.
    series = cpu_series([*noisy(29, seed=11), 95.0])
    seed_flags = detected(feed(fresh(), series[:29], mode="zscore"))
    assert seed_flags, "this noise must be something the seed's |z| > 2 flags"
    [anomaly] = detected(feed(fresh(), series, mode="streaming"))
    assert (anomaly.value, anomaly.rule) == (95.0, "zscore")


def test_a_model_alert_within_the_window_noise_is_no_finding_and_starts_no_cooldown() -> None:
    state = settled()
    stream = state.chains["opmain"].components["op-geth"].streams["cpuUsage"]
    stream.seen[:] = bytes(len(stream.seen))  # forget every context: the next one is "never seen"
    cooling_until = stream.cool_until
    assert detected(feed(state, cpu_series([50.0], start=AFTER), mode="streaming")) == []
    assert stream.cool_until == cooling_until < T0.timestamp() + AFTER


def test_within_the_cooldown_only_a_much_larger_change_is_reported() -> None:
    state = settled()
    spike = [60.0, *noisy(10, seed=6), 60.0, *noisy(10, seed=7), 150.0]  # all inside the 600 s cool-down
    assert [a.value for a in detected(feed(state, cpu_series(spike, start=AFTER), mode="streaming"))] == [
        60.0,
        150.0,
    ]


def test_streaming_episode_resolves_after_k_clean_evaluations() -> None:
    out = feed(settled(), cpu_series([90.0, 50.0, 50.0, 50.0], start=AFTER), mode="streaming")
    [anomaly] = detected(out)
    [closed] = resolved(out)
    assert closed.episode_id == anomaly.episode_id
    assert (closed.rule, closed.duration_s) == ("streaming", 15.0)


# ---------------------------------------------------------------------------------------- liveness


@pytest.mark.parametrize(
    ("metrics", "component", "expected", "text"),
    [
        pytest.param(
            {"secondsSinceHead": 9.0},
            "op-geth",
            ("secondsSinceHead", "high", 4.5),
            "Sequencer stall: unsafe head has not advanced for 9.0s (3 block times = 6.0s)",
            id="stall-op-geth-head",
        ),
        pytest.param(
            {"unsafeL2Age": 7.0},
            "op-node",
            ("unsafeL2Age", "high", 3.5),
            "Sequencer stall:",
            id="stall-unsafe-age",
        ),
        pytest.param(
            {"l1HeadAge": 180.0}, "op-node", ("l1HeadAge", "high", 1.5), "L1 head stale", id="l1-stale"
        ),
        pytest.param(
            {"peerCount": 0.0}, "op-node", ("peerCount", "medium", 1.0), "Peer loss", id="node-no-peers"
        ),
        pytest.param(
            {"peerCount": 0.0}, "op-geth", ("peerCount", "low", 1.0), "Peer loss", id="geth-no-peers"
        ),
        pytest.param(
            {"podReady": 0.0}, "op-node", ("podReady", "high", 1.0), "Pod not ready", id="pod-not-ready"
        ),
        pytest.param(
            {"memoryUsage": 97.0},
            "op-geth",
            ("memoryUsage", "high", 1.02),
            "Memory near limit",
            id="memory-high",
        ),
    ],
)
def test_liveness_rules_fire(
    metrics: dict[str, float], component: str, expected: tuple[str, str, float], text: str
) -> None:
    metric, severity, z = expected
    [finding] = liveness.liveness_findings(
        ComponentState(), sample(metrics, component=component), settings=SETTINGS
    )
    assert (finding.metric, finding.severity, finding.rule) == (metric, severity, "liveness")
    assert finding.z_score == pytest.approx(z)
    assert finding.description.startswith(text)


@pytest.mark.parametrize(
    "metrics",
    [
        pytest.param({"secondsSinceHead": 5.9}, id="head-within-3-block-times"),
        pytest.param({"l1HeadAge": 100.0}, id="l1-head-fresh"),
        pytest.param({"peerCount": 3.0}, id="has-peers"),
        pytest.param({"podReady": 1.0}, id="pod-ready"),
        pytest.param({"memoryUsage": 80.0}, id="memory-fine"),
        pytest.param({"unsafeSafeLag": 900.0}, id="lag-high-but-no-trend-yet"),
    ],
)
def test_liveness_rules_stay_quiet_when_healthy(metrics: dict[str, float]) -> None:
    assert (
        liveness.liveness_findings(ComponentState(), sample(metrics, component="op-node"), settings=SETTINGS)
        == []
    )


def test_stall_threshold_follows_settings() -> None:
    settings = SETTINGS.model_copy(update={"block_time_s": 1.0, "stall_block_times": 5.0})
    [finding] = liveness.liveness_findings(
        ComponentState(), sample({"secondsSinceHead": 5.5}), settings=settings
    )
    assert finding.description.endswith("(5 block times = 5.0s)")


def test_target_down_quotes_the_error() -> None:
    down = sample({}, component="op-node", source="rpc", target_up=False, error="connection refused :9545")
    [finding] = liveness.liveness_findings(ComponentState(), down, settings=SETTINGS)
    assert (finding.metric, finding.severity, finding.direction) == ("targetUp", "high", "down")
    assert finding.description == "op-node rpc target down: connection refused :9545"


def test_lag_alerts_only_while_over_threshold_and_growing() -> None:
    memory = ComponentState()

    def severities(lag: float) -> list[str]:
        found = liveness.liveness_findings(
            memory, sample({"unsafeSafeLag": lag}, component="op-node"), settings=SETTINGS
        )
        return [f.severity for f in found]

    assert [severities(v) for v in (100, 200, 310, 310, 400, 700, 650, 800)] == [
        [],  # under the threshold
        [],
        ["medium"],  # over 300 and growing
        ["medium"],  # holding still keeps the trend
        ["medium"],
        ["high"],  # over twice the threshold
        [],  # the safe head caught up a bit: the batcher posted
        ["high"],
    ]


def test_restart_increase_alerts_and_holds_through_a_crash_loop() -> None:
    memory = ComponentState()

    def fired(restarts: float, at: float) -> bool:
        s = sample({"restarts": restarts}, at=at)
        return bool(liveness.liveness_findings(memory, s, settings=SETTINGS))

    assert not fired(2, 0)  # the first count is only a reference
    assert not fired(2, 10)
    assert fired(3, 20)
    assert fired(3, 200)  # within the hold: one episode for the crash loop
    assert not fired(3, 321)


# -------------------------------------------------------------------------------------------- logs


@pytest.mark.parametrize(
    ("line", "component", "metric", "severity"),
    [
        pytest.param(
            LF + 'lvl=error msg="Engine failed temporarily, backing off sequencer" err="timeout"',
            "op-node",
            "log:sequencer_stall",
            "high",
            id="logfmt-sequencer-stall",
        ),
        pytest.param(
            LF + 'lvl=warn msg="L1 temporary error" err="dial tcp: connection refused"',
            "op-node",
            "log:l1_rpc_outage",
            "high",
            id="logfmt-l1-temporary-error",
        ),
        pytest.param(
            LF + 'lvl=warn msg="failed to poll L1 block" label=latest err="429"',
            "op-node",
            "log:l1_rpc_outage",
            "high",
            id="logfmt-failed-to-poll",
        ),
        pytest.param(
            LF + 'lvl=warn msg="unable to publish transaction" err="insufficient funds for gas"',
            "op-batcher",
            "log:batcher_failure",
            "high",
            id="batcher-insufficient-funds",
        ),
        pytest.param(
            LF + 'lvl=warn msg="unable to publish transaction" err="transaction is underpriced"',
            "op-batcher",
            "log:batcher_failure",
            "medium",
            id="batcher-underpriced",
        ),
        pytest.param(
            LF + 'lvl=eror msg="Failed to send proposal transaction" err="nonce too low"',
            "op-proposer",
            "log:proposer_failure",
            "medium",
            id="proposer-failure-old-eror-level",
        ),
        pytest.param(
            GETH_WARN + "Database compacting, degraded performance database=/data/geth/chaindata",
            "op-geth",
            "log:op_geth_cpu_saturation",
            "medium",
            id="geth-compacting",
        ),
        pytest.param(
            LF + 'lvl=warn msg="Failed to share forkchoice-updated signal" err="dial :8551"',
            "op-node",
            "log:engine_api_failure",
            "medium",
            id="engine-api",
        ),
        pytest.param(
            LF + 'lvl=error msg="Error initializing the rollup node" '
            'err="401 Unauthorized: signature is invalid"',
            "op-node",
            "log:jwt_mismatch",
            "critical",
            id="jwt-mismatch",
        ),
        pytest.param(
            GETH_WARN + "Disk space is running low. Geth will shutdown if disk space runs below "
            "critical level. available=1.2GiB path=/data",
            "op-geth",
            "log:disk_pressure",
            "critical",
            id="geth-disk-low",
        ),
        pytest.param(
            LF + 'lvl=warn msg="error reconnecting to static peer" peer=16Uiu2 err="dial backoff"',
            "op-node",
            "log:peer_loss",
            "low",
            id="static-peer",
        ),
        pytest.param(
            "INFO [11-26|23:14:15.123] Looking for peers                        peercount=0 tried=3 static=1",
            "op-geth",
            "log:peer_loss",
            "low",
            id="geth-looking-for-peers-padded-info",
        ),
        pytest.param(
            LF + 'lvl=warn msg="L1 head signal indicates a possible L1 re-org" '
            "old_l1_head=0xab new_l1_head_parent=0xcd",
            "op-node",
            "log:l1_reorg",
            "low",
            id="l1-reorg",
        ),
        pytest.param(
            GETH_WARN + 'Served eth_sendRawTransaction err="txpool is full"',
            "op-geth",
            "log:txpool_spam",
            "low",
            id="txpool-full",
        ),
    ],
)
def test_log_signatures(line: str, component: str, metric: str, severity: str) -> None:
    [finding] = logic.match_logs([line], component=component)
    assert (finding.metric, finding.severity, finding.rule) == (metric, severity, "log")
    assert finding.evidence == (line,)
    assert (finding.z_score, finding.direction, finding.value) == (0.0, "up", 1.0)


@pytest.mark.parametrize(
    ("line", "component"),
    [
        pytest.param(
            LF + 'lvl=info msg="L1 temporary error" err="x"',
            "op-node",
            id="info-level-ignored",
        ),
        pytest.param(
            "DEBUG[11-26|23:14:15.123] Database compacting, degraded performance",
            "op-geth",
            id="debug-level-ignored",
        ),
        pytest.param(
            GETH_WARN + 'Served eth_sendRawTransaction err="insufficient funds for gas * price"',
            "op-geth",
            id="user-insufficient-funds-is-not-the-batcher",
        ),
        pytest.param(
            "INFO [11-26|23:14:15.123] Looking for peers                        peercount=10 tried=3",
            "op-geth",
            id="has-peers",
        ),
        pytest.param(
            "INFO [11-26|23:14:15.123] Imported new potential chain segment number=100 hash=0xab",
            "op-geth",
            id="noise",
        ),
    ],
)
def test_log_lines_that_do_not_count(line: str, component: str) -> None:
    assert logic.match_logs([line], component=component) == []


def test_log_evidence_is_capped_at_five_lines_and_counts_all() -> None:
    lines = [f't=x lvl=warn msg="L1 temporary error" n={i}' for i in range(8)]
    [finding] = logic.match_logs(lines, component="op-node")
    assert finding.value == 8
    assert finding.evidence == tuple(lines[:5])
    assert finding.description == 'L1 RPC outage: op-node logged "L1 temporary error" (8 lines)'


# ---------------------------------------------------------------------------------------- episodes


def test_one_detected_per_episode_and_resolved_after_k_clean() -> None:
    state = fresh()
    baseline = [50.0, 51.0, 49.0, 50.0] * 5
    out = feed(state, cpu_series([*baseline, 90.0, 92.0, 95.0, 50.0, 50.0, 50.0]))
    [anomaly] = detected(out)
    [closed] = resolved(out)
    assert closed.episode_id == anomaly.episode_id == anomaly.event_id
    assert closed.started_at == anomaly.occurred_at == T0 + timedelta(seconds=100)
    assert closed.duration_s == 25.0  # resolved on the third clean sample, 5 polls after the start
    assert closed.description == "CPU spike resolved after 25.0s (3 clean evaluations)"
    assert (closed.metric, closed.rule, closed.component) == ("cpuUsage", "zscore", "op-geth")


def test_a_trigger_during_the_clean_run_restarts_the_count() -> None:
    state = fresh()
    baseline = [50.0, 51.0, 49.0, 50.0] * 5
    out = feed(state, cpu_series([*baseline, 90.0, 50.0, 50.0, 95.0, 50.0, 50.0]))
    assert len(detected(out)) == 1
    assert resolved(out) == []
    assert len(resolved(feed(state, cpu_series([50.0], start=500)))) == 1


def test_stall_episode_keeps_quiet_while_stalled_then_resolves() -> None:
    state = fresh()
    ages = [1.0, 2.0, 8.0, 10.0, 12.0, 14.0, 1.0, 1.0, 1.0]
    out = feed(state, [sample({"secondsSinceHead": a}, at=2 * i, source="rpc") for i, a in enumerate(ages)])
    assert [type(o).__name__ for o in out] == ["AnomalyDetected", "AnomalyResolved"]
    assert out[0].description.startswith("Sequencer stall: unsafe head has not advanced for 8.0s")


def test_target_down_resolves_only_on_the_same_source_coming_back() -> None:
    state = fresh()
    down = [sample({}, at=i, source="rpc", target_up=False, error="timeout") for i in range(2)]
    k8s_fine = [sample({"cpuUsage": 10.0}, at=10 + i, source="k8s") for i in range(5)]
    rpc_back = [sample({"txPoolCount": 1.0}, at=20 + i, source="rpc") for i in range(3)]
    out = feed(state, down + k8s_fine)
    assert len(detected(out)) == 1
    assert resolved(out) == []
    assert len(resolved(feed(state, rpc_back))) == 1


def test_log_episode_resolves_after_a_quiet_period_of_event_time() -> None:
    state = fresh()
    line = 't=x lvl=warn msg="L1 temporary error" err="refused"'
    first = logic.evaluate_logs(state, logs([line], at=0), settings=SETTINGS)
    again = logic.evaluate_logs(state, logs([line], at=30), settings=SETTINGS)
    quiet_too_short = feed(state, [sample({"cpuUsage": 1.0}, component="op-geth", at=80)])
    quiet_enough = feed(state, [sample({"cpuUsage": 1.0}, component="op-geth", at=90)])
    [anomaly] = detected(first)
    assert anomaly.evidence == (line,)
    assert anomaly.metric == "log:l1_rpc_outage"
    assert again == quiet_too_short == []
    [closed] = resolved(quiet_enough)
    assert closed.episode_id == anomaly.episode_id
    assert closed.duration_s == 90.0


def test_duplicate_event_id_is_not_scored_twice() -> None:
    state = fresh()
    s = sample({"cpuUsage": 50.0}, event_id="same")
    feed(state, [s, s, s])
    assert state.chains["opmain"].components["op-geth"].windows["cpuUsage"].count == 1


def test_warmup_rebuilds_windows_without_announcing() -> None:
    state = fresh()
    settings, scorer = SETTINGS, logic.make_scorer(SETTINGS)
    history = cpu_series([50.0, 51.0, 49.0] * 5 + [95.0])
    out = [
        o
        for s in history
        for o in logic.evaluate_sample(state, s, settings=settings, scorer=scorer, warmup=True)
    ]
    assert out == []
    assert state.chains["opmain"].components["op-geth"].windows["cpuUsage"].count == 16
    assert len(detected(feed(state, cpu_series([99.0], start=500)))) == 1


def test_chains_and_components_are_separate_series() -> None:
    state = fresh()
    a = cpu_series([50.0, 51.0, 49.0] * 5, chain="a")
    b = cpu_series([90.0, 91.0, 89.0] * 5, chain="b")
    out = feed(state, [*a, *b, *cpu_series([90.0], start=200, chain="a")])
    [anomaly] = detected(out)
    assert anomaly.chain_id == "a"


# ------------------------------------------------------------ episodes last as long as the condition


def healthy(mode: str) -> DetectorState:
    """25 minutes of healthy CPU (50 % ± 2, one poll per 5 s), ending at the mean: no episode open."""
    state = fresh()
    feed(state, cpu_series([*noisy(300), 50.0, 50.0, 50.0]), mode=mode)
    assert state.open_episodes() == []
    return state


HEALTHY_END = 5.0 * 303  # the first poll after ``healthy``
BACK = [50.5, 49.0, 51.0, 50.0, 49.5, 50.0]  # back at the baseline


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("values", "closes_at"),
    [
        pytest.param([108.0] * 120, None, id="sustained-high-cpu-stays-open"),
        pytest.param([70.0] * 120, None, id="sustained-step-under-the-pin-stays-open"),
        pytest.param([108.0] * 60 + BACK, 62, id="real-return-to-baseline-closes-it"),
        pytest.param([108.0] * 60 + [30.0] * 3, 62, id="falling-past-the-baseline-closes-it"),
        pytest.param([108.0, *BACK], 3, id="one-poll-blip-closes-quickly"),
    ],
)
def test_a_gauge_episode_lasts_as_long_as_its_condition(
    mode: str, values: list[float], closes_at: int | None
) -> None:
    out = feed(healthy(mode), cpu_series(values, start=HEALTHY_END), mode=mode)
    [anomaly] = [a for a in detected(out) if a.direction == "up"]
    assert anomaly.value == values[0]
    closed = resolved(out)
    if closes_at is None:
        assert closed == []
        return
    [end] = closed
    assert end.episode_id == anomaly.episode_id
    assert end.occurred_at == anomaly.occurred_at + timedelta(seconds=5 * closes_at)
    assert end.description.endswith("(3 clean evaluations)")


@pytest.mark.parametrize("mode", MODES)
def test_cpu_at_95_percent_of_its_request_holds_the_episode_whatever_its_baseline(mode: str) -> None:
    state = fresh()
    busy = [*noisy(300, seed=3, level=92.0, sigma=2.5), 92.0, 92.0, 92.0]  # 95.5 % is within 2σ
    feed(state, cpu_series(busy), mode=mode)
    pinned = cpu_series([110.0, *[95.5] * 40], start=HEALTHY_END)
    out = feed(state, pinned, mode=mode)
    assert [a.value for a in detected(out)] == [110.0]
    assert resolved(out) == []
    out = feed(state, cpu_series([93.0] * 3, start=HEALTHY_END + 5 * 41), mode=mode)
    assert len(resolved(out)) == 1


@pytest.mark.parametrize(("mode", "step"), [("zscore", 55.0), ("streaming", 58.0)])
def test_saturation_supersedes_a_smaller_cpu_rise_still_open(mode: str, step: float) -> None:
    """A busy-day step (a low or medium finding) still open when op-geth saturates its request."""
    out = feed(healthy(mode), cpu_series([step] * 20 + [108.0] * 20, start=HEALTHY_END), mode=mode)
    first, second = detected(out)
    [superseded] = resolved(out)
    assert (first.value, second.value) == (step, 108.0)
    assert first.severity != "high" and second.severity == "high"
    assert superseded.episode_id == first.episode_id
    assert superseded.occurred_at == second.occurred_at == T0 + timedelta(seconds=HEALTHY_END + 5 * 20)
    assert superseded.description.endswith("(superseded: CPU spike detected: 108% (34.7σ above baseline))")


@pytest.mark.parametrize("mode", MODES)
def test_the_model_does_not_learn_the_faulty_level_so_the_return_is_no_news(mode: str) -> None:
    state = healthy(mode)
    out = feed(state, cpu_series([108.0] * 120 + [50.0] * 40, start=HEALTHY_END), mode=mode)
    assert [a.value for a in detected(out)] == [108.0]  # no "CPU drop" when it comes back
    assert len(resolved(out)) == 1
    component = state.chains["opmain"].components["op-geth"]
    assert component.windows["cpuUsage"].values().count(108.0) == 1  # the value that opened it
    if mode == "streaming":
        assert component.streams["cpuUsage"].hi < 108.0


def test_a_step_held_for_rebaseline_s_is_taken_as_the_new_level() -> None:
    state = healthy("zscore")
    out = feed(state, cpu_series([70.0] * 100, start=HEALTHY_END), rebaseline_s=300.0)
    assert len(detected(out)) == 1
    [closed] = resolved(out)
    assert closed.duration_s == 300.0
    assert closed.description == "CPU spike resolved after 300.0s (held 300s: taken as the new level)"
    # The series starts again from 70 %: its noise is no news, a new step from there is.
    later = feed(state, cpu_series([70.0] * 5 + [90.0], start=HEALTHY_END + 500), rebaseline_s=300.0)
    assert [a.value for a in detected(later)] == [90.0]


def test_a_pinned_cpu_is_never_taken_as_the_new_level() -> None:
    state = healthy("zscore")
    out = feed(state, cpu_series([108.0] * 100, start=HEALTHY_END), rebaseline_s=300.0)
    assert len(detected(out)) == 1
    assert resolved(out) == []


def test_slow_blocks_keep_a_stall_open_between_heads() -> None:
    """Blocks every 12 s against a 6 s stall limit: the head is fresh for a moment after each one."""
    healthy_head = [{"secondsSinceHead": 0.0, "blockInterval": 2.0}] * 20
    # The interval is the last head's: 2 s until the first slow block lands, 12 s from then on.
    slow = [
        {"secondsSinceHead": float(a), "blockInterval": 2.0 if i < 5 else 12.0}
        for i, a in enumerate([2, 4, 6, 8, 10, 0] * 6)
    ]
    polls = [*healthy_head, *slow, *healthy_head[:3]]
    out = feed(fresh(), [sample(m, at=2 * i, source="rpc") for i, m in enumerate(polls)])
    [stall] = detected(out)
    [closed] = resolved(out)
    assert stall.metric == "secondsSinceHead"
    assert closed.episode_id == stall.episode_id
    assert closed.occurred_at == T0 + timedelta(seconds=2 * (len(polls) - 1))


# ------------------------------------------------------------------ recovery from a head outage


def head(interval: float, rate: float, age: float = 0.0, gas: float = 0.3) -> dict[str, float]:
    """One op-geth RPC poll: the block-production gauges and one ordinary gauge beside them."""
    return {"blockInterval": interval, "blockRate": rate, "secondsSinceHead": age, "gasUsedRatio": gas}


STEADY = [head(2.0, 0.5)] * 60  # 2 s blocks, polled every 2 s
STALLED = [head(2.0, 0.0, age=2.0 * (i + 1)) for i in range(30)]  # a 60 s stall
RECOVERY = [head(63.0, 1.0, gas=0.98), *[head(1.0, 1.0, gas=0.99)] * 4]  # the stall's block, catch-up


def rpc_polls(heads: list[dict[str, float]], *, start: float = 0.0) -> list[MetricSample]:
    return [sample(m, at=start + 2 * i, source="rpc") for i, m in enumerate(heads)]


@pytest.mark.parametrize("mode", MODES)
def test_recovery_from_a_stall_opens_no_new_anomaly_and_teaches_no_model(mode: str) -> None:
    state = fresh()
    polls = [*STEADY, *STALLED, *RECOVERY, *STEADY[:20]]
    out = feed(state, rpc_polls(polls), mode=mode)
    opened = {(a.metric, a.rule) for a in detected(out)}
    # The stall's own symptoms open before the rule does; the recovery opens nothing.
    assert opened <= {("blockRate", mode), ("secondsSinceHead", "liveness")}
    assert ("secondsSinceHead", "liveness") in opened
    assert all(
        a.occurred_at < T0 + timedelta(seconds=2 * (len(STEADY) + len(STALLED))) for a in detected(out)
    )
    assert state.open_episodes() == []
    windows = state.chains["opmain"].components["op-geth"].windows
    assert set(windows["blockInterval"].values()) == {2.0}
    assert set(windows["gasUsedRatio"].values()) == {0.3}
    assert 1.0 not in windows["blockRate"].values()


def test_catch_up_is_covered_while_the_op_node_head_is_still_old() -> None:
    """A long outage's catch-up (60 s at twice the block rate) outlasts the grace after op-geth's
    head moves again; op-node's unsafe head stays older than the limit until it has caught up."""
    state = fresh()
    catch_up = [head(63.0, 1.0), *[head(1.0, 1.0)] * 30]
    geth = rpc_polls([*STEADY, *STALLED, *catch_up])
    node_ages = [*[2.0] * len(STEADY), *[2.0 * (i + 1) for i in range(len(STALLED) + 1)]]
    node_ages += [60.0 - 2 * i for i in range(1, len(catch_up))]
    node = [sample({"unsafeL2Age": age}, at=2 * i, component="op-node") for i, age in enumerate(node_ages)]
    out = feed(state, [s for pair in zip(geth, node, strict=True) for s in pair])
    assert {a.metric for a in detected(out)} <= {"blockRate", "secondsSinceHead", "unsafeL2Age"}
    # Alone, op-geth's samples would take the rest of the catch-up for a rise in the block rate.
    alone = feed(fresh(), geth)
    assert "blockRate" in {a.metric for a in detected(alone) if a.direction == "up"}


def test_recovery_after_the_sequencing_rpc_was_down_opens_no_new_anomaly() -> None:
    state = fresh()
    down = [
        sample({}, at=120 + 2 * i, source="rpc", target_up=False, error="connection refused")
        for i in range(15)
    ]
    back = rpc_polls([head(31.0, 0.4), *STEADY[:10]], start=150)
    out = feed(state, [*rpc_polls(STEADY), *down, *back])
    assert [a.metric for a in detected(out)] == ["targetUp"]
    assert len(resolved(out)) == 1


def test_a_slow_block_after_the_grace_is_news_again() -> None:
    state = fresh()
    polls = [*STEADY, *STALLED, *RECOVERY, *STEADY[:10], head(6.0, 0.5)]
    out = feed(state, rpc_polls(polls))
    [late] = [a for a in detected(out) if a.metric == "blockInterval"]
    assert late.value == 6.0

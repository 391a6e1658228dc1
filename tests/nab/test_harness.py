"""The NAB harness: causal seed z-score detectors, NAB-format result files, state size."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from bench.nab.run import SeedZScore, Series, default_detectors, load_series, run_detector, write_results
from bench.nab.score import load_corpus, load_scores, read_columns

PROFILES = {"standard": {"CostMatrix": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.11, "tnWeight": 1.0}}}


@pytest.fixture
def tiny_nab(tmp_path: Path) -> Path:
    """A NAB-shaped folder with one 200-row series and one window around a spike at row 150."""
    root = tmp_path / "nab"
    (root / "data" / "cat").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "config").mkdir()
    stamps = [
        str(np.datetime64("2020-01-01T00:00") + np.timedelta64(5 * i, "m")).replace("T", " ")
        for i in range(200)
    ]
    values = [10.0 + (i % 3) for i in range(200)]
    values[150] = 50.0
    rows = "".join(f"{s}:00,{v}\n" for s, v in zip(stamps, values, strict=True))
    (root / "data" / "cat" / "x.csv").write_text("timestamp,value\n" + rows)
    windows = {"cat/x.csv": [[f"{stamps[140]}:00.000000", f"{stamps[160]}:00.000000"]]}
    (root / "labels" / "combined_windows.json").write_text(json.dumps(windows))
    (root / "config" / "profiles.json").write_text(json.dumps(PROFILES))
    return root


def series_of(values: list[float]) -> Series:
    return Series(
        name="cat/x.csv",
        stamps=[""] * len(values),
        seconds=np.arange(len(values), dtype=float),
        values=values,
    )


@pytest.mark.parametrize("detector", default_detectors(), ids=lambda d: d.name)
def test_scores_are_causal(detector: SeedZScore) -> None:
    base = [float(i % 7) for i in range(300)]
    changed = base[:200] + [1000.0] * 100
    before = run_detector(detector, [series_of(base)]).scores[0]
    after = run_detector(detector, [series_of(changed)]).scores[0]
    np.testing.assert_array_equal(before[:200], after[:200])
    assert after[200] > before[200]


def test_binary_and_continuous_scores() -> None:
    detectors = {d.name: d for d in default_detectors()}
    binary, tanh = detectors["zscore-w60-binary"], detectors["zscore-w60-tanh"]
    values = [10.0, 11.0] * 30 + [20.0]
    spike_b = run_detector(binary, [series_of(values)]).scores[0]
    spike_t = run_detector(tanh, [series_of(values)]).scores[0]
    assert set(spike_b.tolist()) == {0.0, 1.0}
    assert spike_b[-1] == 1.0
    # z = (20 - 10.5) / 0.5 = 19 against the 60 points before it.
    assert spike_t[-1] == pytest.approx(math.tanh(19 / 20))
    assert spike_t[:10].tolist() == [0.0] * 10  # fewer than min_points seen


def test_state_is_bounded_by_the_window() -> None:
    detector = default_detectors()[0]
    short = run_detector(detector, [series_of([1.0, 2.0] * 50)])
    long = run_detector(detector, [series_of([1.0, 2.0] * 5000)])
    assert short.state_bytes_per_series == long.state_bytes_per_series
    assert 60 * 8 < long.state_bytes_per_series < 8 * 1024


def test_result_files_round_trip(tiny_nab: Path, tmp_path: Path) -> None:
    corpus = load_corpus(tiny_nab)
    series = load_series(corpus)
    detector = default_detectors()[1]
    run = run_detector(detector, series)
    out = tmp_path / "out"
    write_results(out, detector.name, series, run.scores, corpus)
    path = out / detector.name / "cat" / f"{detector.name}_x.csv"
    stamps, labels = read_columns(path, "timestamp", "label")
    assert path.read_text().splitlines()[0] == "timestamp,value,anomaly_score,label"
    assert stamps == series[0].stamps
    assert [i for i, label in enumerate(labels) if label == "1"] == list(range(140, 161))
    (reread,) = load_scores(out, detector.name, corpus)
    np.testing.assert_array_equal(reread, run.scores[0])
    assert int(np.argmax(reread)) == 150

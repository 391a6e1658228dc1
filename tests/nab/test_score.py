"""Our NAB scorer on hand-made files, against brute force, and against the published numenta score."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.nab.score import (
    MAX_TP,
    FileLayout,
    Profile,
    layout,
    normalise,
    probation_length,
    scaled_sigmoid,
    score_at,
    sweep,
)

STANDARD = Profile(name="standard", tp=1.0, fn=1.0, fp=0.11)
LOW_FN = Profile(name="reward_low_FN_rate", tp=1.0, fn=2.0, fp=0.11)
START = np.datetime64("2020-01-01T00:00:00", "us")
ROWS = 1000  # probation: 150 rows


def stamp(row: int) -> str:
    return str(START + np.timedelta64(row * 300, "s")).replace("T", " ")


def one_file(*windows: tuple[int, int], rows: int = ROWS) -> FileLayout:
    """A file of ``rows`` five-minute rows with windows given by inclusive row numbers."""
    times = START + np.arange(rows) * np.timedelta64(300, "s")
    return layout("cat/file.csv", times, [(stamp(a), stamp(b)) for a, b in windows])


def detections(*rows: int, total: int = ROWS) -> np.ndarray:
    scores = np.zeros(total)
    scores[list(rows)] = 1.0
    return scores


def raw(lay: FileLayout, scores: np.ndarray, profile: Profile = STANDARD) -> float:
    return score_at([lay], [scores], 0.5, profile)


@pytest.mark.parametrize(("rows", "expected"), [(100, 15), (4032, 604), (5000, 750), (22695, 750)])
def test_probation_is_15_percent_capped_at_750(rows: int, expected: int) -> None:
    assert probation_length(rows) == expected


def test_scaled_sigmoid_shape() -> None:
    values = scaled_sigmoid(np.array([-1.0, 0.0, 1.0, 3.0, 3.01]))
    assert values[0] == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    assert values[1] == 0.0
    assert values[2] == pytest.approx(2 / (1 + math.exp(5)) - 1)
    assert values[3] > -1.0
    assert values[4] == -1.0


@pytest.mark.parametrize(
    ("hits", "expected"),
    [
        pytest.param((), -1.0, id="no-detection-costs-fn"),
        pytest.param((400,), 1.0, id="left-edge-earns-tp"),
        pytest.param((599,), (2 / (1 + math.exp(-5 / 200)) - 1) / MAX_TP, id="right-edge-about-zero"),
        pytest.param((500,), (2 / (1 + math.exp(-5 * 100 / 200)) - 1) / MAX_TP, id="middle"),
        pytest.param((400, 450, 599), 1.0, id="only-earliest-counts"),
        pytest.param(
            (500, 599), (2 / (1 + math.exp(-5 * 100 / 200)) - 1) / MAX_TP, id="earliest-not-best-of-later"
        ),
    ],
)
def test_detections_in_a_window(hits: tuple[int, ...], expected: float) -> None:
    assert raw(one_file((400, 599)), detections(*hits)) == pytest.approx(expected)


def test_right_edge_is_nearly_worthless() -> None:
    assert 0 < raw(one_file((400, 599)), detections(599)) < 0.02


@pytest.mark.parametrize(
    ("hits", "expected"),
    [
        pytest.param((200,), -1.0 - 0.11, id="before-first-window-full-fp"),
        pytest.param((980,), -1.0 - 0.11, id="beyond-3-widths-full-fp"),
        pytest.param((300, 301, 302), -1.0 - 3 * 0.11, id="every-alert-of-a-run-costs"),
        pytest.param((10, 100, 149), -1.0, id="probation-ignored"),
    ],
)
def test_false_positives(hits: tuple[int, ...], expected: float) -> None:
    assert raw(one_file((400, 449)), detections(*hits)) == pytest.approx(expected)


def test_fp_right_after_a_window_is_cheap_and_grows_with_distance() -> None:
    lay = one_file((400, 599))
    base = raw(lay, detections(400))
    near = raw(lay, detections(400, 600)) - base
    far = raw(lay, detections(400, 800)) - base
    assert -0.11 * 0.05 < near < 0
    assert far < near
    # Position past the window is (i - last) / (width - 1): row 800 sits 201/199 widths out.
    assert far == pytest.approx(0.11 * float(scaled_sigmoid(np.array([201 / 199]))[0]))


def test_fp_weight_follows_the_nearest_preceding_window() -> None:
    lay = one_file((300, 399), (700, 799))
    alone = raw(lay, detections(300, 700))
    # Row 650 is 251 rows past the first window (2.5 widths) even though the second is close ahead.
    with_fp = raw(lay, detections(300, 700, 650))
    assert with_fp - alone == pytest.approx(0.11 * float(scaled_sigmoid(np.array([251 / 99]))[0]))


def test_low_fn_profile_doubles_the_miss() -> None:
    assert raw(one_file((400, 599)), detections(), LOW_FN) == -2.0


@pytest.mark.parametrize("profile", [STANDARD, LOW_FN], ids=lambda p: p.name)
def test_sweep_matches_brute_force_over_every_threshold(profile: Profile) -> None:
    rng = np.random.default_rng(7)
    layouts = [one_file((400, 599)), one_file((200, 260), (700, 720)), one_file()]
    scores = [np.round(rng.random(ROWS), 2) for _ in layouts]
    for scored, lay in zip(scores, layouts, strict=True):
        scored[lay.window >= 0] += 0.2 * rng.random(int((lay.window >= 0).sum()))
    threshold, best = sweep(layouts, scores, profile)
    candidates = [math.inf, *np.unique(np.concatenate(scores))]
    brute = max(score_at(layouts, scores, t, profile) for t in candidates)
    assert best == pytest.approx(brute)
    assert score_at(layouts, scores, threshold, profile) == pytest.approx(best)


def test_sweep_never_alerts_when_every_alert_hurts() -> None:
    lay = one_file((400, 599))
    threshold, best = sweep([lay], [detections(200, 201, 202)], STANDARD)
    assert (threshold, best) == (math.inf, -1.0)


@pytest.mark.parametrize(("raw_score", "expected"), [(-116.0, 0.0), (116.0, 100.0), (0.0, 50.0)])
def test_normalise_between_null_and_perfect(raw_score: float, expected: float) -> None:
    assert normalise(raw_score, windows=116, profile=STANDARD) == pytest.approx(expected)

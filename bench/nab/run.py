"""``make bench-nab``: detectors run causally over the 58 NAB series, scored by our own NAB scorer.

Every point is scored before the model sees it, with one set of settings for every file. Result
files in NAB's format go to ``--out-dir`` (ignored); prints one table and writes ``--report``. The
scorer check re-scores the two shipped result sets and compares them with the published numbers.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from bench import ROOT
from bench.nab.score import (
    Corpus,
    FloatArray,
    load_corpus,
    load_scores,
    read_columns,
    score_detector,
    score_fixed,
)
from bench.nabdata import nab_folder
from sentinai.detector.logic import z_score
from sentinai.detector.settings import DetectorSettings
from sentinai.detector.streaming import StreamingScorer, StreamState
from sentinai.detector.windows import RollingWindow

TOLERANCE = 0.05
NAB_METRIC = "nab"  # not in the detector's catalogue: only the relative std floor applies

# Published numbers the scorer must reproduce: (detector, profile, threshold source) → score.
PUBLISHED: dict[tuple[str, str, str], float] = {
    ("numenta", "standard", "sweep"): 70.10,
    ("numenta", "reward_low_FP_rate", "sweep"): 63.21,
    ("numenta", "reward_low_FN_rate", "sweep"): 74.32,
    ("windowedGaussian", "standard", "sweep"): 39.65,
    ("windowedGaussian", "reward_low_FP_rate", "sweep"): 20.87,
    ("windowedGaussian", "reward_low_FN_rate", "sweep"): 47.41,
    ("numenta", "reward_low_FP_rate", "stored"): 63.12,
}


class Detector(Protocol):
    """The seam a streaming detector plugs into: one fresh state per series, one score per point."""

    @property
    def name(self) -> str: ...

    def new_series(self) -> Any: ...

    def score(self, state: Any, t: float, value: float) -> float:
        """The anomaly score in [0, 1] of ``value`` at ``t`` (epoch seconds), then learn from it."""
        ...

    def state_bytes(self, state: Any) -> int: ...


class SeedZScore:
    """The live detector's z-score (``z_score`` over a ``RollingWindow``) as a NAB detector.

    ``binary``: 1.0 when |z| > threshold, else 0.0 (the seed's alerts). Otherwise the continuous
    ``tanh(|z| / scale)``: monotone in |z|, so the threshold sweep sees the z-score itself; the
    scale only keeps large |z| from saturating to equal floats. Before ``min_points`` the score is 0.
    """

    def __init__(
        self, name: str, *, window: int, min_points: int, threshold: float, binary: bool, scale: float = 20.0
    ) -> None:
        self.name = name
        self.window = window
        self.threshold = threshold
        self.min_points = min_points
        self.binary = binary
        self.scale = scale

    def new_series(self) -> RollingWindow:
        return RollingWindow(self.window)

    def score(self, state: RollingWindow, t: float, value: float) -> float:
        z = None if state.count < self.min_points else z_score(NAB_METRIC, value, state)
        state.push(value)
        if z is None:
            return 0.0
        if self.binary:
            return 1.0 if abs(z) > self.threshold else 0.0
        return math.tanh(abs(z) / self.scale)

    def state_bytes(self, state: RollingWindow) -> int:
        return deep_size(state)


class Streaming:
    """``StreamingScorer`` (the detector's streaming core, default settings) as a NAB detector."""

    name = "streaming"

    def __init__(self) -> None:
        self._scorer = StreamingScorer()

    def new_series(self) -> StreamState:
        return self._scorer.new_state()

    def score(self, state: StreamState, t: float, value: float) -> float:
        return self._scorer.score(state, value, t)

    def state_bytes(self, state: StreamState) -> int:
        return deep_size(state)


def deep_size(obj: object, seen: set[int] | None = None) -> int:
    """Bytes held by ``obj`` and everything it references (slots, dicts, sequences, arrays), once each."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes) + sys.getsizeof(obj[:0])
    size = sys.getsizeof(obj)
    if isinstance(obj, str | bytes | int | float | bool) or obj is None:
        return size
    if isinstance(obj, dict):
        return size + sum(deep_size(k, seen) + deep_size(v, seen) for k, v in obj.items())
    if isinstance(obj, list | tuple | set | frozenset):
        return size + sum(deep_size(item, seen) for item in obj)
    for klass in type(obj).__mro__:
        for slot in getattr(klass, "__slots__", ()):
            if hasattr(obj, slot):
                size += deep_size(getattr(obj, slot), seen)
    if hasattr(obj, "__dict__"):
        size += deep_size(vars(obj), seen)
    return size


def default_detectors() -> list[Detector]:
    live = DetectorSettings()
    seed: list[Detector] = [
        SeedZScore(
            f"zscore-w{live.window}-{kind}",
            window=live.window,
            min_points=live.min_points,
            threshold=live.z_threshold,
            binary=kind == "binary",
        )
        for kind in ("binary", "tanh")
    ]
    return [*seed, Streaming()]


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    stamps: list[str]
    seconds: FloatArray
    values: list[float]


def load_series(corpus: Corpus) -> list[Series]:
    out = []
    for name in corpus.files:
        stamps, values = read_columns(corpus.root / "data" / name, "timestamp", "value")
        seconds = np.array(stamps, dtype="datetime64[s]").astype(np.float64)
        out.append(Series(name=name, stamps=stamps, seconds=seconds, values=[float(v) for v in values]))
    return out


@dataclass(frozen=True, slots=True)
class Run:
    scores: list[FloatArray]
    points_per_s: float
    state_bytes_per_series: float


def run_detector(detector: Detector, series: Sequence[Series]) -> Run:
    """Score every series point by point; the clock covers only the detector's own work."""
    scores: list[FloatArray] = []
    sizes: list[int] = []
    elapsed = 0.0
    points = 0
    for one in series:
        state = detector.new_series()
        score = detector.score
        out = [0.0] * len(one.values)
        times = one.seconds.tolist()
        start = time.perf_counter()
        for i, (t, value) in enumerate(zip(times, one.values, strict=True)):
            out[i] = score(state, t, value)
        elapsed += time.perf_counter() - start
        points += len(out)
        sizes.append(detector.state_bytes(state))
        scores.append(np.array(out, dtype=np.float64))
    return Run(scores=scores, points_per_s=points / elapsed, state_bytes_per_series=sum(sizes) / len(sizes))


def write_results(
    out_dir: Path, detector: str, series: Sequence[Series], scores: Sequence[FloatArray], labels: Corpus
) -> None:
    """NAB result files: ``timestamp,value,anomaly_score,label``, rows 1:1 with the data file."""
    for one, values, lay in zip(series, scores, labels.layouts, strict=True):
        category, file = one.name.split("/")
        path = out_dir / detector / category / f"{detector}_{file}"
        path.parent.mkdir(parents=True, exist_ok=True)
        in_window = lay.window >= 0
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["timestamp", "value", "anomaly_score", "label"])
            for stamp, value, score, label in zip(
                one.stamps, one.values, values.tolist(), in_window, strict=True
            ):
                writer.writerow([stamp, repr(value), repr(score), int(label)])


def scorer_check(corpus: Corpus) -> list[dict[str, Any]]:
    """Our scores of the shipped result sets next to the published ones, one row per cell."""
    results = corpus.root / "results"
    stored = json.loads((corpus.root / "config" / "thresholds.json").read_text())
    profiles = {p.name: p for p in corpus.profiles}
    swept = {
        det: score_detector(corpus, load_scores(results, det, corpus))
        for det in ("numenta", "windowedGaussian")
    }
    rows = []
    for (det, profile, source), published in PUBLISHED.items():
        if source == "sweep":
            ours = swept[det][profile]
        else:
            scores = load_scores(results, det, corpus)
            ours = score_fixed(corpus, scores, profiles[profile], stored[det][profile]["threshold"])
        rows.append(
            {
                "detector": det,
                "profile": profile,
                "threshold": source,
                "published": published,
                "ours": round(ours.normalised, 4),
                "pass": abs(ours.normalised - published) <= TOLERANCE,
            }
        )
    return rows


PROFILE_KEYS = {"standard": "standard", "reward_low_FP_rate": "low_fp", "reward_low_FN_rate": "low_fn"}


def bench(corpus: Corpus, detectors: Sequence[Detector], *, out_dir: Path) -> dict[str, dict[str, Any]]:
    series = load_series(corpus)
    report: dict[str, dict[str, Any]] = {}
    for detector in detectors:
        run = run_detector(detector, series)
        write_results(out_dir, detector.name, series, run.scores, corpus)
        scored = score_detector(corpus, run.scores)
        entry: dict[str, Any] = {PROFILE_KEYS[name]: round(r.normalised, 2) for name, r in scored.items()}
        # None: the best global threshold is never to alert.
        entry["thresholds"] = {
            PROFILE_KEYS[name]: None if math.isinf(r.threshold) else r.threshold for name, r in scored.items()
        }
        entry["points_per_s"] = round(run.points_per_s)
        entry["state_bytes_per_series"] = round(run.state_bytes_per_series)
        report[detector.name] = entry
    return report


def table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    )


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.nab", description=__doc__)
    parser.add_argument("--nab", type=Path, help="NAB data folder (default: SENTINAI_NAB)")
    parser.add_argument("--out-dir", type=Path, default=ROOT / ".bench" / "nab")
    parser.add_argument("--report", type=Path, default=ROOT / ".reports" / "nab.json")
    args = parser.parse_args(argv)
    args.nab = nab_folder(args.nab)

    corpus = load_corpus(args.nab)
    check = scorer_check(corpus)
    results = bench(corpus, default_detectors(), out_dir=args.out_dir)

    rows = [["detector", "standard", "low FP", "low FN", "points/s", "state B/series"]]
    for name, entry in results.items():
        rows.append(
            [
                name,
                f"{entry['standard']:.2f}",
                f"{entry['low_fp']:.2f}",
                f"{entry['low_fn']:.2f}",
                f"{entry['points_per_s']:,}",
                f"{entry['state_bytes_per_series']:,}",
            ]
        )
    print(table(rows))
    print()
    check_rows = [["scorer check", "profile", "threshold", "published", "ours", "result"]]
    for cell in check:
        check_rows.append(
            [
                cell["detector"],
                cell["profile"],
                cell["threshold"],
                f"{cell['published']:.2f}",
                f"{cell['ours']:.2f}",
                "pass" if cell["pass"] else "FAIL",
            ]
        )
    print(table(check_rows))

    report = {
        "nab": str(args.nab),
        "series": len(corpus.files),
        "points": sum(lay.rows for lay in corpus.layouts),
        "python": platform.python_version(),
        "detectors": results,
        "scorer_check": check,
        "scorer_check_pass": all(cell["pass"] for cell in check),
    }
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2) + "\n")
    return report

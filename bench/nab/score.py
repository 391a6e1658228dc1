"""A NAB v1.0 scorer of our own: windows, probation, scaled sigmoid, profiles, threshold sweep, normalisation.

Each file is first turned into a ``FileLayout``: per scorable row, the window it falls in (or none)
and its unweighted score (the scaled sigmoid of its position). A detection is a row whose anomaly
score is ``>= threshold``; in a window only the earliest detection counts (it has the largest
sigmoid, so "the best detection of the window" is the same thing); a window without one costs
``-fnWeight``; every detection outside windows costs ``fpWeight`` times its (negative) unweighted
score. The sweep tries every distinct anomaly score of the corpus as the one global threshold.

Position conventions (they reproduce the published numbers to ±0.01):

* inside a window of ``w`` rows whose last row is ``r``, row ``i`` sits at ``-(r - i + 1) / w``:
  ``-1`` at the left edge, ``-1/w`` at the right edge; its score is ``sigmoid(pos) / sigmoid(-1)``,
  so the left edge earns exactly ``tpWeight``;
* after a window (last row ``r``, ``w`` rows), row ``i`` sits at ``(i - r) / (w - 1)``; positions
  over 3 and rows before the first window score ``-1``.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
TimeArray = npt.NDArray[np.datetime64]

PROBATION_FRACTION = 0.15
PROBATION_CAP = 750  # NAB's 0.15 * 5000 rows


@dataclass(frozen=True, slots=True)
class Profile:
    """One cost matrix of ``config/profiles.json``."""

    name: str
    tp: float
    fn: float
    fp: float


@dataclass(frozen=True, slots=True)
class FileLayout:
    """Every row of one data file: its window and what a detection on it is worth (probation rows too)."""

    name: str  # "category/name.csv"
    rows: int  # all rows of the file, probation included
    probation: int
    window: IntArray  # per row: window index within the file, -1 outside every window
    unweighted: FloatArray  # per row: sigmoid score (in window) or FP penalty (outside, <= 0)
    windows: int


@dataclass(frozen=True, slots=True)
class Result:
    """A profile's raw score at a threshold and its normalised form."""

    profile: str
    threshold: float
    raw: float
    normalised: float


def probation_length(rows: int) -> int:
    return min(math.floor(PROBATION_FRACTION * rows), PROBATION_CAP)


def scaled_sigmoid(position: FloatArray) -> FloatArray:
    """``2·sigmoid(-5·pos) - 1``: +0.987 at -1, 0 at 0, -> -1 far right; -1 past 3 window widths."""
    value = 2.0 / (1.0 + np.exp(5.0 * position)) - 1.0
    return np.where(position > 3.0, -1.0, value)


MAX_TP = float(scaled_sigmoid(np.array([-1.0]))[0])


def parse_times(values: Sequence[str]) -> TimeArray:
    return np.array(values, dtype="datetime64[us]")


def layout(name: str, timestamps: TimeArray, windows: Sequence[tuple[str, str]]) -> FileLayout:
    """Where each row stands relative to the file's windows; window bounds are inclusive timestamps."""
    rows = len(timestamps)
    position = np.full(rows, np.nan)
    window = np.full(rows, -1, dtype=np.int64)
    unweighted = np.full(rows, -1.0)
    bounds = []
    for index, (start, end) in enumerate(windows):
        left = int(np.searchsorted(timestamps, np.datetime64(start, "us"), side="left"))
        right = int(np.searchsorted(timestamps, np.datetime64(end, "us"), side="right")) - 1
        width = right - left + 1
        inside = np.arange(left, right + 1)
        window[left : right + 1] = index
        position[left : right + 1] = -(right - inside + 1) / width
        bounds.append((left, right, width))
    in_window = window >= 0
    unweighted[in_window] = scaled_sigmoid(position[in_window]) / MAX_TP
    # After each window until the next one starts: penalty grows with the distance past its end.
    for number, (_, right, width) in enumerate(bounds):
        stop = bounds[number + 1][0] if number + 1 < len(bounds) else rows
        after = np.arange(right + 1, stop)
        if len(after):
            unweighted[right + 1 : stop] = scaled_sigmoid((after - right) / (width - 1.0))
    probation = probation_length(rows)
    return FileLayout(
        name=name,
        rows=rows,
        probation=probation,
        window=window,
        unweighted=unweighted,
        windows=len(windows),
    )


def score_at(
    layouts: Sequence[FileLayout], scores: Sequence[FloatArray], threshold: float, profile: Profile
) -> float:
    """The corpus's raw score with detections at ``score >= threshold``."""
    return sum(file_score(lay, s, threshold, profile) for lay, s in zip(layouts, scores, strict=True))


def file_score(lay: FileLayout, scores: FloatArray, threshold: float, profile: Profile) -> float:
    """One file's raw score; ``scores`` covers every row of the file, probation included."""
    start = lay.probation
    window, unweighted = lay.window[start:], lay.unweighted[start:]
    detected = scores[start:] >= threshold
    outside = detected & (window < 0)
    total = profile.fp * float(unweighted[outside].sum())
    hit = detected & (window >= 0)
    best = np.full(lay.windows, -np.inf)
    np.maximum.at(best, window[hit], unweighted[hit])
    found = np.isfinite(best)
    total += profile.tp * float(best[found].sum()) - profile.fn * float((~found).sum())
    return total


def sweep(
    layouts: Sequence[FileLayout], scores: Sequence[FloatArray], profile: Profile
) -> tuple[float, float]:
    """The best ``(threshold, raw score)`` over every distinct anomaly score (and "never alert").

    Rows are taken in decreasing anomaly score; each row adds what lowering the threshold to it
    adds: its FP penalty, or the rise of its window's best detection (a window's first detection
    also removes its FN cost). Scores are read only where the next row has a lower anomaly score.
    """
    values = np.concatenate([s[lay.probation :] for lay, s in zip(layouts, scores, strict=True)])
    offsets = np.cumsum([0] + [lay.windows for lay in layouts[:-1]])
    window = np.concatenate(
        [
            np.where(lay.window[lay.probation :] >= 0, lay.window[lay.probation :] + off, -1)
            for lay, off in zip(layouts, offsets, strict=True)
        ]
    )
    unweighted = np.concatenate([lay.unweighted[lay.probation :] for lay in layouts])
    total_windows = sum(lay.windows for lay in layouts)
    order = np.argsort(-values, kind="stable")
    values, window, unweighted = values[order], window[order], unweighted[order]

    gain = np.where(window < 0, profile.fp * unweighted, 0.0)
    rank = np.flatnonzero(window >= 0)
    if len(rank):
        # Group the in-window rows by window (keeping score order), take the running best per window.
        by_window = rank[np.argsort(window[rank], kind="stable")]
        group = window[by_window]
        # Unweighted window scores lie in (0, 1]: an offset of 2 per window keeps groups apart.
        running = np.maximum.accumulate(unweighted[by_window] + 2.0 * group) - 2.0 * group
        first = np.r_[True, group[1:] != group[:-1]]
        previous = np.where(first, 0.0, np.r_[0.0, running[:-1]])
        gain[by_window] = profile.tp * (running - previous) + np.where(first, profile.fn, 0.0)

    totals = -profile.fn * total_windows + np.cumsum(gain)
    last_of_tie = np.r_[values[1:] != values[:-1], True]
    candidates = np.r_[-profile.fn * total_windows, totals[last_of_tie]]
    thresholds = np.r_[math.inf, values[last_of_tie]]
    best = int(np.argmax(candidates))
    return float(thresholds[best]), float(candidates[best])


def normalise(raw: float, *, windows: int, profile: Profile) -> float:
    """``100 · (S - S_null) / (S_perfect - S_null)``: null never alerts, perfect hits every left edge."""
    null = -profile.fn * windows
    perfect = profile.tp * windows
    return 100.0 * (raw - null) / (perfect - null)


# ------------------------------------------------------------------------------------- NAB files


@dataclass(frozen=True, slots=True)
class Corpus:
    """The NAB data files, their windows and the profiles, read from a NAB checkout."""

    root: Path
    files: tuple[str, ...]  # "category/name.csv", sorted
    layouts: tuple[FileLayout, ...]
    profiles: tuple[Profile, ...]

    @property
    def windows(self) -> int:
        return sum(lay.windows for lay in self.layouts)


def load_profiles(root: Path) -> tuple[Profile, ...]:
    raw = json.loads((root / "config" / "profiles.json").read_text())
    return tuple(
        Profile(name=name, tp=m["tpWeight"], fn=m["fnWeight"], fp=m["fpWeight"])
        for name, body in raw.items()
        for m in [body["CostMatrix"]]
    )


def read_columns(path: Path, *names: str) -> list[list[str]]:
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        index = [header.index(name) for name in names]
        columns: list[list[str]] = [[] for _ in names]
        for row in reader:
            for column, i in zip(columns, index, strict=True):
                column.append(row[i])
    return columns


def load_corpus(root: Path) -> Corpus:
    windows: Mapping[str, list[list[str]]] = json.loads(
        (root / "labels" / "combined_windows.json").read_text()
    )
    files = tuple(sorted(windows))
    layouts = []
    for name in files:
        (stamps,) = read_columns(root / "data" / name, "timestamp")
        bounds = [(start, end) for start, end in windows[name]]
        layouts.append(layout(name, parse_times(stamps), bounds))
    return Corpus(root=root, files=files, layouts=tuple(layouts), profiles=load_profiles(root))


def result_path(results: Path, detector: str, name: str) -> Path:
    category, file = name.split("/")
    return results / detector / category / f"{detector}_{file}"


def load_scores(results: Path, detector: str, corpus: Corpus) -> list[FloatArray]:
    """A detector's NAB result files, one array of anomaly scores per data file (rows 1:1)."""
    scores = []
    for name, lay in zip(corpus.files, corpus.layouts, strict=True):
        (column,) = read_columns(result_path(results, detector, name), "anomaly_score")
        values = np.array(column, dtype=np.float64)
        if len(values) != lay.rows:
            raise ValueError(f"{detector}/{name}: {len(values)} result rows for {lay.rows} data rows")
        scores.append(values)
    return scores


def score_detector(corpus: Corpus, scores: Sequence[FloatArray]) -> dict[str, Result]:
    """Each profile's best global threshold and its normalised score."""
    out = {}
    for profile in corpus.profiles:
        threshold, raw = sweep(corpus.layouts, scores, profile)
        out[profile.name] = Result(
            profile=profile.name,
            threshold=threshold,
            raw=raw,
            normalised=normalise(raw, windows=corpus.windows, profile=profile),
        )
    return out


def score_fixed(corpus: Corpus, scores: Sequence[FloatArray], profile: Profile, threshold: float) -> Result:
    raw = score_at(corpus.layouts, scores, threshold, profile)
    return Result(
        profile=profile.name,
        threshold=threshold,
        raw=raw,
        normalised=normalise(raw, windows=corpus.windows, profile=profile),
    )

"""Demand traces for ``bench.scaling.run``: NAB CPU shapes and synthetic L2 load, split tune/test.

Every trace is cores op-geth needs, one value per ``step_s``. NAB series (5-minute samples; nyc_taxi
30-minute) are held step-wise to one-minute steps and scaled so their 99th percentile needs 3.6
cores; they carry no L2 signals. The synthetic L2 traces carry a tx arrival rate that leads CPU by
a couple of minutes, from which the harness derives the tx pool and gas used ratio it shows.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
Split = Literal["tune", "test"]

STEP_S = 60.0
P99_CORES = 3.6
# At most two weeks of any series: nyc_taxi's seven months would be half the run on its own.
MAX_DAYS = 14
# Near-flat: 95 % of the time above two thirds of the 99th percentile, i.e. one vCPU step always.
FLAT_RATIO = 1.5

# The split is fixed here, chosen before any tuning: each half gets EC2, RDS and L2 shapes.
NAB: dict[str, Split] = {
    "realAWSCloudwatch/ec2_cpu_utilization_24ae8d.csv": "tune",
    "realAWSCloudwatch/ec2_cpu_utilization_53ea38.csv": "tune",
    "realAWSCloudwatch/ec2_cpu_utilization_5f5533.csv": "test",
    "realAWSCloudwatch/ec2_cpu_utilization_77c1ca.csv": "test",
    "realAWSCloudwatch/ec2_cpu_utilization_825cc2.csv": "tune",
    "realAWSCloudwatch/ec2_cpu_utilization_ac20cd.csv": "test",
    "realAWSCloudwatch/ec2_cpu_utilization_c6585a.csv": "tune",
    "realAWSCloudwatch/ec2_cpu_utilization_fe7f93.csv": "test",
    "realAWSCloudwatch/rds_cpu_utilization_cc0c53.csv": "tune",
    "realAWSCloudwatch/rds_cpu_utilization_e47b3b.csv": "test",
    "realAWSCloudwatch/grok_asg_anomaly.csv": "tune",
    "realKnownCause/nyc_taxi.csv": "test",
}
SYNTHETIC: dict[int, Split] = {1: "tune", 2: "tune", 3: "tune", 4: "test", 5: "test", 6: "test"}
SYNTHETIC_DAYS = 7
# How far tx arrivals run ahead of the CPU they cause (pool backs up, then op-geth works it off).
LEAD_STEPS = 2


@dataclass(frozen=True)
class Trace:
    name: str
    split: Split
    step_s: float
    demand: Array  # cores needed at each step
    arrivals: Array | None  # relative tx arrival rate (1 = the trace's median), L2 traces only
    gas_capacity: Array | None  # relative block gas limit at each step, L2 traces only

    @property
    def days(self) -> float:
        return len(self.demand) * self.step_s / 86_400


def load(nab: Path, *, split: Split | None) -> tuple[list[Trace], list[str]]:
    """The traces of ``split`` (both when None), and the NAB files left out as near-flat."""
    traces: list[Trace] = []
    flat: list[str] = []
    for path, part in NAB.items():
        if split not in (None, part):
            continue
        trace = nab_trace(nab / "data" / path, split=part)
        if _near_flat(trace.demand):
            flat.append(trace.name)
        else:
            traces.append(trace)
    traces += [synthetic(seed, split=part) for seed, part in SYNTHETIC.items() if split in (None, part)]
    return traces, flat


def nab_trace(path: Path, *, split: Split) -> Trace:
    with path.open() as f:
        rows = list(csv.reader(f))[1:]
    values = np.array([float(r[1]) for r in rows], dtype=np.float64)
    native = np.datetime64(rows[1][0]) - np.datetime64(rows[0][0])
    hold = max(1, round(native.astype("timedelta64[s]").astype(float) / STEP_S))
    demand = np.repeat(values, hold)[: int(MAX_DAYS * 86_400 / STEP_S)]
    return Trace(
        name=path.stem,
        split=split,
        step_s=STEP_S,
        demand=_scaled(demand),
        arrivals=None,
        gas_capacity=None,
    )


def synthetic(seed: int, *, split: Split) -> Trace:
    """A week of L2 load: daily cycle, inscription bursts, mint spikes, gas-limit steps, noise."""
    rng = np.random.default_rng(seed)
    n = int(SYNTHETIC_DAYS * 86_400 / STEP_S)
    minute = np.arange(n, dtype=np.float64)
    day = 1440.0
    load = (
        1.0
        + 0.45 * np.sin(2 * np.pi * (minute / day - rng.uniform()))
        + 0.1 * np.sin(2 * np.pi * minute / (7 * day))
    )
    # Bursts add to the daily cycle (whose mean is 1) rather than multiply it, so a mint during an
    # inscription wave is not 60x. Inscription waves: 5-10x for 1-3 h, ramping in over 10-30 min,
    # about one every two days.
    for _ in range(rng.poisson(SYNTHETIC_DAYS / 2) + 1):
        start, hours, peak = rng.uniform(0, n - 240), rng.uniform(1, 3), rng.uniform(5, 10)
        ramp = rng.uniform(10, 30)
        rise = np.clip((minute - start) / ramp, 0, 1)
        fall = np.clip((start + 60 * hours - minute) / ramp, 0, 1)
        load += (peak - 1) * np.minimum(rise, fall)
    # Mint spikes: 5-15 min at 3-6x, a few a day, starting within two minutes.
    for _ in range(rng.poisson(3 * SYNTHETIC_DAYS)):
        start, length, peak = rng.uniform(0, n - 20), rng.uniform(5, 15), rng.uniform(3, 6)
        inside = np.clip(np.minimum((minute - start) / 2, (start + length - minute) / 2), 0, 1)
        load += (peak - 1) * inside
    # Gas-limit steps: the block gas limit is raised or cut a couple of times a week; more room
    # per block lets the same arrivals cost more CPU per second once the backlog clears.
    capacity = np.ones(n)
    for at in np.sort(rng.uniform(0, n, rng.integers(1, 4))):
        capacity[int(at) :] *= rng.choice([0.8, 1.25])
    noise = np.exp(_ar1(rng, n, phi=0.9, sd=0.04))
    arrivals = load * noise
    demand = np.r_[np.full(LEAD_STEPS, arrivals[0]), arrivals[:-LEAD_STEPS]] * capacity**0.5
    scale = P99_CORES / float(np.percentile(demand, 99))
    return Trace(
        name=f"l2-synthetic-{seed}",
        split=split,
        step_s=STEP_S,
        demand=demand * scale,
        arrivals=arrivals / float(np.median(arrivals)),
        gas_capacity=capacity,
    )


def _ar1(rng: np.random.Generator, n: int, *, phi: float, sd: float) -> Array:
    shocks = rng.normal(0, sd * np.sqrt(1 - phi**2), n)
    out = np.empty(n)
    out[0] = rng.normal(0, sd)
    for i in range(1, n):
        out[i] = phi * out[i - 1] + shocks[i]
    return out


def _scaled(values: Array) -> Array:
    return values * (P99_CORES / float(np.percentile(values, 99)))


def _near_flat(demand: Array) -> bool:
    return float(np.percentile(demand, 99)) < FLAT_RATIO * float(np.percentile(demand, 5))

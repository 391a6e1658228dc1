"""What the predictor reasons about: an op-geth observation, a forecast, the forecaster seam.

Also the saturation shares that both the forecast (is op-geth pinned?) and the ladder step (is the
current step full?) read, so that the two never judge "at its request" differently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from sentinai.common import catalog
from sentinai.common.decisions import Trend
from sentinai.common.events import MetricSample

# At or above this share of its request op-geth is treated as pinned (the twin and real kubelets let
# a pod without a limit burst a few percent past its request, so "at 100 %" reads 95-110 %).
SATURATED_SHARE: Final = 0.95
# Without block intervals to corroborate it (a chain that reports none, its RPC unreachable), only
# usage at the request reads as pinned: a steady load at 95 % of a well-sized request is no sign of
# starvation, and taking it for one costs a restart up and another down a quarter-hour later.
SATURATED_SHARE_ALONE: Final = 0.99


@dataclass(frozen=True, slots=True)
class Point:
    """One observation of op-geth, merged from the rpc and k8s samples of a poll."""

    t: float  # epoch seconds
    cpu_cores: float | None  # used cores (k8s cpuCores)
    cpu_request: float | None  # allocated cores (k8s cpuRequestCores)
    tx_pool: float | None
    gas_used_ratio: float | None
    block_interval: float | None


@dataclass(frozen=True, slots=True)
class Forecast:
    point_cores: float
    upper_cores: float
    trend: Trend
    slope_per_min: float  # cores per minute
    key_factors: tuple[str, ...]
    coverage: float | None  # measured share of past actuals under the upper bound, at the horizon
    evaluated: int = 0  # how many past forecasts ``coverage`` was measured on
    # What the vCPU step is sized on: a high bound on the peak within the horizon (None: the upper bound).
    ceiling_cores: float | None = None
    # Demand now: the filtered level before any correction (None: the point forecast).
    level_cores: float | None = None
    # Whether op-geth is short of CPU now, judged by its block interval (None: no interval reported).
    short: bool | None = None


class Forecaster(Protocol):
    """The seam a benchmark swaps: history in, forecast out, deterministic for the same history."""

    @property
    def name(self) -> str: ...

    def forecast(self, history: Sequence[Point], *, horizon_s: float) -> Forecast: ...


def point_fields(sample: MetricSample) -> dict[str, float]:
    """The ``Point`` fields one op-geth sample carries (none when the target was down)."""
    if not sample.target_up:
        return {}
    names = {
        catalog.CPU_CORES: "cpu_cores",
        catalog.CPU_REQUEST_CORES: "cpu_request",
        catalog.TX_POOL_COUNT: "tx_pool",
        catalog.GAS_USED_RATIO: "gas_used_ratio",
        catalog.BLOCK_INTERVAL: "block_interval",
    }
    return {field: sample.metrics[metric] for metric, field in names.items() if metric in sample.metrics}

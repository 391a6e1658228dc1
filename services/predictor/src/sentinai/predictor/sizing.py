"""The ladder step a forecast asks for: up only when the current step is full, down with a margin."""

from __future__ import annotations

from collections.abc import Sequence

from sentinai.common.policy import Ladder
from sentinai.predictor.model import SATURATED_SHARE, SATURATED_SHARE_ALONE, Forecast

# A step must hold the cores asked for exactly: ``Ladder``'s default tolerance would let a ceiling a
# hair over a step (2.0000000001 cores) fit in it, and move the benchmarked decisions.
EXACT = 0.0


def recommend(
    forecast: Forecast,
    *,
    ladder: Sequence[float],
    current_vcpu: float | None,
    headroom: float,
    down_headroom: float | None = None,
    up_tolerance: float = 1 - SATURATED_SHARE,
) -> float:
    """The smallest ladder step ≥ ceiling × (1 + headroom), capped at the top of the ladder.

    Going up needs demand now (the level) to fill the current step, within ``up_tolerance`` of it
    (on a chain whose blocks are on time, to outgrow it: op-geth at its request has what it needs):
    a ceiling over a lower level is a 1-in-10 chance of a short excursion, and a correction that
    extrapolates a jump is a guess; neither is worth a restart up now and another down a
    quarter-hour later. Once the step is full, the step up is sized on the ceiling. Going down needs
    ``down_headroom`` (default twice ``headroom``) to fit the lower step, so a forecast hovering at
    a step boundary does not flap between scale-down and scale-up proposals.
    """
    steps = Ladder(tuple(ladder))
    ceiling = forecast.upper_cores if forecast.ceiling_cores is None else forecast.ceiling_cores
    target = steps.fit(ceiling * (1 + headroom), tolerance=EXACT)
    if current_vcpu is None:
        return target
    if target > current_vcpu:
        level = forecast.point_cores if forecast.level_cores is None else forecast.level_cores
        wanted = level * (1 + headroom)
        # Blocks on time: the step holds the load; only the headroom asked for can outgrow it.
        # No block intervals: the step is full only at the request, as for the pinned reading.
        tolerance = (
            up_tolerance if forecast.short is not None else min(up_tolerance, 1 - SATURATED_SHARE_ALONE)
        )
        full = wanted > current_vcpu if forecast.short is False else wanted >= (1 - tolerance) * current_vcpu
        return target if full else current_vcpu
    down = 2 * headroom if down_headroom is None else down_headroom
    if target < current_vcpu and ceiling * (1 + down) > target:
        return min(current_vcpu, steps.fit(ceiling * (1 + down), tolerance=EXACT))
    return target

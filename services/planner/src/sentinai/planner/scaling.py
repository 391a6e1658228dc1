"""Pure: CPU scaling from forecasts, with hysteresis, flap guards and the chain's own lull history.

``ScalingMemory`` is what the planner remembers between events (per chain and component); every
function here reads and updates it, and nothing else.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sentinai.common.actions import Action, ScaleCpu, ScaleDown
from sentinai.common.decisions import ActionExecuted, ActionProposed, PredictionMade
from sentinai.common.policy import Ladder, Policy
from sentinai.planner.cooldowns import Cooldown, cooling
from sentinai.planner.proposals import propose
from sentinai.planner.remedies import verify_resources

ScaleKey = tuple[str, str]  # (chain, component)
# A step down that stops above the step the point forecast needs with this margin (the predictor's
# default down margin) is part-way: another one is likely to follow.
PARTWAY_MARGIN = 0.1
# A chain's past lulls say how long this one will last only once a few of them outlasted it.
MIN_LULLS = 5


@dataclass
class ScalingMemory:
    """What the planner remembers about CPU scaling per chain and component, between events."""

    vcpu: dict[ScaleKey, float] = field(default_factory=dict)
    # When the last scale proposal (or execution) happened, and which action it was.
    last_scale: dict[ScaleKey, tuple[datetime, str]] = field(default_factory=dict)
    # Since when forecasts have said the component could live on a lower ladder step.
    below_since: dict[ScaleKey, datetime] = field(default_factory=dict)
    # When CPU was last scaled up (proposed or executed): no step down soon after (a flap).
    last_up: dict[ScaleKey, datetime] = field(default_factory=dict)
    # The ladder step that holds the point forecast, as (since when, step) at each change: the
    # chain's lulls (how long its load fitted a step before it outgrew it again) are read from it.
    needs: dict[ScaleKey, deque[tuple[datetime, float]]] = field(default_factory=dict)

    def current(self, chain_id: str) -> dict[str, float]:
        return {component: v for (chain, component), v in self.vcpu.items() if chain == chain_id}


def _scale_key(proposal: ActionProposed) -> ScaleKey | None:
    if isinstance(proposal.action, ScaleCpu | ScaleDown):
        return (proposal.chain_id, proposal.action.component)
    return None


def admit_scaling(
    proposals: Sequence[ActionProposed], memory: ScalingMemory, *, now: datetime
) -> list[ActionProposed]:
    """Drop scale proposals for a component still in its cooldown; remember the admitted ones.

    The same proposal (same action id) is always admitted again, so a redelivered event whose first
    handling failed half-way is not lost to the cooldown it set itself.
    """
    admitted = []
    for proposal in proposals:
        key = _scale_key(proposal)
        if key is not None and proposal.status != "refused":
            last = memory.last_scale.get(key)
            cooling = last is not None and now - last[0] < timedelta(seconds=proposal.cooldown_s)
            if cooling and last is not None and last[1] != proposal.action_id:
                continue
            memory.last_scale[key] = (now, proposal.action_id)
            if isinstance(proposal.action, ScaleCpu):
                memory.last_up[key] = now
        admitted.append(proposal)
    return admitted


def plan_prediction(
    pred: PredictionMade,
    *,
    policy: Policy,
    now: datetime,
    state: ScalingMemory,
    min_confidence: float = 60.0,
    sustain_s: float = 300.0,
    headroom: float = 0.0,
    hold_after_up_s: float = 900.0,
    partway_sustain_s: float = 1800.0,
    action_price_core_h: float = 2.0,
    lull_memory_s: float = 86_400.0,
    cooldowns: Mapping[str, Cooldown] | None = None,
) -> list[ActionProposed]:
    """Scale up on a confident forecast above the current request; down only after a sustained lull.

    Hysteresis: a step down needs the predicted step, and the forecast's upper bound plus ``headroom``,
    to fit the lower step for ``sustain_s`` (``partway_sustain_s`` when that step is still above the
    one the point forecast needs); any forecast that does not fit resets that clock. No step down
    within ``hold_after_up_s`` of a step up: undoing a scale-up that soon is a flap.
    Lull memory: a step down and the step up that ends the lull cost two actions, priced at
    ``action_price_core_h`` core-hours each (0: off); the step down is taken only when, judged on
    the lulls this chain had at the lower step within ``lull_memory_s`` that lasted longer than this
    one has so far, taking it now costs less than keeping the cores any longer (``_step_down_pays``).
    Cooldown: see ``admit_scaling``; and while the executor holds the component in its cooldown
    (``cooldowns``), nothing is proposed: the next forecast after it asks again.
    """
    key = (pred.chain_id, pred.component)
    ladder = policy.ladder
    current = pred.current_vcpu or state.vcpu.get(key)
    if pred.current_vcpu is not None:
        state.vcpu[key] = pred.current_vcpu
    action: Action | None = None
    if action_price_core_h > 0:
        _remember_load(state, key, now=now, cores=pred.forecast_cores, ladder=ladder, memory_s=lull_memory_s)
    confident = pred.confidence >= min_confidence
    if confident and Ladder.compare(pred.predicted_vcpu, current or ladder.floor) > 0:
        state.below_since.pop(key, None)
        target = ladder.fit(pred.predicted_vcpu)
        if Ladder.compare(target, current or 0) > 0:
            action = ScaleCpu(component=pred.component, vcpu=target)
    elif current is not None and confident:
        # The predicted step is a ladder step the predictor sized with its own headroom and down
        # margin; ``headroom`` adds a margin on the forecast's upper bound (none by default).
        need = max(pred.predicted_vcpu, pred.upper_bound_cores * (1 + headroom))
        fits = ladder.fit(need)
        if Ladder.compare(fits, current) < 0:
            since = state.below_since.setdefault(key, now)
            up = state.last_up.get(key)
            held = up is None or now - up >= timedelta(seconds=hold_after_up_s)
            # A part-way step is likely followed by another one down: wait longer, so that the lull
            # more often ends in one move (or in none, when the load comes back).
            needed = ladder.fit(pred.forecast_cores * (1 + PARTWAY_MARGIN))
            wait = sustain_s if fits <= needed else max(sustain_s, partway_sustain_s)
            if (
                held
                and now - since >= timedelta(seconds=wait)
                and _step_down_pays(
                    state,
                    key,
                    now=now,
                    current=current,
                    fits=fits,
                    price_core_h=action_price_core_h,
                )
            ):
                action = ScaleDown(component=pred.component, vcpu=fits)
        else:
            state.below_since.pop(key, None)
    if action is None:
        return []
    proposal = propose(
        action,
        policy=policy,
        now=now,
        chain_id=pred.chain_id,
        reason=f"forecast {pred.predicted_vcpu:g} vCPU ({pred.trend}, confidence {pred.confidence:.0f}) "
        f"against {current if current is not None else 'unknown'} vCPU requested: {pred.reasoning}",
        id_basis=f"prediction-{pred.event_id}",
        correlation_id=pred.correlation_id,
        verify=verify_resources(action),
    )
    aid, cooldown_s = proposal.action_id, proposal.cooldown_s
    if cooling(action, cooldowns, action_id=aid, cooldown_s=cooldown_s, now=now) is not None:
        return []
    admitted = admit_scaling([proposal], state, now=now)
    if admitted and isinstance(action, ScaleDown):
        state.below_since.pop(key, None)
    return admitted


def _remember_load(
    state: ScalingMemory,
    key: ScaleKey,
    *,
    now: datetime,
    cores: float,
    ladder: Ladder,
    memory_s: float,
) -> None:
    """Record the ladder step that holds the point forecast ``cores`` (change points, ``memory_s`` kept)."""
    step = ladder.fit(cores)
    needs = state.needs.setdefault(key, deque())
    if not needs or needs[-1][1] != step:
        needs.append((now, step))
    horizon = now - timedelta(seconds=memory_s)
    # Keep one change at or before the horizon: the step in force there.
    while len(needs) > 1 and needs[1][0] <= horizon:
        needs.popleft()


def _lulls(
    needs: Sequence[tuple[datetime, float]], *, under: float, now: datetime
) -> tuple[list[float], float]:
    """(finished lulls, seconds the current one has lasted): spans the load fitted ``under``, in seconds.

    A lull at a step runs from when the load first fits it to when it no longer does (the step up
    from it); the current one, if the load fits now, is not finished.
    """
    found: list[float] = []
    start: datetime | None = None
    for at, step in needs:
        if Ladder.compare(step, under) <= 0:
            start = at if start is None else start
        elif start is not None:
            found.append((at - start).total_seconds())
            start = None
    return found, 0.0 if start is None else (now - start).total_seconds()


def _step_down_pays(
    state: ScalingMemory, key: ScaleKey, *, now: datetime, current: float, fits: float, price_core_h: float
) -> bool:
    """Whether stepping down to ``fits`` now beats any later moment, on the chain's past lulls.

    Ski rental on the lulls this chain had at ``fits`` that outlasted this one so far, each a
    possible future for it. Stepping down now costs two actions (this one and the step up that ends
    the lull), ``price_core_h`` each. Waiting until ``w`` costs the cores kept meanwhile, and the two
    actions still when the lull outlasts ``w`` too (``w`` past the longest one: never). Down now
    unless some ``w`` costs less on those lulls; with fewer than ``MIN_LULLS`` of them there is no
    evidence to keep the cores on.
    """
    if price_core_h <= 0:
        return True
    lulls, elapsed = _lulls(state.needs.get(key, ()), under=fits, now=now)
    tail = sorted(length - elapsed for length in lulls if length > elapsed)
    if len(tail) < MIN_LULLS:
        return True
    pair = 2 * price_core_h * 3600.0 / (current - fits)  # two actions, in seconds of the saved cores
    down_now = pair * len(tail)
    ended = 0.0  # the seconds kept on the lulls that end by ``w``
    for i, w in enumerate(tail):
        ended += w
        outlast = len(tail) - bisect.bisect_right(tail, w)
        # Lulls up to ``w`` end while the cores are kept; the rest keep them until ``w``.
        if ended + (len(tail) - i - 1) * w + pair * outlast < down_now:
            return False
    return True


def record_executed(executed: ActionExecuted, memory: ScalingMemory) -> None:
    """A scale that took effect (or would have, in dry-run) sets the request and restarts the cooldown."""
    action = executed.action
    if not isinstance(action, ScaleCpu | ScaleDown):
        return
    if executed.outcome not in ("succeeded", "dry_run"):
        return
    key = (executed.chain_id, action.component)
    memory.vcpu[key] = action.vcpu
    memory.last_scale[key] = (executed.finished_at, executed.action_id)
    if isinstance(action, ScaleCpu):
        memory.last_up[key] = executed.finished_at

"""Pure planning: diagnoses and forecasts become typed, policy-classified proposals; commands decide them.

Three honesty rules live here. Evidence: a diagnosis that has not met its class's evidence rule
proposes nothing, and one short of the bar for automatic execution only proposes for approval.
Cooldown: an action the executor would refuse because it changed the same component moments ago
is proposed as refused, saying until when. Resolution: remedies of an incident that is over are
withdrawn while they wait.

People are compared as identities (``sentinai.common.identity``): no one approves twice or
approves their own proposal under another spelling, and an agent's request waits for a human.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import re
from collections import deque
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final, Literal

from sentinai.common import catalog
from sentinai.common.actions import (
    Action,
    Notify,
    RaiseMemory,
    RestartComponent,
    ScaleCpu,
    ScaleDown,
)
from sentinai.common.decisions import (
    ActionApproved,
    ActionCommand,
    ActionExecuted,
    ActionProposed,
    ActionRequested,
    ActionVerdict,
    AuditKind,
    AuditRecorded,
    IncidentResolved,
    PredictionMade,
    RcaCompleted,
    VerdictCode,
    VerifySpec,
    action_id,
)
from sentinai.common.identity import distinct_identities, same_identity
from sentinai.common.incidents import RootCauseClass
from sentinai.common.policy import Policy, classify
from sentinai.planner.cooldowns import Cooldown, cooling

MIN_RCA_CONFIDENCE = 0.5
# A notification changes nothing in the cluster, so a less certain diagnosis may still send one.
MIN_NOTIFY_CONFIDENCE = 0.3
# op-geth's memory limit when the diagnosis quotes no figure (the twin's and a common production size).
DEFAULT_OP_GETH_MEMORY_GIB = 8.0
MEMORY_GROWTH = 1.5
_MEMORY_BYTES = re.compile(r"memoryBytes\D{0,3}([0-9][0-9.eE+]*)")
_GIB = 1024**3


# ------------------------------------------------------------------------------------------ remedies


def remedies(
    rca: RcaCompleted,
    *,
    policy: Policy,
    current_vcpu: Mapping[str, float] | None = None,
    min_confidence: float = MIN_RCA_CONFIDENCE,
    min_notify_confidence: float = MIN_NOTIFY_CONFIDENCE,
) -> list[Action]:
    """The catalogue actions that answer ``rca``'s root cause; nothing when unsure or observe-only.

    Between ``min_notify_confidence`` and ``min_confidence`` only the notifications remain.
    """
    if rca.root_cause_class == "unknown" or rca.confidence < min(min_confidence, min_notify_confidence):
        return []
    actions = _remedies(rca, policy=policy, current_vcpu=current_vcpu)
    if rca.confidence < min_confidence:
        return [action for action in actions if isinstance(action, Notify)]
    return actions


def _remedies(rca: RcaCompleted, *, policy: Policy, current_vcpu: Mapping[str, float] | None) -> list[Action]:
    cause = rca.root_cause_class
    if cause in ("sequencer_stall", "peer_loss"):
        return [RestartComponent(component="op-node")]
    if cause == "l1_rpc_outage":
        return [
            RestartComponent(component="op-node"),
            Notify(
                severity="high",
                text="L1 RPC outage: switch op-node's L1 endpoint (--l1) to a healthy provider; "
                "switching endpoints is not in the action catalogue, a human must",
            ),
        ]
    if cause == "batcher_failure":
        # An empty key (the L1 node's error, or the balance the collector reads) needs a human with funds.
        if _mentions(rca, "insufficient funds") or _mentions(rca, "op-batcher balance="):
            return [
                Notify(
                    severity="critical",
                    text="op-batcher cannot pay for L1 transactions (insufficient funds): fund the "
                    "batcher key: a human must; a restart will not help",
                )
            ]
        return [RestartComponent(component="op-batcher")]
    if cause == "proposer_failure":
        return [RestartComponent(component="op-proposer")]
    if cause == "op_geth_cpu_saturation":
        return [_scale_up(policy, current=(current_vcpu or {}).get("op-geth"))]
    if cause == "op_geth_oom":
        return [RaiseMemory(component="op-geth", memory_gib=_memory_target(rca))]
    if cause == "engine_api_failure":
        return [RestartComponent(component="op-geth")]
    if cause == "jwt_mismatch":
        return [
            Notify(
                severity="critical",
                text="JWT mismatch between op-node and op-geth (401 Unauthorized on the engine API): "
                "a restart will not fix it; put the same secret in both --authrpc.jwtsecret and "
                "--l2.jwt-secret",
            )
        ]
    if cause == "disk_pressure":
        return [
            Notify(
                severity="critical",
                text="op-geth disk is nearly full: expand its volume (needs approval) or prune "
                "before geth shuts itself down",
            )
        ]
    if cause == "txpool_spam":
        return [
            Notify(
                severity="low",
                text="tx pool is being flooded: observe, rate-limit at the RPC edge if it persists; "
                "restarting would not help and drops the pool",
            )
        ]
    return []  # l1_reorg: observe only, op-node heals itself


def _mentions(rca: RcaCompleted, needle: str) -> bool:
    texts = [rca.root_cause, rca.action_plan, *rca.evidence]
    for hypothesis in rca.hypotheses:
        if hypothesis.cause == rca.root_cause_class:
            texts += [hypothesis.summary, *hypothesis.evidence]
    return any(needle in text.lower() for text in texts)


def _scale_up(policy: Policy, *, current: float | None) -> Action:
    ladder = sorted(policy.vcpu_ladder)
    base = ladder[0] if current is None else current
    for step in ladder:
        if step > base + 1e-9:
            return ScaleCpu(component="op-geth", vcpu=step)
    return Notify(
        severity="high",
        text=f"op-geth CPU is saturated at the top of the vCPU ladder ({base:g} vCPU): "
        "scale out or move to larger nodes",
    )


def _memory_target(rca: RcaCompleted) -> float:
    """1.5x the largest quoted working set (or the default limit), rounded up to a whole GiB."""
    quoted = []
    for text in (*rca.evidence, *(e for h in rca.hypotheses for e in h.evidence)):
        for match in _MEMORY_BYTES.finditer(text):
            try:
                quoted.append(float(match.group(1)) / _GIB)
            except ValueError:
                continue
    base = max([DEFAULT_OP_GETH_MEMORY_GIB, *quoted])
    return float(math.ceil(base * MEMORY_GROWTH))


# ----------------------------------------------------------------------------------------- proposals


def event_id(kind: str, *parts: str) -> str:
    """A deterministic event id, so a republished decision is deduplicated by JetStream and readers."""
    digest = hashlib.sha256("|".join(parts).encode()).hexdigest()
    return f"{kind}-{digest[:24]}"


def propose(
    action: Action,
    *,
    policy: Policy,
    now: datetime,
    chain_id: str,
    reason: str,
    incident: RootCauseClass | None = None,
    episode_id: str | None = None,
    id_basis: str | None = None,
    correlation_id: str | None = None,
    proposed_by: str = "planner",
    verify: VerifySpec | None = None,
    automatic: bool = True,
    cooldowns: Mapping[str, Cooldown] | None = None,
) -> ActionProposed:
    """Classify ``action`` and wrap it as a proposal: refused, auto-approved, or awaiting approvals.

    ``automatic=False``: the grounds are not yet enough for the policy's automatic approval, so an
    automatic tier waits for one person instead. ``cooldowns`` (the chain's, by component): an action
    on a component the executor still holds in its cooldown is refused, saying until when.
    """
    verdict = classify(action, policy, incident=incident)
    status: Literal["pending_approval", "auto_approved", "refused"] = "pending_approval"
    refusal = verdict.refusal
    required = verdict.approvals_required
    if verdict.auto:
        if automatic:
            status = "auto_approved"
        else:
            required = 1
    elif refusal is not None:
        # "Forbidden without approval" is a demand, not a refusal, when enough approvals can lift it.
        if classify(action, policy, incident=incident, approvals=required).allowed:
            refusal = None
        else:
            status = "refused"
    aid = action_id(chain_id, id_basis or episode_id, action)
    if status != "refused":
        held = cooling(action, cooldowns, action_id=aid, cooldown_s=verdict.cooldown_s, now=now)
        if held is not None:
            status, refusal = "refused", held.refusal()
    return ActionProposed(
        event_id=event_id("proposed", aid),
        correlation_id=correlation_id or aid,
        occurred_at=now,
        chain_id=chain_id,
        action_id=aid,
        action=action,
        tier=verdict.tier,
        approvals_required=required,
        cooldown_s=verdict.cooldown_s,
        status=status,
        refusal=refusal,
        reason=reason,
        proposed_by=proposed_by,
        incident=incident,
        episode_id=episode_id,
        expires_at=now + timedelta(seconds=policy.proposal_ttl_s),
        verify=verify,
    )


def plan_request(
    request: ActionRequested,
    *,
    policy: Policy,
    now: datetime,
    block_time_s: float,
    cooldowns: Mapping[str, Cooldown] | None = None,
) -> ActionProposed:
    """A person's or agent's request, judged by the same policy as the planner's own remedies.

    The requester becomes the proposer, so it can never approve its own request; tiers, cooldowns
    and the forbidden list apply exactly as to any other proposal. An agent's request (``via="mcp"``
    or ``agent``) is never approved automatically while the policy's ``agent_requests_need_human``
    holds: an automatic tier waits for one person instead.
    """
    reason = f"requested by {request.requested_by} via {request.via}: {request.reason}"
    needs_human = policy.agent_requests_need_human and from_agent(request)
    if needs_human:
        reason += "; an agent's request waits for a human's approval"
    return propose(
        request.action,
        policy=policy,
        now=now,
        chain_id=request.chain_id,
        reason=reason,
        id_basis=request.event_id,
        correlation_id=request.correlation_id,
        proposed_by=request.requested_by,
        verify=verify_spec(None, request.action, block_time_s=block_time_s),
        automatic=not needs_human,
        cooldowns=cooldowns,
    )


def from_agent(request: ActionRequested) -> bool:
    """Whether an AI agent made ``request``: it came through MCP, or its sender says so."""
    return request.agent or request.via == "mcp"


def verify_spec(incident: RootCauseClass | None, action: Action, *, block_time_s: float) -> VerifySpec | None:
    """What must be true again after ``action`` for it to count as a fix (None: nothing to verify)."""
    if isinstance(action, ScaleCpu):
        # Saturation is fixed when op-geth is no longer pinned at its allocation; a busy but unthrottled
        # op-geth (80-95 % of the new request) is the point of buying the cores, not a failed scale-up.
        return VerifySpec(component=action.component, metric=catalog.CPU_USAGE, below=95.0, window_s=120.0)
    if isinstance(action, ScaleDown):
        # After giving cores back, the remaining ones must keep headroom.
        return VerifySpec(component=action.component, metric=catalog.CPU_USAGE, below=80.0, window_s=120.0)
    if isinstance(action, RaiseMemory):
        return VerifySpec(component=action.component, metric=catalog.MEMORY_USAGE, below=90.0, window_s=180.0)
    if not isinstance(action, RestartComponent):
        return None
    if incident == "peer_loss":
        return VerifySpec(component="op-node", metric=catalog.PEER_COUNT, above=0.5, window_s=120.0)
    if action.component == "op-batcher":
        # The safe head moves again once batches land on L1 (a few minutes on a real chain).
        return VerifySpec(component="op-node", metric=catalog.SAFE_L2_AGE, below=600.0, window_s=600.0)
    if action.component == "op-proposer":
        # Outputs are proposed hourly: nothing faster to watch than the pod serving again.
        return VerifySpec(component="op-proposer", metric=catalog.POD_READY, above=0.5, window_s=120.0)
    if action.component == "op-node" and incident == "l1_rpc_outage":
        return VerifySpec(component="op-node", metric=catalog.L1_HEAD_AGE, below=120.0, window_s=180.0)
    # Sequencer stall, engine API failure: blocks flow again.
    return VerifySpec(
        component="op-geth", metric=catalog.SECONDS_SINCE_HEAD, below=3 * block_time_s, window_s=120.0
    )


WAITING: Final = "waiting for corroboration"


def plan_rca(
    rca: RcaCompleted,
    *,
    policy: Policy,
    now: datetime,
    proposed_by: str = "planner",
    current_vcpu: Mapping[str, float] | None = None,
    min_confidence: float = MIN_RCA_CONFIDENCE,
    min_notify_confidence: float = MIN_NOTIFY_CONFIDENCE,
    block_time_s: float = 2.0,
    cooldowns: Mapping[str, Cooldown] | None = None,
) -> list[ActionProposed]:
    """Every remedy of ``rca`` as a classified proposal, refused ones included (they are audited).

    Evidence first: nothing at all (not even a notification) unless the diagnosis met its class's
    evidence rule for a proposal; short of the rule for automatic execution, every proposal waits
    for a person and says what it waits for. An event without ``corroboration`` (from before the
    rules existed) counts as not corroborated.
    """
    grounds = rca.corroboration
    if grounds is None or not grounds.proposal_met:
        return []
    status = grounds.status.strip()
    if not grounds.auto_met:
        # The rca may already phrase it as waiting; say it once.
        bare = status[len(WAITING) :].lstrip(" :") if status.lower().startswith(WAITING) else status
        status = f"{WAITING}: {bare}"
    reason = f"{rca.root_cause} (confidence {rca.confidence:.2f}, {rca.engine}); {status}"
    return [
        propose(
            action,
            policy=policy,
            now=now,
            chain_id=rca.chain_id,
            reason=reason,
            incident=rca.root_cause_class,
            episode_id=rca.episode_id,
            correlation_id=rca.correlation_id,
            proposed_by=proposed_by,
            verify=verify_spec(rca.root_cause_class, action, block_time_s=block_time_s),
            automatic=grounds.auto_met,
            cooldowns=cooldowns,
        )
        for action in remedies(
            rca,
            policy=policy,
            current_vcpu=current_vcpu,
            min_confidence=min_confidence,
            min_notify_confidence=min_notify_confidence,
        )
    ]


def upgrade(
    existing: ActionProposed, decision: Decision | None, fresh: ActionProposed
) -> ActionProposed | None:
    """``existing`` as the policy allows it now that ``fresh`` (the same action planned again) runs alone.

    A later diagnosis of the same incident names the same remedy under the same action id. While
    the earlier proposal still waits (pending, undecided) and the new grounds let its tier run
    automatically, it is re-published as automatic: same action id, the new reason, its own event
    id. Anything else (decided, expired, refused, still short of evidence, refused for a cooldown
    now) keeps the earlier proposal as it is: a replay.
    """
    if fresh.action_id != existing.action_id or fresh.status != "auto_approved":
        return None
    if existing.status != "pending_approval" or decision is not None:
        return None
    if fresh.occurred_at >= existing.expires_at:
        return None  # past its deadline: it expires, it is not revived
    return fresh.model_copy(
        update={
            "event_id": event_id("proposed", existing.action_id, "upgraded"),
            "correlation_id": existing.correlation_id,
            "expires_at": existing.expires_at,
        }
    )


def withdrawable(pending: Iterable[ActionProposed], resolved: IncidentResolved) -> list[ActionProposed]:
    """The proposals of the resolved incident still waiting for approval: their remedy is needed no more."""
    return [
        p
        for p in pending
        if p.status == "pending_approval"
        and p.chain_id == resolved.chain_id
        and p.episode_id == resolved.incident_id
    ]


def withdrawal_reason(resolved: IncidentResolved) -> str:
    return f"incident resolved: {resolved.reason}"


# ------------------------------------------------------------------------------------------- scaling

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
    ladder = sorted(policy.vcpu_ladder)
    current = pred.current_vcpu or state.vcpu.get(key)
    if pred.current_vcpu is not None:
        state.vcpu[key] = pred.current_vcpu
    action: Action | None = None
    if action_price_core_h > 0:
        _remember_load(state, key, now=now, cores=pred.forecast_cores, ladder=ladder, memory_s=lull_memory_s)
    if pred.confidence >= min_confidence and pred.predicted_vcpu > (current or ladder[0]) + 1e-9:
        state.below_since.pop(key, None)
        target = next((s for s in ladder if s >= pred.predicted_vcpu - 1e-9), ladder[-1])
        if target > (current or 0) + 1e-9:
            action = ScaleCpu(component=pred.component, vcpu=target)
    elif current is not None and pred.confidence >= min_confidence:
        # The predicted step is a ladder step the predictor sized with its own headroom and down
        # margin; ``headroom`` adds a margin on the forecast's upper bound (none by default).
        need = max(pred.predicted_vcpu, pred.upper_bound_cores * (1 + headroom))
        fits = next((s for s in ladder if s >= need - 1e-9), ladder[-1])
        if fits < current - 1e-9:
            since = state.below_since.setdefault(key, now)
            up = state.last_up.get(key)
            held = up is None or now - up >= timedelta(seconds=hold_after_up_s)
            # A part-way step is likely followed by another one down: wait longer, so that the lull
            # more often ends in one move (or in none, when the load comes back).
            floor = pred.forecast_cores * (1 + PARTWAY_MARGIN)
            needed = next((s for s in ladder if s >= floor - 1e-9), ladder[-1])
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
        verify=verify_spec(None, action, block_time_s=2.0),
    )
    aid, cooldown_s = proposal.action_id, proposal.cooldown_s
    if cooling(action, cooldowns, action_id=aid, cooldown_s=cooldown_s, now=now) is not None:
        return []
    admitted = admit_scaling([proposal], state, now=now)
    if admitted and isinstance(action, ScaleDown):
        state.below_since.pop(key, None)
    return admitted


def _holding_step(cores: float, ladder: Sequence[float]) -> float:
    """The smallest ladder step that holds ``cores``."""
    return next((s for s in ladder if s >= cores - 1e-9), ladder[-1])


def _remember_load(
    state: ScalingMemory,
    key: ScaleKey,
    *,
    now: datetime,
    cores: float,
    ladder: Sequence[float],
    memory_s: float,
) -> None:
    """Record the ladder step that holds the point forecast ``cores`` (change points, ``memory_s`` kept)."""
    step = _holding_step(cores, ladder)
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
        if step <= under + 1e-9:
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


# ------------------------------------------------------------------------------------------ approvals

Decision = Literal["approved", "rejected", "expired", "withdrawn"]
OutcomeStatus = Literal["approved", "waiting", "rejected", "refused", "expired"]
# The action's state once the planner has judged a command or request, as its verdict reports it.
ActionState = Literal[
    "waiting", "approved", "rejected", "refused", "expired", "withdrawn", "pending_approval", "auto_approved"
]


@dataclass(frozen=True, slots=True)
class Approval:
    by: str  # the principal's name as given; compared only through ``identity``
    at: datetime
    reason: str = ""
    # The event id of the command that gave it: that command redelivered is this approval, not another.
    command_id: str = ""


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    """What one command did to a proposal; ``approvals`` is the full list after it.

    ``status`` is what the planner does with the command; ``code`` says why, for the sender, and
    ``state`` is the action's state after it (a refused approval leaves the action waiting).
    """

    status: OutcomeStatus
    approvals: tuple[Approval, ...]
    required: int
    why: str
    code: VerdictCode = "ok"
    state: ActionState = "waiting"

    @property
    def decision(self) -> Decision | None:
        if self.status in ("approved", "rejected", "expired"):
            return self.status
        return None

    @property
    def accepted(self) -> bool:
        return self.code == "ok"


def apply_command(
    proposal: ActionProposed,
    approvals: Sequence[Approval],
    cmd: ActionCommand,
    *,
    policy: Policy,
    now: datetime,
    decision: Decision | None = None,
    why: str = "",
    answered: Collection[str] = (),
    cooldowns: Mapping[str, Cooldown] | None = None,
) -> CommandOutcome:
    """Apply an approve/reject command to a proposal whose state is ``approvals`` and ``decision``.

    ``why`` is the reason recorded with ``decision``; ``answered`` the event ids of the commands
    that already took effect on it. People are compared as identities (``alice``, ``ALICE`` and
    ``" Alice "`` are one): the proposer cannot approve, and a second approval by the same person
    is refused (``same_principal``) rather than counted. The same command redelivered (its event id
    in ``answered``) yields the same outcome again, so it republishes the same, deduplicated,
    events. The approval that would complete a proposal is refused while the executor holds its
    component in a cooldown (``cooldowns``): it would refuse the action, which could then never
    run; the approvers may approve again once the cooldown is over.
    """
    have = tuple(approvals)
    required = proposal.approvals_required
    mine = next((a for a in have if same_identity(a.by, cmd.by)), None)
    again = cmd.event_id in answered

    def refused(code: VerdictCode, why: str, state: ActionState) -> CommandOutcome:
        return CommandOutcome("refused", have, required, why, code, state)

    if proposal.status == "refused":
        return refused("not_pending", f"the policy refused this proposal: {proposal.refusal}", "refused")
    if proposal.status == "auto_approved":
        why_not = "auto-approved by policy: there is nothing to approve or reject"
        return refused("not_pending", why_not, "auto_approved")
    if decision == "withdrawn":
        return refused("withdrawn", "the proposal was withdrawn" + (f": {why}" if why else ""), "withdrawn")
    if decision == "expired" or (decision is None and now >= proposal.expires_at):
        # The command that found it expired, redelivered, expires it again (the same events).
        status: OutcomeStatus = "refused" if decision == "expired" and not again else "expired"
        return CommandOutcome(status, have, required, expiry(proposal), "expired", "expired")
    if again and decision == "approved" and cmd.command == "approve":
        return CommandOutcome("approved", have, required, why or approved_by(have), state="approved")
    if again and decision == "rejected" and cmd.command == "reject":
        return CommandOutcome("rejected", have, required, why, state="rejected")
    if decision is not None:
        if cmd.command == "approve" and mine is not None:
            return refused(
                "same_principal", f"{mine.by} already approved; the action is {decision}", decision
            )
        return refused(
            "not_pending", f"the proposal was already {decision}" + (f" ({why})" if why else ""), decision
        )
    if cmd.command == "reject":
        why_rejected = f"rejected by {cmd.by}" + (f": {cmd.reason}" if cmd.reason else "")
        return CommandOutcome("rejected", have, required, why_rejected, state="rejected")
    if same_identity(cmd.by, proposal.proposed_by):
        return refused(
            "proposer", f"{proposal.proposed_by} proposed this action and cannot approve it", "waiting"
        )
    if mine is not None and not again:
        why_not = f"{mine.by} already approved; a second approval needs a different person"
        return refused("same_principal", why_not, "waiting")
    after = have if mine is not None else (*have, Approval(cmd.by, now, cmd.reason, cmd.event_id))
    count = distinct_identities([a.by for a in after])
    verdict = classify(proposal.action, policy, incident=proposal.incident, approvals=count)
    required = max(required, verdict.approvals_required)
    if count < required:
        return CommandOutcome("waiting", after, required, f"{count}/{required} distinct approvals")
    if verdict.refusal is not None:
        return refused("policy", verdict.refusal, "waiting")
    cooldown_s = max(proposal.cooldown_s, verdict.cooldown_s)
    held = cooling(proposal.action, cooldowns, action_id=proposal.action_id, cooldown_s=cooldown_s, now=now)
    if held is not None:
        why_not = f"{held.refusal()}: the executor would refuse it now; approve again after the cooldown"
        return refused("cooldown", why_not, "waiting")
    return CommandOutcome("approved", after, required, approved_by(after), state="approved")


def approved_by(approvals: Sequence[Approval]) -> str:
    return f"approved by {', '.join(a.by for a in approvals)}"


def expiry(proposal: ActionProposed) -> str:
    return f"the proposal expired at {proposal.expires_at.isoformat()}"


def unknown_action(cmd: ActionCommand) -> CommandOutcome:
    """The outcome of a command for an action id the planner never proposed."""
    return CommandOutcome(
        "refused", (), 0, f"no proposal with id {cmd.action_id}", "unknown_action", "refused"
    )


def command_verdict(cmd: ActionCommand, outcome: CommandOutcome, *, now: datetime) -> ActionVerdict:
    """The planner's answer to ``cmd`` once ``outcome`` is recorded; a redelivery gets the same one."""
    return ActionVerdict(
        event_id=event_id("verdict", cmd.event_id),
        correlation_id=cmd.correlation_id,
        occurred_at=now,
        chain_id=cmd.chain_id,
        answers=cmd.event_id,
        action_id=cmd.action_id,
        kind=cmd.command,
        accepted=outcome.accepted,
        code=outcome.code,
        status=outcome.state,
        reason=outcome.why,
        approvals=tuple(a.by for a in outcome.approvals),
        approvals_required=outcome.required,
    )


def request_verdict(
    request: ActionRequested,
    proposal: ActionProposed,
    *,
    policy: Policy,
    now: datetime,
    decision: Decision | None = None,
    why: str = "",
    approvals: Sequence[Approval] = (),
) -> ActionVerdict:
    """The planner's answer to ``request``: ``proposal`` as recorded (and ``decision``, if taken since).

    A refused proposal says whether the policy or the executor's cooldown refused it; a waiting one
    whom it waits for.
    """
    code: VerdictCode = "ok"
    state: ActionState = proposal.status
    what = f"{proposal.action.summary()} [{proposal.tier}]"
    if proposal.status == "refused":
        code = "policy" if _policy_refuses(proposal, policy) else "cooldown"
        reason = f"{what} refused: {proposal.refusal}"
    elif proposal.status == "auto_approved":
        reason = f"{what} approved automatically by the policy"
    else:
        n = proposal.approvals_required
        approvals_needed = f"{n} approval{'s' if n != 1 else ''}"
        reason = f"{what} waits for {approvals_needed} by someone other than {proposal.proposed_by}"
        if policy.agent_requests_need_human and from_agent(request):
            reason += ": an agent's request waits for a human"
    if decision is not None:
        state = decision
        reason = f"{what} {decision}" + (f": {why}" if why else "")
    return ActionVerdict(
        event_id=event_id("verdict", request.event_id),
        correlation_id=request.correlation_id,
        occurred_at=now,
        chain_id=request.chain_id,
        answers=request.event_id,
        action_id=proposal.action_id,
        kind="request",
        accepted=code == "ok",
        code=code,
        status=state,
        reason=reason,
        approvals=tuple(a.by for a in approvals),
        approvals_required=proposal.approvals_required,
    )


def _policy_refuses(proposal: ActionProposed, policy: Policy) -> bool:
    """Whether the policy itself refuses ``proposal`` (else the executor's cooldown refused it)."""
    action, incident = proposal.action, proposal.incident
    return not classify(action, policy, incident=incident, approvals=proposal.approvals_required).allowed


def approved_event(proposal: ActionProposed, approvers: Sequence[str], *, now: datetime) -> ActionApproved:
    """The one ``action.approved`` of a proposal; its id depends on the action only (deduplicated)."""
    return ActionApproved(
        event_id=event_id("approved", proposal.action_id),
        correlation_id=proposal.correlation_id,
        occurred_at=now,
        chain_id=proposal.chain_id,
        action_id=proposal.action_id,
        action=proposal.action,
        tier=proposal.tier,
        approvers=tuple(approvers),
        cooldown_s=proposal.cooldown_s,
        incident=proposal.incident,
        episode_id=proposal.episode_id,
        reason=proposal.reason,
        verify=proposal.verify,
    )


def expired(proposal: ActionProposed, decision: Decision | None, *, now: datetime) -> bool:
    return proposal.status == "pending_approval" and decision is None and now >= proposal.expires_at


# ---------------------------------------------------------------------------------------------- audit

AUDIT_KEEP = 100


def audit_event(
    kind: AuditKind,
    proposal: ActionProposed,
    *,
    actor: str,
    now: datetime,
    summary: str,
    outcome: str | None = None,
    reasoning: str = "",
    key: str = "",
) -> AuditRecorded:
    """An audit record of ``proposal``; ``key`` separates records of one kind (e.g. each approver)."""
    return AuditRecorded(
        event_id=event_id(f"audit-{kind}", proposal.action_id, key),
        correlation_id=proposal.correlation_id,
        occurred_at=now,
        chain_id=proposal.chain_id,
        kind=kind,
        actor=actor,
        action_id=proposal.action_id,
        summary=summary,
        reasoning=reasoning,
        outcome=outcome,
        details={
            "action": proposal.action.model_dump(mode="json", by_alias=True),
            "tier": proposal.tier,
            "incident": proposal.incident,
            "episodeId": proposal.episode_id,
        },
    )


def fold_audit(
    recent: Sequence[AuditRecorded], event: AuditRecorded, *, keep: int = AUDIT_KEEP
) -> list[AuditRecorded] | None:
    """The read model with ``event`` added (newest first, ``keep`` long), or None if it changes nothing."""
    if any(e.event_id == event.event_id for e in recent):
        return None
    # Stable sort with the new record first: of records stamped alike, the later arrival is newer.
    merged = sorted([event, *recent], key=lambda e: e.occurred_at, reverse=True)[:keep]
    return None if event not in merged else merged

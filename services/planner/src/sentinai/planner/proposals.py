"""Pure: diagnoses and requests become policy-classified proposals; upgrades and withdrawals of them.

Two honesty rules live here. Evidence: a diagnosis that has not met its class's evidence rule
proposes nothing, and one short of the bar for automatic execution only proposes for approval.
Cooldown: an action the executor would refuse because it changed the same component moments ago
is proposed as refused, saying until when.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Final, Literal

from sentinai.common.actions import Action
from sentinai.common.decisions import (
    ActionProposed,
    ActionRequested,
    IncidentResolved,
    RcaCompleted,
    VerifySpec,
    action_id,
)
from sentinai.common.events import derived_id
from sentinai.common.incidents import RootCauseClass
from sentinai.common.policy import Policy, classify
from sentinai.common.settings import ChainRules
from sentinai.planner.cooldowns import Cooldown, cooling
from sentinai.planner.remedies import (
    DEFAULT_RULES,
    MIN_NOTIFY_CONFIDENCE,
    MIN_RCA_CONFIDENCE,
    remedies,
    verify_spec,
)

WAITING: Final = "waiting for corroboration"
# How a proposal that waited for approval ended.
Decision = Literal["approved", "rejected", "expired", "withdrawn"]


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
        event_id=derived_id("proposed", aid),
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
    rules: ChainRules = DEFAULT_RULES,
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
        verify=verify_spec(None, request.action, block_time_s=block_time_s, rules=rules),
        automatic=not needs_human,
        cooldowns=cooldowns,
    )


def from_agent(request: ActionRequested) -> bool:
    """Whether an AI agent made ``request``: it came through MCP, or its sender says so."""
    return request.agent or request.via == "mcp"


def plan_rca(
    rca: RcaCompleted,
    *,
    policy: Policy,
    now: datetime,
    block_time_s: float,
    rules: ChainRules = DEFAULT_RULES,
    proposed_by: str = "planner",
    current_vcpu: Mapping[str, float] | None = None,
    min_confidence: float = MIN_RCA_CONFIDENCE,
    min_notify_confidence: float = MIN_NOTIFY_CONFIDENCE,
    cooldowns: Mapping[str, Cooldown] | None = None,
) -> list[ActionProposed]:
    """Every remedy of ``rca`` as a classified proposal, refused ones included (they are audited).

    Evidence first: nothing at all (not even a notification) unless the diagnosis met its class's
    evidence rule for a proposal; short of the rule for automatic execution, every proposal waits
    for a person and says what it waits for. An event without ``corroboration`` (from before the
    rules existed) counts as not corroborated. ``block_time_s`` (the chain's) and ``rules`` size
    the verification of "blocks flow again".
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
            verify=verify_spec(rca.root_cause_class, action, block_time_s=block_time_s, rules=rules),
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
            "event_id": derived_id("proposed", existing.action_id, "upgraded"),
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

"""Pure: people's approve/reject commands applied to proposals, and the verdicts that answer them.

People are compared as identities (``sentinai.common.identity``): no one approves twice or
approves their own proposal under another spelling, and an agent's request waits for a human.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sentinai.common.decisions import (
    ActionApproved,
    ActionCommand,
    ActionProposed,
    ActionRequested,
    ActionVerdict,
    VerdictCode,
)
from sentinai.common.events import derived_id
from sentinai.common.identity import distinct_identities, same_identity
from sentinai.common.policy import Policy, classify
from sentinai.planner.cooldowns import Cooldown, cooling
from sentinai.planner.proposals import Decision, from_agent

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


def expired(proposal: ActionProposed, decision: Decision | None, *, now: datetime) -> bool:
    return proposal.status == "pending_approval" and decision is None and now >= proposal.expires_at


def unknown_action(cmd: ActionCommand) -> CommandOutcome:
    """The outcome of a command for an action id the planner never proposed."""
    return CommandOutcome(
        "refused", (), 0, f"no proposal with id {cmd.action_id}", "unknown_action", "refused"
    )


def command_verdict(cmd: ActionCommand, outcome: CommandOutcome, *, now: datetime) -> ActionVerdict:
    """The planner's answer to ``cmd`` once ``outcome`` is recorded; a redelivery gets the same one."""
    return ActionVerdict(
        event_id=derived_id("verdict", cmd.event_id),
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
        event_id=derived_id("verdict", request.event_id),
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
        event_id=derived_id("approved", proposal.action_id),
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

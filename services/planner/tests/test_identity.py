"""People are compared as identities: one person under several spellings is one approver, never two."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sentinai.common.actions import Action, ExecDebug, RestartComponent
from sentinai.common.decisions import ActionCommand, ActionProposed, ActionRequested
from sentinai.common.policy import load_policy
from sentinai.planner import logic
from sentinai.planner.logic import Approval, CommandOutcome
from sentinai.planner.records import Ledger

POLICY = load_policy()
T0 = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
CRITICAL = ExecDebug(component="op-geth", command="geth attach")  # two distinct approvers


def requested(action: Action, *, by: str = "bob") -> ActionProposed:
    request = ActionRequested(
        chain_id="opmain", occurred_at=T0, action=action, requested_by=by, reason="needs a look", via="rest"
    )
    return logic.plan_request(request, policy=POLICY, now=T0, block_time_s=2.0)


def approve(proposal: ActionProposed, approvals: tuple[Approval, ...], by: str) -> CommandOutcome:
    cmd = ActionCommand(chain_id="opmain", action_id=proposal.action_id, command="approve", by=by)
    return logic.apply_command(proposal, approvals, cmd, policy=POLICY, now=T0)


def test_alice_under_three_spellings_is_one_approver_and_a_critical_action_keeps_waiting() -> None:
    proposal = requested(CRITICAL)
    assert (proposal.status, proposal.approvals_required) == ("pending_approval", 2)
    first = approve(proposal, (), "alice")
    assert (first.status, first.why) == ("waiting", "1/2 distinct approvals")
    for spelling in ("ALICE", " Alice "):
        again = approve(proposal, first.approvals, spelling)
        assert (again.status, again.code, again.state) == ("refused", "same_principal", "waiting")
        assert again.why == "alice already approved; a second approval needs a different person"
        assert [a.by for a in again.approvals] == ["alice"]


def test_alice_and_bob_are_two_approvers_and_approve_a_critical_action() -> None:
    proposal = requested(CRITICAL, by="carol")
    first = approve(proposal, (), "alice")
    second = approve(proposal, first.approvals, "bob")
    assert (second.status, second.code, second.decision) == ("approved", "ok", "approved")
    assert [a.by for a in second.approvals] == ["alice", "bob"]


@pytest.mark.parametrize(
    "spelling", ["bob", "Bob ", "BOB", "Ｂｏｂ"], ids=["same", "trailing-space", "upper", "full-width"]
)
def test_the_proposer_cannot_approve_under_any_spelling(spelling: str) -> None:
    proposal = requested(RestartComponent(component="op-node"), by="bob")
    out = approve(proposal, (), spelling)
    assert (out.status, out.code, out.state, out.approvals) == ("refused", "proposer", "waiting", ())
    assert out.why == "bob proposed this action and cannot approve it"


def test_the_name_recorded_is_the_one_given() -> None:
    proposal = requested(RestartComponent(component="op-node"))
    out = approve(proposal, (), " Alice ")
    assert out.status == "approved" and [a.by for a in out.approvals] == [" Alice "]
    assert out.why == "approved by  Alice "


def test_an_old_ledger_with_two_spellings_of_one_person_counts_one_approver() -> None:
    # Ledgers written before identities were compared may hold "alice" and "ALICE": one person.
    proposal = requested(CRITICAL, by="carol")
    old = (Approval(by="alice", at=T0), Approval(by="ALICE", at=T0))
    out = approve(proposal, old, "Alice")
    assert (out.status, out.code) == ("refused", "same_principal")


def test_the_ledger_keeps_each_approvals_command_so_a_redelivery_is_recognised() -> None:
    proposal = requested(CRITICAL, by="carol")
    cmd = ActionCommand(chain_id="opmain", action_id=proposal.action_id, command="approve", by="alice")
    first = logic.apply_command(proposal, (), cmd, policy=POLICY, now=T0)
    ledger = Ledger.of(first.approvals, decision=None, why=first.why, at=T0)
    stored = Ledger.model_validate_json(ledger.model_dump_json(by_alias=True))
    assert stored.answered() == {cmd.event_id}
    again = logic.apply_command(
        proposal, stored.approvers(), cmd, policy=POLICY, now=T0, answered=stored.answered()
    )
    assert (again.status, again.code, again.approvals) == ("waiting", "ok", first.approvals)

"""Every command and request gets one verdict a person understands; agents' requests wait for a human."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
import pytest
import yaml
from busready import running_planner
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from sentinai.common import streams, subjects
from sentinai.common.actions import Action, DeleteNamespace, ExecDebug, RestartComponent, ScaleCpu
from sentinai.common.decisions import (
    ActionApproved,
    ActionCommand,
    ActionProposed,
    ActionRequested,
    ActionVerdict,
    requested_action_id,
)
from sentinai.common.policy import DEFAULT_POLICY_FILE, load_policy
from sentinai.devkit.natsserver import EmbeddedNats
from sentinai.devkit.waits import eventually
from sentinai.planner import cooldowns, logic
from sentinai.planner.logic import Approval, CommandOutcome

POLICY = load_policy()
T0 = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
CHAIN = "opmain"
CRITICAL = ExecDebug(component="op-geth", command="geth attach")  # two distinct approvers


def request(action: Action, *, by: str = "bob", via: str = "rest", agent: bool = False) -> ActionRequested:
    return ActionRequested(
        chain_id=CHAIN,
        occurred_at=T0,
        action=action,
        requested_by=by,
        reason="the batcher looks stuck",
        via=via,
        agent=agent,
    )


def plan(req: ActionRequested, *, cooling: dict[str, cooldowns.Cooldown] | None = None) -> ActionProposed:
    return logic.plan_request(req, policy=POLICY, now=T0, block_time_s=2.0, cooldowns=cooling)


def cmd(by: str, command: str = "approve", *, action_id: str = "", reason: str = "") -> ActionCommand:
    return ActionCommand(
        chain_id=CHAIN, action_id=action_id or "act-x", command=command, by=by, reason=reason
    )


# ---------------------------------------------------------------------------------- command verdicts

HIGH = plan(request(RestartComponent(component="op-node")))  # bob's, one approval
TWO = plan(request(CRITICAL))  # bob's, two approvals
ALICE = (Approval(by="alice", at=T0, command_id="cmd-alice"),)
OP_NODE_RESTARTED = {
    "op-node": cooldowns.Cooldown("op-node", "act-before", "restarted", T0 - timedelta(seconds=60), 600)
}


def judged(
    proposal: ActionProposed,
    by: str,
    command: str = "approve",
    *,
    approvals: tuple[Approval, ...] = (),
    decision: logic.Decision | None = None,
    why: str = "",
    now: datetime = T0,
    cooling: dict[str, cooldowns.Cooldown] | None = None,
) -> tuple[ActionCommand, CommandOutcome]:
    c = cmd(by, command, action_id=proposal.action_id, reason="not now" if command == "reject" else "")
    out = logic.apply_command(
        proposal, approvals, c, policy=POLICY, now=now, decision=decision, why=why, cooldowns=cooling
    )
    return c, out


SCENARIOS: dict[str, Callable[[], tuple[ActionCommand, CommandOutcome]]] = {
    "approved": lambda: judged(HIGH, "alice"),
    "waiting-for-a-second-person": lambda: judged(TWO, "alice"),
    "rejected": lambda: judged(HIGH, "carol", "reject"),
    "proposer": lambda: judged(HIGH, "BOB"),
    "same-principal": lambda: judged(TWO, "Alice", approvals=ALICE),
    "same-principal-after-approval": lambda: judged(HIGH, "ALICE", approvals=ALICE, decision="approved"),
    "expired": lambda: judged(HIGH, "alice", now=HIGH.expires_at),
    "withdrawn": lambda: judged(HIGH, "alice", decision="withdrawn", why="incident resolved: blocks flow"),
    "already-rejected": lambda: judged(HIGH, "alice", decision="rejected", why="rejected by carol"),
    "auto-approved": lambda: judged(plan(request(ScaleCpu(component="op-geth", vcpu=2))), "alice"),
    "cooldown": lambda: judged(HIGH, "alice", cooling=OP_NODE_RESTARTED),
    "unknown-action": lambda: (c := cmd("alice", action_id="act-0000000000000000"), logic.unknown_action(c)),
}
EXPECTED: dict[str, tuple[bool, str, str, str, tuple[str, ...], int]] = {
    "approved": (True, "ok", "approved", "approved by alice", ("alice",), 1),
    "waiting-for-a-second-person": (True, "ok", "waiting", "1/2 distinct approvals", ("alice",), 2),
    "rejected": (True, "ok", "rejected", "rejected by carol: not now", (), 1),
    "proposer": (False, "proposer", "waiting", "bob proposed this action and cannot approve it", (), 1),
    "same-principal": (
        False, "same_principal", "waiting",
        "alice already approved; a second approval needs a different person", ("alice",), 2,
    ),
    "same-principal-after-approval": (
        False, "same_principal", "approved", "alice already approved; the action is approved", ("alice",), 1,
    ),
    "expired": (
        False, "expired", "expired", f"the proposal expired at {HIGH.expires_at.isoformat()}", (), 1,
    ),
    "withdrawn": (
        False, "withdrawn", "withdrawn", "the proposal was withdrawn: incident resolved: blocks flow", (), 1,
    ),
    "already-rejected": (
        False, "not_pending", "rejected", "the proposal was already rejected (rejected by carol)", (), 1,
    ),
    "auto-approved": (
        False, "not_pending", "auto_approved",
        "auto-approved by policy: there is nothing to approve or reject", (), 0,
    ),
    "cooldown": (
        False, "cooldown", "waiting",
        "op-node was restarted at 00:59:00; cooldown 600 s until 01:09:00: the executor would refuse "
        "it now; approve again after the cooldown", (), 1,
    ),
    "unknown-action": (False, "unknown_action", "refused", "no proposal with id act-0000000000000000", (), 0),
}  # fmt: skip


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_every_command_gets_a_verdict_a_person_understands(scenario: str) -> None:
    command, outcome = SCENARIOS[scenario]()
    verdict = logic.command_verdict(command, outcome, now=T0)
    got = (verdict.accepted, verdict.code, verdict.status, verdict.reason)
    assert (*got, verdict.approvals, verdict.approvals_required) == EXPECTED[scenario]
    assert (verdict.answers, verdict.action_id, verdict.kind) == (
        command.event_id,
        command.action_id,
        command.command,
    )
    assert verdict.correlation_id == command.correlation_id and verdict.chain_id == CHAIN


def test_a_redelivered_command_gets_the_same_verdict() -> None:
    first_cmd, first = judged(TWO, "alice")
    again = logic.apply_command(
        TWO, first.approvals, first_cmd, policy=POLICY, now=T0, answered={first_cmd.event_id}
    )
    one = logic.command_verdict(first_cmd, first, now=T0)
    two = logic.command_verdict(first_cmd, again, now=T0 + timedelta(seconds=3))
    assert one.model_dump(exclude={"occurred_at"}) == two.model_dump(exclude={"occurred_at"})


# ---------------------------------------------------------------------------------- request verdicts


@pytest.mark.parametrize(
    ("via", "agent"), [("mcp", False), ("rest", True), ("cli", True)], ids=["mcp", "agent-rest", "agent-cli"]
)
def test_an_agents_medium_tier_request_is_never_auto_approved(via: str, agent: bool) -> None:
    req = request(RestartComponent(component="op-batcher"), by="agent-claude", via=via, agent=agent)
    proposal = plan(req)
    assert (proposal.tier, proposal.status, proposal.approvals_required) == ("medium", "pending_approval", 1)
    assert proposal.reason.endswith("an agent's request waits for a human's approval")
    verdict = logic.request_verdict(req, proposal, policy=POLICY, now=T0)
    assert (verdict.accepted, verdict.code, verdict.status, verdict.kind) == (
        True, "ok", "pending_approval", "request"
    )  # fmt: skip
    assert verdict.reason == (
        "restart op-batcher [medium] waits for 1 approval by someone other than agent-claude: "
        "an agent's request waits for a human"
    )
    assert verdict.action_id == requested_action_id(req) and verdict.answers == req.event_id
    # The agent's own principal is the proposer: it cannot approve, however it spells itself.
    approval = cmd(" Agent-Claude", action_id=proposal.action_id)
    out = logic.apply_command(proposal, (), approval, policy=POLICY, now=T0)
    assert (out.code, out.state) == ("proposer", "waiting")


def test_a_persons_medium_tier_request_and_any_request_with_the_setting_off_run_by_their_tier() -> None:
    restart = RestartComponent(component="op-batcher")
    assert plan(request(restart, by="alice")).status == "auto_approved"
    lenient = POLICY.model_copy(update={"agent_requests_need_human": False})
    req = request(restart, by="agent-claude", via="mcp")
    proposal = logic.plan_request(req, policy=lenient, now=T0, block_time_s=2.0)
    assert (proposal.status, proposal.approvals_required) == ("auto_approved", 0)
    verdict = logic.request_verdict(req, proposal, policy=lenient, now=T0)
    assert (verdict.accepted, verdict.status) == (True, "auto_approved")
    assert verdict.reason == "restart op-batcher [medium] approved automatically by the policy"


def test_an_agents_forbidden_request_stays_refused_by_the_policy() -> None:
    req = request(DeleteNamespace(namespace="op"), by="agent-claude", via="mcp")
    proposal = plan(req)
    verdict = logic.request_verdict(req, proposal, policy=POLICY, now=T0)
    assert (proposal.status, verdict.accepted, verdict.code, verdict.status) == (
        "refused", False, "policy", "refused"
    )  # fmt: skip
    assert "forbidden: namespace-wide deletion" in verdict.reason


def test_a_request_refused_for_the_cooldown_says_so() -> None:
    req = request(RestartComponent(component="op-node"))
    proposal = plan(req, cooling=OP_NODE_RESTARTED)
    verdict = logic.request_verdict(req, proposal, policy=POLICY, now=T0)
    assert (verdict.accepted, verdict.code, verdict.status) == (False, "cooldown", "refused")
    assert "cooldown 600 s until 01:09:00" in verdict.reason


# ---------------------------------------------------------------------------------- on a real server


@dataclass
class Operator:
    """What the api does: subscribe to the verdict, then send; and what the executor sees approved."""

    nc: NatsClient
    js: JetStreamContext
    approved: list[ActionApproved]

    async def send(self, event: ActionCommand | ActionRequested) -> ActionVerdict:
        subject = (
            subjects.action_command(CHAIN)
            if isinstance(event, ActionCommand)
            else subjects.action_requested(CHAIN)
        )
        inbox = await self.nc.subscribe(subjects.action_verdict(CHAIN, event.event_id))
        try:
            # No Nats-Msg-Id: sent twice, the planner receives it twice (a redelivery).
            await self.js.publish(subject, event.to_json(), stream=streams.ACTIONS.name)
            msg = await inbox.next_msg(timeout=20)
        finally:
            await inbox.unsubscribe()
        return ActionVerdict.model_validate_json(msg.data)

    async def approve(self, action_id: str, by: str) -> ActionVerdict:
        return await self.send(ActionCommand(chain_id=CHAIN, action_id=action_id, command="approve", by=by))

    async def approved_action(self, action_id: str, *, timeout_s: float = 15.0) -> ActionApproved:
        [approved] = await eventually(
            lambda: [a for a in self.approved if a.action_id == action_id],
            timeout_s=timeout_s,
            what=f"{action_id} approved",
        )
        return approved

    async def audit_records(self) -> int:
        return (await self.js.stream_info(streams.AUDIT.name)).state.messages


@asynccontextmanager
async def operator(url: str) -> AsyncIterator[Operator]:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        approved: list[ActionApproved] = []

        async def on_approved(msg: Msg) -> None:
            approved.append(ActionApproved.model_validate_json(msg.data))

        await js.subscribe(subjects.ACTION_APPROVED_ALL, stream=streams.ACTIONS.name, cb=on_approved)
        yield Operator(nc, js, approved)
    finally:
        await nc.close()


async def test_an_agents_restart_through_mcp_waits_for_a_human_other_than_the_agent(
    nats_server: EmbeddedNats, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_planner(nats_server.url, monkeypatch), operator(nats_server.url) as op:
        req = ActionRequested(
            chain_id=CHAIN,
            action=RestartComponent(component="op-batcher"),
            requested_by="agent-claude",
            reason="op-batcher stopped posting batches",
            via="mcp",
        )
        asked = await op.send(req)
        action_id = requested_action_id(req)
        assert (asked.accepted, asked.status, asked.approvals_required, asked.action_id) == (
            True, "pending_approval", 1, action_id
        )  # fmt: skip
        assert asked.reason.endswith("an agent's request waits for a human")

        itself = await op.approve(action_id, "Agent-Claude")
        assert (itself.accepted, itself.code) == (False, "proposer")
        assert itself.reason == "agent-claude proposed this action and cannot approve it"
        assert op.approved == []

        human = await op.approve(action_id, "alice")
        assert (human.accepted, human.code, human.status, human.approvals) == (
            True,
            "ok",
            "approved",
            ("alice",),
        )
        approved = await op.approved_action(action_id)
        assert (approved.approvers, approved.tier, approved.action) == (("alice",), "medium", req.action)


async def test_with_the_setting_off_an_agents_medium_tier_restart_runs_at_once(
    nats_server: EmbeddedNats, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    lenient = yaml.safe_load(DEFAULT_POLICY_FILE.read_text()) | {"agent_requests_need_human": False}
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(yaml.safe_dump(lenient))
    async with (
        running_planner(nats_server.url, monkeypatch, policy_file=policy_file),
        operator(nats_server.url) as op,
    ):
        req = ActionRequested(
            chain_id=CHAIN,
            action=RestartComponent(component="op-batcher"),
            requested_by="agent-claude",
            reason="op-batcher stopped posting batches",
            via="mcp",
        )
        asked = await op.send(req)
        assert (asked.accepted, asked.status, asked.approvals_required) == (True, "auto_approved", 0)
        approved = await op.approved_action(requested_action_id(req))
        assert approved.approvers == ()


async def test_one_person_under_three_spellings_is_one_approver_and_every_command_is_answered(
    nats_server: EmbeddedNats, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_planner(nats_server.url, monkeypatch), operator(nats_server.url) as op:
        req = ActionRequested(
            chain_id=CHAIN, action=CRITICAL, requested_by="bob", reason="inspect the txpool", via="rest"
        )
        asked = await op.send(req)
        action_id = asked.action_id
        assert (asked.status, asked.approvals_required) == ("pending_approval", 2)

        first = ActionCommand(chain_id=CHAIN, action_id=action_id, command="approve", by="alice")
        one = await op.send(first)
        assert (one.accepted, one.status, one.approvals, one.reason) == (
            True, "waiting", ("alice",), "1/2 distinct approvals"
        )  # fmt: skip
        for spelling in ("ALICE", " Alice "):
            again = await op.approve(action_id, spelling)
            assert (again.accepted, again.code, again.status, again.approvals) == (
                False, "same_principal", "waiting", ("alice",)
            )  # fmt: skip
            assert again.reason == "alice already approved; a second approval needs a different person"
        proposer = await op.approve(action_id, "Ｂｏｂ")
        assert (proposer.accepted, proposer.code) == (False, "proposer")

        # alice's command delivered again: the same verdict, and nothing new in the audit trail.
        audited = await op.audit_records()
        redelivered = await op.send(first)
        assert redelivered.model_dump(exclude={"occurred_at"}) == one.model_dump(exclude={"occurred_at"})
        assert await op.audit_records() == audited
        assert op.approved == []

        done = await op.approve(action_id, "carol")
        assert (done.accepted, done.status, done.approvals) == (True, "approved", ("alice", "carol"))
        assert (await op.approved_action(action_id)).approvers == ("alice", "carol")


async def test_a_command_for_an_unknown_action_is_answered_and_audited(
    nats_server: EmbeddedNats, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_planner(nats_server.url, monkeypatch), operator(nats_server.url) as op:
        verdict = await op.approve("act-0000000000000000", "alice")
        assert (verdict.accepted, verdict.code, verdict.reason) == (
            False, "unknown_action", "no proposal with id act-0000000000000000"
        )  # fmt: skip
        assert await op.audit_records() == 1

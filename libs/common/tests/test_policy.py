"""The packaged risk policy: every tier rule, the forbidden list, and a bad policy file."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentinai.common.actions import (
    Action,
    DatabaseDelete,
    DatabaseDrop,
    DeleteNamespace,
    DeleteServiceAccount,
    ExecDebug,
    Notify,
    RaiseMemory,
    RestartComponent,
    ScaleCpu,
    ScaleDown,
)
from sentinai.common.incidents import RootCauseClass
from sentinai.common.policy import PolicyError, Tier, classify, load_policy, on_ladder

POLICY = load_policy()


@pytest.mark.parametrize(
    ("action", "incident", "tier", "approvals", "cooldown_s"),
    [
        (Notify(severity="critical", text="fund the batcher"), None, "low", 0, 300),
        (ScaleCpu(component="op-geth", vcpu=2), "op_geth_cpu_saturation", "low", 0, 300),
        (ScaleDown(component="op-geth", vcpu=1), None, "high", 1, 600),
        (RestartComponent(component="op-node"), "peer_loss", "low", 0, 300),
        (RestartComponent(component="op-node"), "sequencer_stall", "high", 1, 600),
        (RestartComponent(component="op-node"), None, "high", 1, 600),
        (RestartComponent(component="op-geth"), "engine_api_failure", "medium", 0, 300),
        (RestartComponent(component="op-batcher"), "batcher_failure", "medium", 0, 300),
        (RestartComponent(component="op-proposer"), "proposer_failure", "medium", 0, 300),
        (RaiseMemory(component="op-geth", memory_gib=12), "op_geth_oom", "high", 1, 600),
    ],
    ids=[
        "notify",
        "scale_cpu",
        "scale_down",
        "restart-op-node-peer-loss",
        "restart-op-node-stall",
        "restart-op-node-any",
        "restart-op-geth",
        "restart-op-batcher",
        "restart-op-proposer",
        "raise_memory",
    ],
)
def test_every_tier_rule(
    action: Action, incident: RootCauseClass | None, tier: Tier, approvals: int, cooldown_s: float
) -> None:
    verdict = classify(action, POLICY, incident=incident)
    assert (verdict.tier, verdict.approvals_required, verdict.cooldown_s) == (tier, approvals, cooldown_s)
    assert verdict.allowed
    assert verdict.auto == (approvals == 0)


@pytest.mark.parametrize(
    "action",
    [
        DatabaseDrop(component="op-geth"),
        DatabaseDelete(component="op-geth"),
        DeleteServiceAccount(name="op-batcher"),
        DeleteNamespace(namespace="op-mainnet"),
    ],
    ids=lambda a: a.kind,
)
def test_the_forbidden_list_is_refused_whatever_the_approvals(action: Action) -> None:
    for approvals in (0, 1, 5):
        verdict = classify(action, POLICY, approvals=approvals)
        assert not verdict.allowed and not verdict.auto
        assert verdict.refusal is not None and verdict.refusal.startswith("forbidden: ")


def test_exec_debug_needs_two_approvals() -> None:
    action = ExecDebug(component="op-geth", command="geth attach")
    for approvals in (0, 1):
        verdict = classify(action, POLICY, approvals=approvals)
        assert verdict.tier == "critical" and verdict.approvals_required == 2
        assert verdict.refusal is not None and "without approval" in verdict.refusal
    assert classify(action, POLICY, approvals=2).allowed


def test_an_unmatched_action_falls_to_the_default_tier(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(
        "tiers:\n"
        "  low: {approvals: 0, cooldown_s: 60}\n"
        "  medium: {approvals: 0, cooldown_s: 60}\n"
        "  high: {approvals: 1, cooldown_s: 60}\n"
        "  critical: {approvals: 2, cooldown_s: 60}\n"
        "rules:\n"
        "  - {kind: notify, tier: low}\n"
    )
    verdict = classify(RestartComponent(component="op-geth"), load_policy(path))
    assert (verdict.tier, verdict.approvals_required) == ("critical", 2)


def test_the_ladder() -> None:
    assert [on_ladder(v, POLICY) for v in (1, 2, 3, 4, 8)] == [True, True, False, True, True]


@pytest.mark.parametrize(
    "action",
    [
        ScaleCpu(component="op-geth", vcpu=64),
        ScaleCpu(component="op-geth", vcpu=3),
        ScaleDown(component="op-geth", vcpu=0.1),
    ],
    ids=["scale-to-64", "scale-to-3", "scale-down-to-0.1"],
)
def test_cpu_off_the_ladder_is_refused_even_in_an_auto_tier(action: Action) -> None:
    verdict = classify(action, POLICY, approvals=3)
    assert not verdict.allowed and "not on the policy's vCPU ladder" in (verdict.refusal or "")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tiers: [unclosed", "cannot read policy"),
        ("tiers: {}\nrules:\n  - {kind: reboot_the_world, tier: low}\n", "invalid policy"),
        ("tiers: {}\nrules: []\nsurprise: 1\n", "invalid policy"),
        ("tiers: {low: {approvals: 0, cooldown_s: 1}}\nrules: []\n", "missing: medium, high, critical"),
    ],
    ids=["not-yaml", "unknown-kind", "unknown-field", "missing-tiers"],
)
def test_a_bad_policy_file_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError, match=message) as caught:
        load_policy(path)
    assert str(path) in str(caught.value)


def test_a_missing_policy_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read policy"):
        load_policy(tmp_path / "absent.yaml")


def test_agents_requests_need_a_human_unless_the_policy_says_otherwise(tmp_path: Path) -> None:
    assert POLICY.agent_requests_need_human
    path = tmp_path / "policy.yaml"
    tiers = "".join(
        f"  {t}: {{approvals: 0, cooldown_s: 60}}\n" for t in ("low", "medium", "high", "critical")
    )
    path.write_text(f"tiers:\n{tiers}rules: []\n")
    assert load_policy(path).agent_requests_need_human  # unset: the safe default
    path.write_text(f"tiers:\n{tiers}rules: []\nagent_requests_need_human: false\n")
    assert not load_policy(path).agent_requests_need_human

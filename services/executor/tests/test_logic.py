"""The executor's pure core: re-check matrix, patch bodies, rollout and health judgement, rollback body."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sentinai.common.actions import (
    Action,
    DeleteNamespace,
    ExecDebug,
    Notify,
    RaiseMemory,
    RestartComponent,
    ScaleCpu,
    ScaleDown,
)
from sentinai.common.chains import ChainConfig
from sentinai.common.decisions import ActionApproved, VerifySpec
from sentinai.common.events import MetricSample
from sentinai.common.policy import Tier, load_policy
from sentinai.common.state import check_key
from sentinai.executor import logic

NOW = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
POLICY = load_policy()
CHAINS = {
    "opmain": ChainConfig(id="opmain", kubeconfig=Path("/etc/kubeconfig"), namespace="opmain"),
    "nokube": ChainConfig(id="nokube"),
}
GETH = logic.Workload(
    kind="StatefulSet",
    name="op-geth",
    namespace="opmain",
    container="op-geth",
    generation=1,
    resources={"requests": {"cpu": "1", "memory": "4Gi"}, "limits": {"memory": "8Gi"}},
)


def approved(
    action: Action,
    *,
    tier: Tier = "low",
    approvers: tuple[str, ...] = (),
    chain: str = "opmain",
    age_s: float = 5.0,
) -> ActionApproved:
    return ActionApproved(
        chain_id=chain,
        occurred_at=NOW - timedelta(seconds=age_s),
        action_id="a1",
        action=action,
        tier=tier,
        approvers=approvers,
        cooldown_s=300,
        reason="test",
    )


def recheck(event: ActionApproved, *, read_only: bool = False, simulate: bool = False) -> str | None:
    return logic.recheck(
        event, POLICY, chains=CHAINS, read_only=read_only, simulate=simulate, now=NOW, max_age_s=900
    )


@pytest.mark.parametrize(
    ("event", "read_only", "simulate", "refusal"),
    [
        pytest.param(
            approved(ScaleCpu(component="op-geth", vcpu=2)), False, False, None, id="low-scale-goes"
        ),
        pytest.param(
            approved(Notify(severity="high", text="x")), True, False, None, id="notify-in-read-only-goes"
        ),
        pytest.param(
            approved(DeleteNamespace(namespace="opmain"), tier="critical", approvers=("a", "b")),
            False,
            False,
            "forbidden: namespace-wide deletion",
            id="forbidden-even-approved",
        ),
        pytest.param(
            approved(RestartComponent(component="op-node"), tier="low"),
            False,
            False,
            "tier high needs 1 distinct approver(s), the approval carries 0",
            id="high-unapproved",
        ),
        pytest.param(
            approved(ExecDebug(component="op-geth", command="sh"), tier="critical", approvers=("ann", "ann")),
            False,
            False,
            "forbidden without approval",
            id="critical-same-approver-twice",
        ),
        pytest.param(
            approved(
                ExecDebug(component="op-geth", command="sh"),
                tier="critical",
                approvers=("ann", " ANN", "Ａｎｎ"),
            ),
            False,
            False,
            "forbidden without approval",
            id="critical-one-person-under-three-spellings",
        ),
        pytest.param(
            approved(ExecDebug(component="op-geth", command="sh"), tier="critical", approvers=("ann", "bob")),
            False,
            False,
            "exec_debug is not implemented",
            id="exec-debug-never-run",
        ),
        pytest.param(
            approved(ScaleCpu(component="op-geth", vcpu=2)),
            True,
            False,
            "read-only mode",
            id="read-only",
        ),
        pytest.param(
            approved(ScaleCpu(component="op-geth", vcpu=3)),
            False,
            False,
            "3 vCPU is not on the policy's vCPU ladder",
            id="off-ladder",
        ),
        pytest.param(
            approved(ScaleDown(component="op-geth", vcpu=0.5), tier="high", approvers=("ann",)),
            False,
            False,
            "0.5 vCPU is not on the policy's vCPU ladder",
            id="scale-down-off-ladder",
        ),
        pytest.param(
            approved(ScaleCpu(component="op-geth", vcpu=2), chain="ghost"),
            False,
            False,
            "unknown chain 'ghost'",
            id="unknown-chain",
        ),
        pytest.param(
            approved(ScaleCpu(component="op-geth", vcpu=2), age_s=3600),
            False,
            False,
            "stale approval",
            id="stale",
        ),
        pytest.param(
            approved(ScaleCpu(component="op-geth", vcpu=2), chain="nokube"),
            False,
            False,
            "has no kubeconfig",
            id="no-kubeconfig",
        ),
        pytest.param(
            approved(ScaleCpu(component="op-geth", vcpu=2), chain="nokube"),
            False,
            True,
            None,
            id="no-kubeconfig-dry-run-goes",
        ),
    ],
)
def test_recheck(event: ActionApproved, read_only: bool, simulate: bool, refusal: str | None) -> None:
    answer = recheck(event, read_only=read_only, simulate=simulate)
    if refusal is None:
        assert answer is None
    else:
        assert answer is not None and refusal in answer


def test_effect_key_is_a_valid_state_key_for_any_id() -> None:
    assert logic.effect_key("abc-123") == "effects.abc-123"
    hashed = logic.effect_key("a.b c/*")
    assert hashed.startswith("effects.derived-") and check_key(hashed) == hashed


def containers(body: dict[str, Any]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = body["spec"]["template"]["spec"]["containers"]
    return result


@pytest.mark.parametrize(
    ("action", "limits", "resources"),
    [
        pytest.param(
            ScaleCpu(component="op-geth", vcpu=2),
            {},
            {"requests": {"cpu": "2"}, "limits": {"cpu": "2"}},
            id="scale-up-adds-limit",
        ),
        pytest.param(
            ScaleCpu(component="op-geth", vcpu=2),
            {"cpu": "1500m"},
            {"requests": {"cpu": "2"}, "limits": {"cpu": "2"}},
            id="scale-up-raises-lower-limit",
        ),
        pytest.param(
            ScaleDown(component="op-geth", vcpu=1),
            {"cpu": "4"},
            {"requests": {"cpu": "1"}},
            id="scale-down-keeps-higher-limit",
        ),
        pytest.param(
            RaiseMemory(component="op-geth", memory_gib=12),
            {"memory": "8Gi"},
            {"requests": {"memory": "4Gi"}, "limits": {"memory": "12Gi"}},
            id="raise-memory-keeps-request",
        ),
        pytest.param(
            RaiseMemory(component="op-geth", memory_gib=2.5),
            {},
            {"requests": {"memory": "2560Mi"}, "limits": {"memory": "2560Mi"}},
            id="memory-request-never-above-limit",
        ),
    ],
)
def test_resource_patches(action: Action, limits: dict[str, str], resources: dict[str, Any]) -> None:
    workload = logic.Workload(
        kind="StatefulSet",
        name="op-geth",
        namespace="opmain",
        container="op-geth",
        generation=1,
        resources={"requests": {"cpu": "1", "memory": "4Gi"}, **({"limits": limits} if limits else {})},
    )
    body = logic.patch_for(action, workload, now=NOW)
    assert body is not None
    assert containers(body) == [{"name": "op-geth", "resources": resources}]


def test_restart_patches_only_the_template_annotation() -> None:
    body = logic.patch_for(RestartComponent(component="op-geth"), GETH, now=NOW)
    assert body == {
        "spec": {"template": {"metadata": {"annotations": {logic.RESTARTED_AT: "2026-11-27T01:00:00+00:00"}}}}
    }
    assert logic.rollback_patch(GETH, body) is None


def test_notify_has_no_patch() -> None:
    assert logic.patch_for(Notify(severity="low", text="x"), GETH, now=NOW) is None


def test_rollback_restores_exactly_what_the_patch_changed() -> None:
    forward = logic.patch_for(ScaleCpu(component="op-geth", vcpu=4), GETH, now=NOW)
    assert forward is not None
    rollback = logic.rollback_patch(GETH, forward)
    assert rollback is not None
    # The request goes back to "1"; the CPU limit the patch added is deleted (null), memory untouched.
    assert containers(rollback) == [
        {"name": "op-geth", "resources": {"requests": {"cpu": "1"}, "limits": {"cpu": None}}}
    ]


def test_captured_workload_round_trips_through_the_effect_record() -> None:
    assert logic.workload_from_previous(GETH.previous()) == GETH


@pytest.mark.parametrize(
    ("live_resources", "landed"),
    [
        pytest.param(GETH.resources, False, id="untouched"),
        pytest.param({"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"cpu": "2"}}, True, id="in"),
        pytest.param({"requests": {"cpu": "2000m"}, "limits": {"cpu": "2"}}, True, id="in-other-units"),
        pytest.param({"requests": {"cpu": "2"}}, False, id="half-in"),
    ],
)
def test_patch_landed_compares_the_live_workload_with_the_patch(
    live_resources: dict[str, dict[str, str]], landed: bool
) -> None:
    body = logic.patch_for(ScaleCpu(component="op-geth", vcpu=2), GETH, now=NOW)
    assert body is not None
    assert logic.patch_landed(replace(GETH, generation=2, resources=live_resources), body) is landed


def test_restart_landed_when_the_live_template_carries_its_annotation() -> None:
    body = logic.patch_for(RestartComponent(component="op-geth"), GETH, now=NOW)
    assert body is not None
    assert not logic.patch_landed(GETH, body)
    stamp = {logic.RESTARTED_AT: NOW.isoformat(timespec="seconds")}
    assert logic.patch_landed(replace(GETH, generation=2, annotations=stamp), body)


def test_workload_from_api_json_captures_resources_and_annotations() -> None:
    obj = {
        "kind": "Deployment",
        "metadata": {"name": "op-batcher", "namespace": "opmain", "generation": 7},
        "spec": {
            "template": {
                "metadata": {"annotations": {"a": "b"}},
                "spec": {"containers": [{"name": "op-batcher", "resources": {"requests": {"cpu": "100m"}}}]},
            }
        },
    }
    workload = logic.workload_from_json(obj, component="op-batcher")
    assert workload.previous() == {
        "kind": "Deployment",
        "name": "op-batcher",
        "namespace": "opmain",
        "container": "op-batcher",
        "generation": 7,
        "resources": {"requests": {"cpu": "100m"}},
        "templateAnnotations": {"a": "b"},
    }
    with pytest.raises(logic.WorkloadShapeError, match="no container 'op-geth'"):
        logic.workload_from_json(obj, component="op-geth")


@pytest.mark.parametrize(
    ("status", "ready"),
    [
        pytest.param({"observedGeneration": 2, "readyReplicas": 1}, True, id="ready"),
        pytest.param({"observedGeneration": 1, "readyReplicas": 1}, False, id="generation-not-observed"),
        pytest.param({"observedGeneration": 2}, False, id="no-ready-replica"),
    ],
)
def test_rollout_ready(status: dict[str, int], ready: bool) -> None:
    obj = {"metadata": {"generation": 2}, "spec": {"replicas": 1}, "status": status}
    assert logic.rollout_from_json(obj).ready is ready


def geth(i: int, height: float, *, age: float = 0.5) -> MetricSample:
    return MetricSample(
        chain_id="opmain",
        component="op-geth",
        source="rpc",
        occurred_at=NOW + timedelta(seconds=i),
        metrics={"blockHeight": height, "secondsSinceHead": age},
    )


def cpu(i: int, value: float) -> MetricSample:
    return MetricSample(
        chain_id="opmain",
        component="op-geth",
        source="k8s",
        occurred_at=NOW + timedelta(seconds=i),
        metrics={"cpuUsage": value},
    )


SPEC = VerifySpec(component="op-geth", metric="cpuUsage", below=90)
HEALTHY = [geth(0, 100), cpu(0, 70), geth(1, 101), cpu(1, 68), geth(2, 102), cpu(2, 71)]


@pytest.mark.parametrize(
    ("samples", "spec", "passed", "reason"),
    [
        pytest.param(HEALTHY, SPEC, True, "blocks advancing (100 → 102)", id="healthy"),
        pytest.param(HEALTHY, None, True, "blocks advancing", id="no-spec-blocks-only"),
        pytest.param(
            [geth(0, 100), geth(1, 100), cpu(1, 50)] * 2, SPEC, False, "blocks not advancing", id="stalled"
        ),
        pytest.param([geth(0, 100), geth(1, 101, age=9)], None, False, "head is 9.0s old", id="stale-head"),
        pytest.param([*HEALTHY[:4]], SPEC, False, "2/3 samples", id="too-few-samples"),
        pytest.param(
            [*HEALTHY[:5], cpu(2, 95)],
            SPEC,
            False,
            "not back in range (< 90): last 70, 68, 95",
            id="still-hot",
        ),
        pytest.param([cpu(-5, 99), *HEALTHY], SPEC, True, "70, 68, 71", id="samples-before-rollout-ignored"),
        pytest.param(
            [geth(0, 100), cpu(0, 95), geth(1, 101), cpu(1, 96), geth(2, 102, age=7), cpu(2, 97)],
            SPEC,
            False,
            "op-geth head is 7.0s old (limit 6s); op-geth cpuUsage not back in range (< 90): last 95, 96, 97",
            id="every-failed-check-named",
        ),
        pytest.param(
            HEALTHY,
            VerifySpec(component="op-geth", metric="cpuUsage", above=80),
            False,
            "(> 80)",
            id="above-bound",
        ),
    ],
)
def test_judge(samples: list[MetricSample], spec: VerifySpec | None, passed: bool, reason: str) -> None:
    judgement = logic.judge(samples, spec, since=NOW, block_time_s=2, consecutive=3)
    assert judgement.passed is passed
    assert reason in judgement.reason

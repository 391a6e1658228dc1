"""The Kubernetes API misbehaving during an action: conflicts, errors, a patch whose answer is lost.

Real processes: nats-server, the twin (its K8s API told to fail through its control API), the
collector (the health the executor verifies against) and the executor with simulation off. Each case
has its own chain, so cooldowns and faults never mix. What is checked: the outcome, the workload as
the cluster holds it afterwards (never half-applied), how many PATCH requests reached the API, and
what the audit trail says about it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import nats
import pytest
from faults_support import ensure_streams_at, stream_messages
from serviceproc import Service
from upstack import eventually

from sentinai.common import subjects
from sentinai.common.actions import ScaleCpu
from sentinai.common.decisions import ActionApproved
from sentinai.devkit.natsserver import EmbeddedNats
from sentinai.devkit.twinproc import TwinProcess
from sentinai.twin.client import TwinControl

pytestmark = pytest.mark.integration
CHAINS = ("conflict", "exhausted", "lost")
K8S_TIMEOUT_S = 2.0
RETRIES = 3


class Rig:
    def __init__(self, nats_server: EmbeddedNats, twin: TwinProcess) -> None:
        self.nats = nats_server
        self.twin = twin
        self.control = TwinControl(twin.base_url)

    def approve(self, chain: str, action_id: str) -> None:
        approved = ActionApproved(
            chain_id=chain,
            action_id=action_id,
            action=ScaleCpu(component="op-geth", vcpu=2),
            tier="low",
            cooldown_s=300,
            incident="op_geth_cpu_saturation",
            reason="op-geth CPU saturated",
        )

        async def publish() -> None:
            nc = await nats.connect(self.nats.url)
            try:
                await nc.jetstream().publish(
                    subjects.action_approved(chain),
                    approved.to_json(),
                    headers={"Nats-Msg-Id": approved.event_id},
                )
            finally:
                await nc.close()

        asyncio.run(publish())

    def executed(self, action_id: str) -> list[dict[str, Any]]:
        found = [
            json.loads(body) for _, body in stream_messages(self.nats.url, "ACTIONS", "action.executed.")
        ]
        return [e for e in found if e["actionId"] == action_id]

    def audit(self, action_id: str) -> list[dict[str, Any]]:
        found = [json.loads(body) for _, body in stream_messages(self.nats.url, "AUDIT")]
        return [r for r in found if r.get("actionId") == action_id]

    def outcome(self, action_id: str) -> dict[str, Any]:
        executed = eventually(lambda: self.executed(action_id), timeout_s=60, what=f"{action_id} executed")
        assert len(executed) == 1, executed
        return executed[0]

    def geth(self, chain: str) -> dict[str, Any]:
        """op-geth's StatefulSet as the cluster holds it (through the API, no fault armed for GETs)."""
        token = self.twin.kubeconfig.read_text().split("token: ", 1)[1].split()[0]
        response = httpx.get(
            f"{self.twin.base_url}/apis/apps/v1/namespaces/{chain}/statefulsets/op-geth",
            headers={"authorization": f"Bearer {token}"},
            timeout=5,
        )
        response.raise_for_status()
        workload: dict[str, Any] = response.json()
        return workload

    def resources(self, chain: str) -> dict[str, Any]:
        (container,) = self.geth(chain)["spec"]["template"]["spec"]["containers"]
        resources: dict[str, Any] = container["resources"]
        return resources

    def patches(self, chain: str) -> int:
        report = self.control.faults()
        return sum(r["count"] for r in report["requests"] if r["verb"] == "patch" and r["namespace"] == chain)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    root = tmp_path_factory.mktemp("kube-faults")
    server = EmbeddedNats(data_dir=root / "nats", log_file=root / "nats.log").start()
    twin = TwinProcess(root / "twin", chains=CHAINS, seed=11, block_time_s=1).start()
    services: list[Service] = []
    try:
        ensure_streams_at(server.url)
        common = {"SENTINAI_COLLECTOR_CHAINS_FILE": str(twin.chains_file)}
        services.append(
            Service.start(
                "collector",
                nats_url=server.url,
                workdir=root,
                env=common | {"SENTINAI_COLLECTOR_POLL_INTERVAL_S": "1"},
            )
        )
        services.append(
            Service.start(
                "executor",
                nats_url=server.url,
                workdir=root,
                env={
                    "SENTINAI_EXECUTOR_CHAINS_FILE": str(twin.chains_file),
                    "SCALING_SIMULATION_MODE": "false",
                    "SENTINAI_EXECUTOR_VERIFY_WINDOW_S": "20",
                    "SENTINAI_EXECUTOR_K8S_TIMEOUT_S": str(K8S_TIMEOUT_S),
                    "SENTINAI_EXECUTOR_K8S_RETRIES": str(RETRIES),
                },
            )
        )
        for service in services:
            eventually(service.healthy, timeout_s=60, what=f"{service.name} healthy")
        yield Rig(server, twin)
    finally:
        for service in services:
            service.stop()
        twin.stop()
        server.stop()


def test_conflict_then_success_is_retried_and_the_audit_shows_the_retry(rig: Rig) -> None:
    rig.control.kube_fault(verb="patch", status=409, times=1, namespace="conflict")
    rig.approve("conflict", "k8s-conflict")
    executed = rig.outcome("k8s-conflict")

    assert executed["outcome"] == "succeeded", executed["detail"]
    assert "after 1 retried error(s)" in executed["detail"]
    assert rig.patches("conflict") == 2  # the conflict, then the retry that went in
    assert rig.resources("conflict")["requests"]["cpu"] == "2"
    assert rig.geth("conflict")["metadata"]["generation"] == 2  # applied once
    audit = rig.audit("k8s-conflict")
    assert [r["kind"] for r in audit] == ["executing", "verified", "succeeded"]
    (retry,) = audit[-1]["details"]["retries"]
    assert "HTTP 409" in retry and "the object has been modified" in retry


def test_server_errors_until_retries_run_out_leave_the_previous_spec(rig: Rig) -> None:
    before = rig.resources("exhausted")
    # Worst case: every attempt goes in but answers 500, so the executor cannot know it succeeded.
    rig.control.kube_fault(verb="patch", status=500, times=RETRIES + 1, apply=True, namespace="exhausted")
    rig.approve("exhausted", "k8s-exhausted")
    executed = rig.outcome("k8s-exhausted")

    assert executed["outcome"] == "failed", executed["detail"]
    assert f"failed after {RETRIES} retried error(s)" in executed["detail"]
    assert "previous spec re-applied" in executed["detail"]
    assert rig.patches("exhausted") == RETRIES + 2  # every attempt, then the undo
    # Never half-applied: the workload is back to exactly what it was.
    assert rig.resources("exhausted") == before
    assert executed["previous"]["resources"] == before
    audit = rig.audit("k8s-exhausted")
    assert [r["kind"] for r in audit] == ["executing", "failed"]
    details = audit[-1]["details"]
    assert len(details["retries"]) == RETRIES and all("HTTP 500" in r for r in details["retries"])
    assert details["undo"] == "previous spec re-applied"


def test_a_patch_whose_answer_times_out_is_retried_and_applied_once(rig: Rig) -> None:
    # The patch goes in, but the answer comes after the executor's client gave up.
    rig.control.kube_fault(
        verb="patch", status=0, delay_s=K8S_TIMEOUT_S * 2, apply=True, times=1, namespace="lost"
    )
    rig.approve("lost", "k8s-lost")
    executed = rig.outcome("k8s-lost")

    assert executed["outcome"] == "succeeded", executed["detail"]
    assert rig.patches("lost") == 2
    assert rig.resources("lost")["requests"]["cpu"] == "2"
    # The retry carried the same body: one change to the spec, not two.
    assert rig.geth("lost")["metadata"]["generation"] == 2
    audit = rig.audit("k8s-lost")
    assert [r["kind"] for r in audit] == ["executing", "verified", "succeeded"]
    (retry,) = audit[-1]["details"]["retries"]
    assert "timed out" in retry.lower() or "timeout" in retry.lower()

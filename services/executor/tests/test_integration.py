"""The executor on real servers: nats-server, the OP Stack twin's Kubernetes API, the real collector.

Each test publishes an ``ActionApproved`` straight onto JetStream, as the planner would, and checks
the cluster (through the official client and the twin's control API), ``action.executed`` and the
audit trail.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from sentinai.common import subjects
from sentinai.common.actions import Action, DeleteNamespace, ScaleCpu
from sentinai.common.decisions import ActionApproved, ActionExecuted, AuditRecorded, VerifySpec
from sentinai.common.net import free_port
from sentinai.common.policy import Tier
from sentinai.common.streams import ACTIONS, ensure_streams
from sentinai.devkit.natsserver import EmbeddedNats
from sentinai.devkit.twinproc import TwinProcess
from sentinai.devkit.waits import eventually
from sentinai.executor.main import serve
from sentinai.executor.settings import ExecutorSettings
from sentinai.twin.client import TwinControl

pytestmark = pytest.mark.integration
CHAIN = "twin"


@pytest.fixture
def twin(tmp_path: Path) -> Iterator[TwinProcess]:
    process = TwinProcess(tmp_path / "twin", chains=(CHAIN,), seed=7, block_time_s=1).start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def collector(twin: TwinProcess, nats_server: EmbeddedNats, tmp_path: Path) -> Iterator[None]:
    """The real collector polling the twin every second: the health the executor verifies against."""
    env = os.environ | {
        "SENTINAI_NATS_URL": nats_server.url,
        "SENTINAI_COLLECTOR_CHAINS_FILE": str(twin.chains_file),
        "SENTINAI_COLLECTOR_POLL_INTERVAL_S": "1",
        "SENTINAI_COLLECTOR_HTTP_PORT": str(free_port()),
    }
    with open(tmp_path / "collector.log", "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "sentinai.collector"], env=env, stderr=log)
    try:
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@dataclass
class Bus:
    """A test client: publishes approvals, records every executed event and audit record."""

    nc: NatsClient
    executed: list[ActionExecuted] = field(default_factory=list)
    audits: list[AuditRecorded] = field(default_factory=list)

    async def approve(self, approved: ActionApproved) -> None:
        js = self.nc.jetstream()
        await js.publish(
            subjects.action_approved(approved.chain_id),
            approved.to_json(),
            headers={"Nats-Msg-Id": approved.event_id},
        )

    async def outcome(self, action_id: str, *, timeout_s: float = 60.0) -> ActionExecuted:
        await eventually(
            lambda: any(e.action_id == action_id for e in self.executed),
            timeout_s=timeout_s,
            what=f"action.executed for {action_id}",
        )
        return next(e for e in self.executed if e.action_id == action_id)

    def story(self, action_id: str) -> list[str]:
        return [a.kind for a in self.audits if a.action_id == action_id]

    async def stored_executed(self) -> int:
        """``action.executed`` messages kept by the ACTIONS stream (duplicates dropped by JetStream)."""
        info = await self.nc.jetstream().stream_info(
            ACTIONS.name, subjects_filter=subjects.ACTION_EXECUTED_ALL
        )
        return sum((info.state.subjects or {}).values())


@pytest.fixture
async def bus(nats_server: EmbeddedNats) -> AsyncIterator[Bus]:
    nc = await nats.connect(nats_server.url)
    await ensure_streams(nc.jetstream())
    recorder = Bus(nc)

    async def on_executed(msg: Msg) -> None:
        recorder.executed.append(ActionExecuted.model_validate_json(msg.data))

    async def on_audit(msg: Msg) -> None:
        recorder.audits.append(AuditRecorded.model_validate_json(msg.data))

    await nc.subscribe(subjects.ACTION_EXECUTED_ALL, cb=on_executed)
    await nc.subscribe(subjects.AUDIT_ALL, cb=on_audit)
    try:
        yield recorder
    finally:
        await nc.close()


def settings(nats_server: EmbeddedNats, twin: TwinProcess, **overrides: Any) -> ExecutorSettings:
    values: dict[str, Any] = {
        "nats_url": nats_server.url,
        "chains_file": twin.chains_file,
        "simulation_mode": False,
        "verify_window_s": 20.0,
        "k8s_timeout_s": 5.0,
        "http_port": free_port(),
    }
    return ExecutorSettings(**(values | overrides))


@contextlib.asynccontextmanager
async def executor(config: ExecutorSettings) -> AsyncIterator[None]:
    """An executor running in this process until the block ends (then stopped as by SIGTERM)."""
    stop = asyncio.Event()
    task = asyncio.create_task(serve(config, stop=stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


def approval(
    action: Action,
    *,
    action_id: str,
    tier: Tier = "low",
    approvers: tuple[str, ...] = (),
    verify: VerifySpec | None = None,
) -> ActionApproved:
    return ActionApproved(
        chain_id=CHAIN,
        action_id=action_id,
        action=action,
        tier=tier,
        approvers=approvers,
        cooldown_s=300,
        incident="op_geth_cpu_saturation",
        reason="op-geth CPU saturated",
        verify=verify,
    )


def geth_statefulset(twin: TwinProcess) -> dict[str, Any]:
    """op-geth's StatefulSet read through the official client, as any operator tool would."""
    api = k8s_config.new_client_from_config(config_file=str(twin.kubeconfig))  # type: ignore[no-untyped-call]
    try:
        # Raw JSON (the client's type says model, but _preload_content=False gives the response).
        response: Any = k8s.AppsV1Api(api).read_namespaced_stateful_set(
            "op-geth", CHAIN, _preload_content=False, _request_timeout=5
        )
        data: dict[str, Any] = json.loads(response.data)
        return data
    finally:
        api.close()


def cpu_request(twin: TwinProcess) -> str:
    (container,) = geth_statefulset(twin)["spec"]["template"]["spec"]["containers"]
    value: str = container["resources"]["requests"]["cpu"]
    return value


def generation(twin: TwinProcess) -> int:
    value: int = geth_statefulset(twin)["metadata"]["generation"]
    return value


def twin_cpu(twin: TwinProcess) -> dict[str, Any]:
    with TwinControl(twin.base_url) as control:
        cpu: dict[str, Any] = control.state(CHAIN)["cpu"]
    return cpu


async def saturate(twin: TwinProcess, factor: float) -> None:
    with TwinControl(twin.base_url) as control:
        control.inject(CHAIN, "cpu_spike", {"factor": factor})
    await eventually(
        lambda: twin_cpu(twin)["opGethUsagePct"] > 100, timeout_s=15, what="op-geth saturated", every_s=0.2
    )


CPU_BELOW_90 = VerifySpec(component="op-geth", metric="cpuUsage", below=90)


async def test_scale_up_during_cpu_spike_is_applied_and_verified(
    twin: TwinProcess, collector: None, bus: Bus, nats_server: EmbeddedNats
) -> None:
    # The twin's default spike: about 1.3 cores of demand on 1 vCPU, well inside 2 vCPU's 90 %.
    await saturate(twin, 3.5)
    async with executor(settings(nats_server, twin)):
        await bus.approve(
            approval(ScaleCpu(component="op-geth", vcpu=2), action_id="scale-a", verify=CPU_BELOW_90)
        )
        executed = await bus.outcome("scale-a")
    assert executed.outcome == "succeeded", executed.detail
    assert "cpuUsage < 90 in the last 3 samples" in executed.detail
    assert cpu_request(twin) == "2"
    assert twin_cpu(twin)["opGethRequestCores"] == 2.0
    assert executed.previous is not None and executed.previous["resources"]["requests"]["cpu"] == "1"
    assert {"patch", "rollout", "verify", "total"} <= set(executed.timings_ms)
    assert bus.story("scale-a") == ["executing", "verified", "succeeded"]


async def test_second_change_within_the_cooldown_is_refused(
    twin: TwinProcess, collector: None, bus: Bus, nats_server: EmbeddedNats
) -> None:
    async with executor(settings(nats_server, twin)):
        await bus.approve(approval(ScaleCpu(component="op-geth", vcpu=2), action_id="first"))
        assert (await bus.outcome("first")).outcome == "succeeded"
        await bus.approve(approval(ScaleCpu(component="op-geth", vcpu=4), action_id="second"))
        second = await bus.outcome("second")
    assert second.outcome == "refused"
    assert re.fullmatch(r"cooldown: op-geth was changed \d+s ago \(cooldown 300s\)", second.detail)
    assert cpu_request(twin) == "2"


async def test_stopping_mid_verification_rolls_back_and_redelivery_never_reapplies(
    twin: TwinProcess, collector: None, bus: Bus, nats_server: EmbeddedNats
) -> None:
    never = VerifySpec(component="op-geth", metric="cpuUsage", below=0.001)
    config = settings(nats_server, twin, verify_window_s=120.0)
    cut = approval(ScaleCpu(component="op-geth", vcpu=2), action_id="cut", verify=never)
    async with executor(config):
        await bus.approve(cut)
        await eventually(
            lambda: generation(twin) == 2, timeout_s=30, what="the scale patched in", every_s=0.2
        )
    # Stopped as by SIGTERM while verifying: the change is taken back, never left half-verified.
    executed = await bus.outcome("cut")
    assert executed.outcome == "rolled_back", executed.detail
    assert "verification abandoned: the executor is stopping" in executed.detail
    assert (cpu_request(twin), generation(twin)) == ("1", 3)
    async with executor(config):
        await bus.approve(cut.model_copy(update={"event_id": "redelivered"}))
        js = bus.nc.jetstream()

        async def handled() -> bool:
            info = await js.consumer_info(ACTIONS.name, "executor")
            return bool(
                info.num_pending == 0 and info.num_ack_pending == 0 and info.delivered.stream_seq >= 2
            )

        await eventually(handled, timeout_s=30, what="the redelivery acked", every_s=0.2)
    assert await bus.stored_executed() == 1
    assert generation(twin) == 3


async def test_scale_that_cannot_fix_the_spike_is_rolled_back(
    twin: TwinProcess, collector: None, bus: Bus, nats_server: EmbeddedNats
) -> None:
    # Ten times the traffic needs well over 2 vCPU: op-geth stays pinned at its new request.
    await saturate(twin, 10.0)
    async with executor(settings(nats_server, twin, verify_window_s=10.0)):
        await bus.approve(
            approval(ScaleCpu(component="op-geth", vcpu=2), action_id="scale-b", verify=CPU_BELOW_90)
        )
        executed = await bus.outcome("scale-b")
    assert executed.outcome == "rolled_back", executed.detail
    assert "cpuUsage not back in range (< 90)" in executed.detail
    assert cpu_request(twin) == "1"
    (container,) = geth_statefulset(twin)["spec"]["template"]["spec"]["containers"]
    assert "cpu" not in container["resources"].get("limits", {})  # the limit the scale added is gone too
    assert generation(twin) == 3  # the scale, then the rollback
    assert bus.story("scale-b") == ["executing", "verification_failed", "rolled_back"]


async def test_forbidden_action_forged_onto_approved_is_refused(
    twin: TwinProcess, bus: Bus, nats_server: EmbeddedNats
) -> None:
    forged = approval(
        DeleteNamespace(namespace=CHAIN), action_id="forged", tier="critical", approvers=("mallory", "eve")
    )
    async with executor(settings(nats_server, twin)):
        await bus.approve(forged)
        executed = await bus.outcome("forged")
    assert executed.outcome == "refused"
    assert executed.detail.startswith("forbidden: namespace-wide deletion")
    assert bus.story("forged") == ["refused"]
    assert generation(twin) == 1


async def test_two_executors_one_effect(
    twin: TwinProcess, collector: None, bus: Bus, nats_server: EmbeddedNats
) -> None:
    # Separate durables: both replicas really receive the approval and race for the effect record.
    first = settings(nats_server, twin, durable="executor-a")
    second = settings(nats_server, twin, durable="executor-b")
    async with executor(first), executor(second):
        await bus.approve(approval(ScaleCpu(component="op-geth", vcpu=2), action_id="raced"))
        executed = await bus.outcome("raced")
        js = bus.nc.jetstream()

        async def both_acked() -> bool:
            infos = [await js.consumer_info(ACTIONS.name, name) for name in ("executor-a", "executor-b")]
            return all(
                i.num_pending == 0 and i.num_ack_pending == 0 and i.delivered.stream_seq > 0 for i in infos
            )

        await eventually(both_acked, timeout_s=30, what="both executors acked", every_s=0.2)
    assert executed.outcome == "succeeded", executed.detail
    assert [e.outcome for e in bus.executed] == ["succeeded"]
    assert await bus.stored_executed() == 1
    assert generation(twin) == 2


async def test_duplicate_approval_has_one_effect(
    twin: TwinProcess, collector: None, bus: Bus, nats_server: EmbeddedNats
) -> None:
    once = approval(ScaleCpu(component="op-geth", vcpu=4), action_id="twice")
    again = once.model_copy(update={"event_id": "another-event-id"})
    async with executor(settings(nats_server, twin)):
        await bus.approve(once)
        await bus.approve(again)
        executed = await bus.outcome("twice")
        js = bus.nc.jetstream()

        async def all_acked() -> bool:
            info = await js.consumer_info(ACTIONS.name, "executor")
            return bool(
                info.num_pending == 0 and info.num_ack_pending == 0 and info.delivered.stream_seq >= 2
            )

        await eventually(all_acked, timeout_s=30, what="both approvals acked", every_s=0.2)
    assert executed.outcome == "succeeded", executed.detail
    assert await bus.stored_executed() == 1
    assert cpu_request(twin) == "4"
    assert generation(twin) == 2


async def test_missing_workload_fails_with_nothing_applied(
    twin: TwinProcess, bus: Bus, nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    chains = tmp_path / "chains.yaml"
    chains.write_text(twin.chains_file.read_text().replace("namespace: twin", "namespace: elsewhere"))
    async with executor(settings(nats_server, twin, chains_file=chains)):
        await bus.approve(approval(ScaleCpu(component="op-geth", vcpu=2), action_id="lost"))
        executed = await bus.outcome("lost")
    assert executed.outcome == "failed"
    assert executed.detail.startswith("nothing applied: cannot read the op-geth workload")
    assert "HTTP 404" in executed.detail
    assert bus.story("lost") == ["executing", "failed"]
    assert generation(twin) == 1


async def test_read_only_mode_refuses_every_write(
    twin: TwinProcess, bus: Bus, nats_server: EmbeddedNats
) -> None:
    async with executor(settings(nats_server, twin, read_only_mode=True)):
        await bus.approve(approval(ScaleCpu(component="op-geth", vcpu=2), action_id="ro"))
        executed = await bus.outcome("ro")
    assert executed.outcome == "refused"
    assert "read-only mode" in executed.detail
    assert generation(twin) == 1


@pytest.fixture
def http_port() -> int:
    return free_port()


@pytest.fixture
def executor_process(
    twin: TwinProcess, nats_server: EmbeddedNats, tmp_path: Path, http_port: int
) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m sentinai.executor`` with nothing but the chains file, NATS and a free HTTP port."""
    env = {k: v for k, v in os.environ.items() if "SIMULATION_MODE" not in k} | {
        "SENTINAI_NATS_URL": nats_server.url,
        "SENTINAI_EXECUTOR_CHAINS_FILE": str(twin.chains_file),
        "SENTINAI_EXECUTOR_HTTP_PORT": str(http_port),
    }
    with open(tmp_path / "executor.log", "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "sentinai.executor"], env=env, stderr=log)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


async def _metrics_showing(url: str, needle: str, *, timeout_s: float = 15.0) -> str:
    """The metrics page once it contains ``needle`` (the lag gauges refresh every 5 s)."""
    async with httpx.AsyncClient(timeout=2.0) as client:

        async def page() -> str | None:
            text = (await client.get(url)).text
            return text if needle in text else None

        return await eventually(page, timeout_s=timeout_s, what=f"{needle} at {url}", every_s=0.2)


async def test_process_dry_runs_by_default_and_stops_cleanly(
    executor_process: subprocess.Popen[bytes], twin: TwinProcess, bus: Bus, tmp_path: Path, http_port: int
) -> None:
    await bus.approve(approval(ScaleCpu(component="op-geth", vcpu=2), action_id="dry"))
    executed = await bus.outcome("dry")
    base = f"http://127.0.0.1:{http_port}"
    async with httpx.AsyncClient(timeout=2.0) as client:
        assert (await client.get(f"{base}/healthz")).status_code == 200
    page = await _metrics_showing(
        f"{base}/metrics",
        'sentinai_consumer_pending{consumer="executor",service="executor",stream="ACTIONS"} 0.0',
    )
    assert 'sentinai_handler_seconds_count{kind="action_approved",service="executor"} 1.0' in page
    assert 'sentinai_messages_published_total{kind="action_executed",service="executor"} 1.0' in page
    executor_process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(executor_process.wait, 15) == 0
    assert executed.outcome == "dry_run" and executed.dry_run
    patch = '{"spec": {"template": {"spec": {"containers": [{"name": "op-geth", "resources": '
    assert f"PATCH StatefulSet twin/op-geth {patch}" in executed.detail
    assert bus.story("dry") == ["dry_run"]
    assert generation(twin) == 1 and cpu_request(twin) == "1"
    lines = [json.loads(line) for line in (tmp_path / "executor.log").read_text().splitlines()]
    assert {line["service"] for line in lines} == {"executor"}
    assert lines[-1]["msg"] == "executor stopped"

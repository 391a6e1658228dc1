"""Replicas that share the bus: executors split approvals exactly once, api replicas agree on state."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from nats.aio.msg import Msg
from serviceproc import Service

from sentinai.common import subjects
from sentinai.common.actions import ScaleCpu
from sentinai.common.decisions import ActionApproved, ActionExecuted, ActionProposed
from sentinai.common.events import AnomalyDetected, utcnow
from sentinai.common.streams import ACTIONS, EVENTS, ensure_streams
from sentinai.devkit.natsserver import EmbeddedNats
from sentinai.devkit.twinproc import TwinProcess
from sentinai.devkit.waits import eventually
from tests.scaleout.conftest import healthy

pytestmark = pytest.mark.integration
CHAIN = "twin"
APPROVALS = 24


@pytest.fixture
def twin(tmp_path: Path) -> Iterator[TwinProcess]:
    process = TwinProcess(tmp_path / "twin", chains=(CHAIN,), seed=7, block_time_s=1).start()
    try:
        yield process
    finally:
        process.stop()


def approved(i: int) -> ActionApproved:
    return ActionApproved(
        chain_id=CHAIN,
        action_id=f"act-{i:03d}",
        action=ScaleCpu(component="op-geth", vcpu=(1, 2, 4, 8)[i % 4]),
        tier="low",
        cooldown_s=0,
        reason="load test",
    )


async def test_two_executors_execute_each_approval_once(
    nats_server: EmbeddedNats, twin: TwinProcess, services: Callable[..., Service]
) -> None:
    env = {"SENTINAI_NATS_URL": nats_server.url, "SENTINAI_EXECUTOR_CHAINS_FILE": str(twin.chains_file)}
    executors = [services("executor", tag=f"-{i}", **env) for i in range(2)]
    await healthy(*executors)
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        executed: list[ActionExecuted] = []

        async def on_executed(msg: Msg) -> None:
            executed.append(ActionExecuted.model_validate_json(msg.data))

        await nc.subscribe(subjects.ACTION_EXECUTED_ALL, cb=on_executed)
        for i in range(APPROVALS):
            event = approved(i)
            await js.publish(
                subjects.action_approved(CHAIN), event.to_json(), headers={"Nats-Msg-Id": event.event_id}
            )
        await eventually(
            lambda: len({e.action_id for e in executed}) == APPROVALS, timeout_s=40, what="outcomes"
        )
        stored = await js.stream_info(ACTIONS.name, subjects_filter=subjects.ACTION_EXECUTED_ALL)

        assert Counter(e.action_id for e in executed) == Counter(
            approved(i).action_id for i in range(APPROVALS)
        )
        assert {e.outcome for e in executed} == {"dry_run"}, [
            e.detail for e in executed if e.outcome != "dry_run"
        ][:3]
        assert sum((stored.state.subjects or {}).values()) == APPROVALS
        assert all(e.proc.poll() is None for e in executors)
    finally:
        await nc.close()


def proposal(i: int) -> ActionProposed:
    return ActionProposed(
        chain_id=CHAIN,
        action_id=f"prop-{i}",
        action=ScaleCpu(component="op-geth", vcpu=4),
        tier="medium",
        approvals_required=1,
        cooldown_s=300,
        status="pending_approval",
        reason="cpu saturated",
        proposed_by="planner",
        expires_at=utcnow() + timedelta(hours=1),
    )


def anomaly(i: int) -> AnomalyDetected:
    return AnomalyDetected(
        chain_id=CHAIN,
        component="op-geth",
        metric="cpuUsage",
        value=90.0 + i,
        z_score=4.0,
        direction="up",
        severity="high",
        description="cpu spike",
        rule="zscore",
    )


def state(api: Service) -> tuple[Any, Any]:
    actions = api.get("/api/actions").json()
    anomalies = api.get("/api/anomalies").json()
    return (
        sorted((a["actionId"], a["status"]) for a in actions["actions"]),
        sorted((a["episodeId"], a["value"]) for a in anomalies["anomalies"]),
    )


async def test_two_api_replicas_serve_the_same_state(
    nats_server: EmbeddedNats, services: Callable[..., Service]
) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        await ensure_streams(js)
        env = {"SENTINAI_NATS_URL": nats_server.url, "SENTINAI_API_KEY": "k" * 32}
        apis = [services("api", tag=f"-{i}", **env) for i in range(2)]
        await healthy(*apis)
        for i in range(5):
            await js.publish(subjects.anomaly_detected(CHAIN), anomaly(i).to_json(), stream=EVENTS.name)
            await js.publish(subjects.action_proposed(CHAIN), proposal(i).to_json(), stream=ACTIONS.name)

        def agree() -> bool:
            first, second = state(apis[0]), state(apis[1])
            return first == second and len(first[0]) == 5 and len(first[1]) == 5

        await eventually(
            agree,
            timeout_s=20,
            what=f"both replicas show 5 actions and 5 anomalies {state(apis[0])}",
            every_s=0.2,
            tolerate=(httpx.HTTPError,),
        )
        assert {status for _, status in state(apis[0])[0]} == {"pending_approval"}
    finally:
        await nc.close()

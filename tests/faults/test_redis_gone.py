"""Redis (``SENTINAI_REDIS_URL``) gone while approvals arrive: clear errors, nothing lost, recovery.

Real processes: nats-server, redis-server with persistence, the planner and the executor keeping
their state in Redis. A request that needs approval is proposed; Redis is stopped; the approval and
a second request arrive while it is gone; Redis comes back on the same port with its data.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import pytest
import redis
from faults_support import RedisServer, ensure_streams_at, stream_messages
from serviceproc import Service
from upstack import eventually

from sentinai.common import subjects
from sentinai.common.actions import Action, Notify, RestartComponent
from sentinai.common.decisions import ActionCommand, ActionRequested, requested_action_id
from sentinai.common.events import Event
from sentinai.common.net import free_port
from sentinai.devkit.natsserver import EmbeddedNats

pytestmark = pytest.mark.integration
CHAIN = "red"
OUTAGE_S = 6.0


@dataclass
class Rig:
    nats: EmbeddedNats
    redis: RedisServer
    planner: Service
    executor: Service

    def publish(self, subject: str, event: Event) -> None:
        async def send() -> None:
            nc = await nats.connect(self.nats.url)
            try:
                await nc.jetstream().publish(
                    subject, event.to_json(), headers={"Nats-Msg-Id": event.event_id}
                )
            finally:
                await nc.close()

        asyncio.run(send())

    def request(self, action: Action) -> str:
        req = ActionRequested(
            chain_id=CHAIN, action=action, requested_by="faults-test", reason="fault test", via="rest"
        )
        self.publish(subjects.action_requested(CHAIN), req)
        return requested_action_id(req)

    def events(self, kind: str, action_id: str) -> list[dict[str, Any]]:
        found = [
            json.loads(b) for _, b in stream_messages(self.nats.url, "ACTIONS", f"action.{kind}.{CHAIN}")
        ]
        return [e for e in found if e["actionId"] == action_id]


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    server = EmbeddedNats(data_dir=tmp_path / "nats", log_file=tmp_path / "nats.log").start()
    redis = RedisServer(tmp_path / "redis", free_port()).start()
    chains = tmp_path / "chains.yaml"
    chains.write_text(f"chains:\n  - id: {CHAIN}\n    namespace: {CHAIN}\n")
    common = {"SENTINAI_REDIS_URL": redis.url}
    planner = Service.start(
        "planner",
        nats_url=server.url,
        workdir=tmp_path,
        env=common | {"SENTINAI_PLANNER_EXPIRY_CHECK_S": "1"},
    )
    executor = Service.start(
        "executor",
        nats_url=server.url,
        workdir=tmp_path,
        env=common | {"SENTINAI_EXECUTOR_CHAINS_FILE": str(chains)},
    )
    try:
        ensure_streams_at(server.url)
        for service in (planner, executor):
            eventually(service.healthy, timeout_s=60, what=f"{service.name} healthy")
        yield Rig(server, redis, planner, executor)
    finally:
        planner.stop()
        executor.stop()
        redis.stop()
        server.stop()


def test_redis_gone_then_back_loses_no_approval(rig: Rig) -> None:
    restart = rig.request(RestartComponent(component="op-node"))
    (proposed,) = eventually(lambda: rig.events("proposed", restart), timeout_s=30, what="the proposal")
    assert proposed["status"] == "pending_approval"
    client = redis.Redis.from_url(rig.redis.url)
    eventually(
        lambda: client.exists(f"sentinai:pending.{restart}"),
        timeout_s=10,
        what="the proposal recorded in Redis",
    )
    client.close()

    rig.redis.stop()
    gone = time.monotonic()
    approval = ActionCommand(
        chain_id=CHAIN, action_id=restart, command="approve", by="alice", reason="wedged"
    )
    rig.publish(subjects.action_command(CHAIN), approval)
    notify = rig.request(Notify(severity="low", text="while redis is gone"))
    # Clear errors, no crash: both keep running and say what failed and where.
    eventually(
        lambda: "redis" in rig.planner.output().split("wedged")[-1], timeout_s=OUTAGE_S, what="an error"
    )
    time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - gone)))  # the rest of the outage itself
    assert rig.planner.proc.poll() is None and rig.executor.proc.poll() is None
    assert rig.events("approved", restart) == []
    errors = [
        line for line in rig.planner.output().splitlines() if "Error 111" in line or "redis" in line.lower()
    ]
    assert errors, rig.planner.output()[-3000:]

    rig.redis.start()
    (approved,) = eventually(lambda: rig.events("approved", restart), timeout_s=30, what="the approval")
    assert approved["approvers"] == ["alice"]
    (done,) = eventually(lambda: rig.events("executed", restart), timeout_s=30, what="the restart executed")
    assert done["outcome"] == "dry_run"
    (noted,) = eventually(lambda: rig.events("executed", notify), timeout_s=30, what="the notification")
    assert noted["outcome"] == "succeeded"
    assert rig.planner.proc.poll() is None and rig.executor.proc.poll() is None
    print(f"planner error lines while redis was gone: {len(errors)}")

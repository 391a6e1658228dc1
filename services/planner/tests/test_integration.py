"""The planner app on a real nats-server with NATS KV state, approved through the `sentinai` CLI."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import nats
import pytest
from nats.aio.msg import Msg

from sentinai.cli import actions as cli_actions
from sentinai.cli.main import parser
from sentinai.common import streams, subjects
from sentinai.common.decisions import (
    ActionApproved,
    ActionProposed,
    Corroboration,
    IncidentResolved,
    RcaCompleted,
)
from sentinai.common.incidents import RootCauseClass
from sentinai.common.natsserver import EmbeddedNats
from sentinai.common.net import free_port
from sentinai.planner.main import build_app
from sentinai.planner.settings import PlannerSettings

CHAIN = "itest"
pytestmark = pytest.mark.integration


@asynccontextmanager
async def running_planner(url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    monkeypatch.setenv("SENTINAI_NATS_URL", url)
    monkeypatch.delenv("SENTINAI_REDIS_URL", raising=False)
    app = build_app(PlannerSettings(http_port=free_port(), expiry_check_s=0.5))
    async with app.start_lifespan_context():
        yield


def rca(cause: RootCauseClass, episode: str) -> RcaCompleted:
    return RcaCompleted(
        chain_id=CHAIN,
        episode_id=episode,
        anomaly_event_id=f"an-{episode}",
        root_cause=f"diagnosed {cause}",
        root_cause_class=cause,
        affected_components=("op-node",),
        risk_level="high",
        action_plan="act",
        confidence=0.9,
        engine="rules",
        latency_ms=3.0,
        corroboration=Corroboration(
            polls=3, required_polls=3, proposal_met=True, auto_met=True, status="corroborated: 3 of 3 polls"
        ),
    )


async def until(check: Callable[[], Awaitable[bool]], *, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(0.05)


async def cli(*argv: str, state_dir: Path) -> str:
    out = io.StringIO()
    code = await cli_actions.main(parser().parse_args(["--state-dir", str(state_dir), *argv]), out=out)
    assert code == 0
    return out.getvalue()


async def test_rca_to_approval_through_the_cli(
    nats_server: EmbeddedNats, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    nc = await nats.connect(nats_server.url)
    proposed: list[ActionProposed] = []
    approved: list[ActionApproved] = []
    try:
        async with running_planner(nats_server.url, monkeypatch):
            js = nc.jetstream()

            async def on_proposed(msg: Msg) -> None:
                proposed.append(ActionProposed.model_validate_json(msg.data))

            async def on_approved(msg: Msg) -> None:
                approved.append(ActionApproved.model_validate_json(msg.data))

            await js.subscribe(subjects.ACTION_PROPOSED_ALL, stream=streams.ACTIONS.name, cb=on_proposed)
            await js.subscribe(subjects.ACTION_APPROVED_ALL, stream=streams.ACTIONS.name, cb=on_approved)

            stall = rca("sequencer_stall", "ep-stall")
            for event in (stall, stall, rca("op_geth_cpu_saturation", "ep-cpu")):  # the stall twice
                await js.publish(subjects.rca_completed(CHAIN), event.to_json(), stream=streams.EVENTS.name)

            async def both_proposed() -> bool:
                return len(proposed) >= 2 and len(approved) >= 1

            await until(both_proposed)
            by_kind = {p.action.kind: p for p in proposed}
            restart = by_kind["restart_component"]
            assert (restart.status, by_kind["scale_cpu"].status) == ("pending_approval", "auto_approved")
            assert [a.action_id for a in approved] == [by_kind["scale_cpu"].action_id]

            # The planner records a proposal right after publishing it.
            async def listed() -> bool:
                return restart.action_id in await cli("actions", "list", state_dir=tmp_path)

            await until(listed)
            listing = await cli("actions", "list", state_dir=tmp_path)
            assert "restart op-node" in listing and "0/1" in listing and "pending_approval" in listing
            assert by_kind["scale_cpu"].action_id not in listing  # automatic: nothing to approve

            # The CLI as an operator runs it: its own process, the URL from SENTINAI_NATS_URL.
            done = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "sentinai.cli.main", "--state-dir", str(tmp_path),
                 "actions", "approve", restart.action_id, "--by", "alice", "--reason", "stalled 2 min"],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            assert "approval of" in done.stdout

            async def restart_approved() -> bool:
                return any(a.action_id == restart.action_id for a in approved)

            await until(restart_approved)
            [final] = [a for a in approved if a.action_id == restart.action_id]
            assert final.approvers == ("alice",) and final.verify == restart.verify

            unknown = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "sentinai.cli.main", "--state-dir", str(tmp_path),
                 "actions", "approve", "act-0000000000000000", "--by", "alice"],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert unknown.returncode == 2 and "no proposal with id" in unknown.stderr

            async def audit_complete() -> bool:
                text = await cli("audit", "--chain", CHAIN, state_dir=tmp_path)
                return "alice" in text

            await until(audit_complete)
            trail = await cli("audit", "--chain", CHAIN, state_dir=tmp_path)
            lines = trail.splitlines()
            assert len(lines) == 4  # stall proposed, cpu proposed + auto approved, stall approved by alice
            assert "alice" in lines[0] and "approved" in lines[0]
            assert len(proposed) == 2  # the redelivered stall RCA proposed nothing new
    finally:
        await nc.close()


async def test_a_resolved_incident_withdraws_its_waiting_remedy_on_a_real_server(
    nats_server: EmbeddedNats, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        async with running_planner(nats_server.url, monkeypatch):
            js = nc.jetstream()
            stall = rca("sequencer_stall", "inc-over")
            await js.publish(subjects.rca_completed(CHAIN), stall.to_json(), stream=streams.EVENTS.name)

            async def waiting() -> bool:
                return "pending_approval" in await cli("actions", "list", state_dir=tmp_path)

            await until(waiting)
            over = IncidentResolved(
                chain_id=CHAIN,
                incident_id="inc-over",
                resolved_at=stall.occurred_at,
                reason="blocks flow again",
            )
            ack = await js.publish(
                subjects.incident_resolved(CHAIN), over.to_json(), stream=streams.EVENTS.name
            )
            assert ack.stream == streams.EVENTS.name

            async def withdrawn() -> bool:
                return "withdrawn" in await cli("actions", "list", "--all", state_dir=tmp_path)

            await until(withdrawn)
            assert "no pending proposals" in await cli("actions", "list", state_dir=tmp_path)
            [line] = [
                x
                for x in (await cli("actions", "list", "--all", state_dir=tmp_path)).splitlines()
                if "withdrawn" in x
            ]
            late = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "sentinai.cli.main", "--state-dir", str(tmp_path),
                 "actions", "approve", line.split()[0], "--by", "alice"],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert late.returncode == 2 and "withdrawn: incident resolved: blocks flow again" in late.stderr

            async def audited() -> bool:
                return "incident resolved: blocks flow again" in await cli(
                    "audit", "--chain", CHAIN, state_dir=tmp_path
                )

            await until(audited)
    finally:
        await nc.close()

"""`sentinai actions` and `sentinai audit` as an operator runs them: their own processes, talking to
the real api (its own process) over REST, with the real planner and a real nats-server behind it.

Keys come from `sentinai keys add`; every decision is made as the key's owner and ends with the
planner's verdict, which sets the exit code (0 done, 2 refused, 3 api down, 4 no key, 5 undecided).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import nats
import pytest
from busready import running_planner
from nats.aio.msg import Msg
from upstack import clean_env

from sentinai.common import streams, subjects
from sentinai.common.actions import ExecDebug, RestartComponent
from sentinai.common.decisions import (
    ActionApproved,
    ActionProposed,
    ActionRequested,
    Corroboration,
    RcaCompleted,
    requested_action_id,
)
from sentinai.common.events import utcnow
from sentinai.common.net import free_port
from sentinai.devkit.natsserver import EmbeddedNats
from sentinai.devkit.waits import eventually

CHAIN = "clitest"
START_TIMEOUT_S = 60.0
pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Done:
    code: int
    stdout: str
    stderr: str


async def sentinai(*argv: str, state_dir: Path, **env: str) -> Done:
    """One `sentinai` command in its own process; the event loop (and the planner in it) keeps running."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sentinai.cli.main",
        "--state-dir",
        str(state_dir),
        *argv,
        env=clean_env(**env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=90)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return Done(proc.returncode, out.decode(), err.decode())


async def add_key(name: str, role: str, *, keys: Path, state_dir: Path) -> str:
    done = await sentinai("keys", "add", name, "--role", role, "--file", str(keys), state_dir=state_dir)
    assert done.code == 0, done.stderr
    [line] = [x for x in done.stdout.splitlines() if x.startswith("token: ")]
    return line.removeprefix("token: ")


@asynccontextmanager
async def running_api(nats_url: str, *, keys: Path, log: Path, **env: str) -> AsyncIterator[str]:
    """``python -m sentinai.api`` on a free loopback port; its URL once it serves and reaches NATS."""
    port = free_port()
    settings = {
        "SENTINAI_NATS_URL": nats_url,
        "SENTINAI_API_HOST": "127.0.0.1",
        "SENTINAI_API_PORT": str(port),
        "SENTINAI_API_KEYS_FILE": str(keys),
        "SENTINAI_LOG_LEVEL": "warn",
    }
    with log.open("w") as sink:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "sentinai.api",
            env=clean_env(**settings, **env),
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(timeout=2.0) as client:

            async def serving() -> bool:
                assert proc.returncode is None, f"the api exited with {proc.returncode}; see {log}"
                try:
                    health = (await client.get(f"{url}/api/health")).json()
                except httpx.HTTPError:
                    return False
                return bool(health["nats"]["connected"])

            await eventually(serving, timeout_s=START_TIMEOUT_S, what="the api serving", every_s=0.1)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout=15)
        except TimeoutError:
            os.killpg(proc.pid, signal.SIGKILL)
            await asyncio.wait_for(proc.wait(), timeout=10)


async def pending_ids(api: str) -> dict[str, str]:
    """Pending proposals the api shows: id -> summary."""
    async with httpx.AsyncClient(timeout=5.0) as client:
        body = (await client.get(f"{api}/api/actions", params={"status": "pending"})).json()
    return {a["actionId"]: a["summary"] for a in body["actions"]}


def stall_diagnosis() -> RcaCompleted:
    return RcaCompleted(
        chain_id=CHAIN,
        episode_id="ep-stall",
        anomaly_event_id="an-stall",
        root_cause="unsafe head flat for 3 block times",
        root_cause_class="sequencer_stall",
        affected_components=("op-node",),
        risk_level="high",
        action_plan="restart op-node",
        confidence=0.9,
        engine="rules",
        latency_ms=3.0,
        corroboration=Corroboration(
            polls=3, required_polls=3, proposal_met=True, auto_met=True, status="corroborated: 3 of 3 polls"
        ),
    )


@dataclass(frozen=True)
class Loop:
    """The planner and the api running, with two proposals waiting and people holding keys."""

    api: str
    state: Path
    keys: Path
    tokens: dict[str, str]
    restart: str  # restart op-node: high tier, one approval, proposed by "planner"
    critical: str  # exec into op-geth: critical tier, two distinct approvers, requested by carol
    approved: list[ActionApproved]  # what the planner published on action.approved, in order

    async def seen(self, action_id: str) -> bool:
        return any(a.action_id == action_id for a in self.approved)

    async def cli(self, *argv: str, key: str | None = None) -> Done:
        env = {"SENTINAI_API_URL": self.api} | ({"SENTINAI_API_KEY": self.tokens[key]} if key else {})
        return await sentinai(*argv, state_dir=self.state, **env)


@asynccontextmanager
async def decision_loop(
    nats_server: EmbeddedNats, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[Loop]:
    # A context manager, not a fixture: the planner's lifespan must end in the task it began in.
    state = tmp_path / "state"  # no stack runs here: no up.json, no api-key
    keys = tmp_path / "api-keys.json"
    # "planner": someone holding a key in the proposer's name (the planner proposes as "planner").
    tokens = {
        name: await add_key(name, "approver", keys=keys, state_dir=state)
        for name in ("alice", "bob", "planner", "dave")
    }
    nc = await nats.connect(nats_server.url)
    try:
        async with (
            running_planner(nats_server.url, monkeypatch),
            running_api(nats_server.url, keys=keys, log=tmp_path / "api.log") as api,
        ):
            js = nc.jetstream()
            approved: list[ActionApproved] = []

            async def on_approved(msg: Msg) -> None:
                approved.append(ActionApproved.model_validate_json(msg.data))

            await js.subscribe(subjects.ACTION_APPROVED_ALL, stream=streams.ACTIONS.name, cb=on_approved)
            rca = stall_diagnosis().to_json()
            for _ in range(2):  # redelivered: still one proposal
                await js.publish(subjects.rca_completed(CHAIN), rca, stream=streams.EVENTS.name)
            request = ActionRequested(
                chain_id=CHAIN,
                action=ExecDebug(component="op-geth", command="geth attach"),
                requested_by="carol",
                reason="look at the txpool",
                via="rest",
            )
            await js.publish(subjects.action_requested(CHAIN), request.to_json(), stream=streams.ACTIONS.name)
            critical = requested_action_id(request)

            async def both_pending() -> bool:
                shown = await pending_ids(api)
                return critical in shown and "restart op-node" in shown.values()

            await eventually(
                both_pending, timeout_s=30, what="both proposals pending in the api", every_s=0.1
            )
            [restart] = [i for i, s in (await pending_ids(api)).items() if s == "restart op-node"]
            yield Loop(api, state, keys, tokens, restart=restart, critical=critical, approved=approved)
    finally:
        await nc.close()


async def test_decisions_through_the_api_are_made_as_the_keys_owner_and_exit_with_the_verdict(
    nats_server: EmbeddedNats, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    async with decision_loop(nats_server, monkeypatch, tmp_path) as loop:
        # One loop for both (each costs the planner, the api and three keys to start).
        await unauthenticated(loop)
        await decisions(loop)


async def decisions(loop: Loop) -> None:
    restart, critical = loop.restart, loop.critical
    listing = await loop.cli("actions", "list")
    assert listing.code == 0, listing.stderr
    rows = {line.split()[0]: line for line in listing.stdout.splitlines()[1:]}
    assert "0/1" in rows[restart] and "pending_approval" in rows[restart]
    assert "restart op-node" in rows[restart] and "high" in rows[restart]
    assert "0/2" in rows[critical] and "critical" in rows[critical]

    # The proposer cannot approve its own proposal, whoever holds a key in its name.
    own = await loop.cli("actions", "approve", restart, key="planner")
    assert own.code == 2 and "cannot approve" in own.stderr, (own.stdout, own.stderr)

    first = await loop.cli("actions", "approve", critical, "--reason", "need a look", key="alice")
    assert first.code == 0, first.stderr
    assert "waiting: 1/2 distinct approvals" in first.stdout

    # The same person again, shouting: refused with the planner's reason, not counted.
    again = await loop.cli("actions", "approve", critical, "--by", "ALICE", key="alice")
    assert again.code == 2 and "already approved" in again.stderr, (again.stdout, again.stderr)

    second = await loop.cli("actions", "approve", critical, key="bob")
    assert second.code == 0, second.stderr
    assert f"approved {critical} (exec into op-geth: geth attach): approved by alice, bob" in second.stdout
    await eventually(
        lambda: loop.seen(critical),
        timeout_s=30,
        what="the critical action's approval on the bus",
        every_s=0.1,
    )
    [executable] = [a for a in loop.approved if a.action_id == critical]
    assert executable.approvers == ("alice", "bob")

    # --by naming someone other than the key's owner is refused by the api.
    impostor = await loop.cli("actions", "approve", restart, "--by", "bob", key="alice")
    assert impostor.code == 2 and "bob" in impostor.stderr, (impostor.stdout, impostor.stderr)

    done = await loop.cli("actions", "approve", restart, "--reason", "stalled 2 min", key="alice")
    assert done.code == 0, done.stderr
    assert f"approved {restart} (restart op-node): approved by alice" in done.stdout
    await eventually(
        lambda: loop.seen(restart), timeout_s=30, what="the restart's approval on the bus", every_s=0.1
    )
    assert [a.approvers for a in loop.approved] == [("alice", "bob"), ("alice",)]

    late = await loop.cli("actions", "reject", restart, key="bob")
    assert late.code == 2 and restart in late.stderr, (late.stdout, late.stderr)
    unknown = await loop.cli("actions", "approve", "act-0000000000000000", key="alice")
    assert unknown.code == 2 and "no proposal with id" in unknown.stderr

    trail = await loop.cli("audit", "--json", "-n", "50")
    assert trail.code == 0, trail.stderr
    records = json.loads(trail.stdout)
    approvers = {r["actor"] for r in records if r.get("actionId") == critical and r["kind"] == "approved"}
    assert approvers == {"alice", "bob"}
    text = await loop.cli("audit")
    assert any("alice" in line and restart in line for line in text.stdout.splitlines())


async def unauthenticated(loop: Loop) -> None:
    nobody = await loop.cli("actions", "approve", loop.restart)
    assert nobody.code == 4 and "not authenticated" in nobody.stderr, (nobody.stdout, nobody.stderr)

    revoked = await loop.cli("keys", "revoke", "dave", "--file", str(loop.keys))
    assert revoked.code == 0, revoked.stderr
    gone = await loop.cli("actions", "approve", loop.restart, key="dave")
    assert gone.code == 4 and "not authenticated" in gone.stderr, (gone.stdout, gone.stderr)

    # Nothing was decided: the restart still waits for its one approval.
    listing = await loop.cli("actions", "list")
    assert "0/1" in next(line for line in listing.stdout.splitlines() if loop.restart in line)


async def test_an_undecided_a_read_only_and_an_unreachable_api_have_their_own_exit_codes(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    keys = tmp_path / "api-keys.json"
    alice = await add_key("alice", "approver", keys=keys, state_dir=state)
    proposal = ActionProposed(
        chain_id=CHAIN,
        action_id="act-00000000cafe0001",
        action=RestartComponent(component="op-batcher"),
        tier="high",
        approvals_required=1,
        cooldown_s=600,
        status="pending_approval",
        reason="batcher stuck",
        proposed_by="planner",
        expires_at=utcnow() + timedelta(hours=1),
    )
    nc = await nats.connect(nats_server.url)
    try:
        # No planner runs: the api sends the approval and nobody answers.
        async with (
            running_api(
                nats_server.url, keys=keys, log=tmp_path / "api.log", SENTINAI_API_VERDICT_TIMEOUT_S="1"
            ) as api,
            running_api(
                nats_server.url, keys=keys, log=tmp_path / "ro.log", SENTINAI_READ_ONLY_MODE="true"
            ) as read_only,
        ):
            js = nc.jetstream()
            await js.publish(subjects.action_proposed(CHAIN), proposal.to_json(), stream=streams.ACTIONS.name)

            async def shown() -> bool:
                return proposal.action_id in await pending_ids(
                    api
                ) and proposal.action_id in await pending_ids(read_only)

            await eventually(shown, timeout_s=30, what="the proposal in both apis", every_s=0.1)

            undecided = await sentinai(
                "actions",
                "approve",
                proposal.action_id,
                "--api-url",
                api,
                state_dir=state,
                SENTINAI_API_KEY=alice,
            )
            assert undecided.code == 5, (undecided.stdout, undecided.stderr)
            assert "undecided" in undecided.stderr and "has not answered" in undecided.stderr

            refused = await sentinai(
                "actions", "approve", proposal.action_id, "--api-url", read_only, state_dir=state,
                SENTINAI_API_KEY=alice,
            )  # fmt: skip
            assert refused.code == 2, (refused.stdout, refused.stderr)
            assert "read-only mode" in refused.stderr

            listing = await sentinai("actions", "list", "--api-url", read_only, state_dir=state)
            assert listing.code == 0 and proposal.action_id in listing.stdout  # reads still work

        nowhere = f"http://127.0.0.1:{free_port()}"
        down = await sentinai(
            "actions",
            "approve",
            proposal.action_id,
            "--api-url",
            nowhere,
            state_dir=state,
            SENTINAI_API_KEY=alice,
        )
        assert down.code == 3 and "cannot reach the api" in down.stderr, (down.stdout, down.stderr)
        audit = await sentinai("audit", "--api-url", nowhere, state_dir=state)
        assert audit.code == 3
    finally:
        await nc.close()

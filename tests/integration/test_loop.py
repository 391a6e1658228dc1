"""The closed loop through the whole stack, simulation off: detect → diagnose → plan → act → verify."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from upstack import UpStack

pytestmark = pytest.mark.integration


@pytest.fixture
def live(make_stack: Callable[..., UpStack]) -> UpStack:
    return make_stack(
        SCALING_SIMULATION_MODE="false", SENTINAI_EXECUTOR_VERIFY_WINDOW_S="60", SENTINAI_LOG_LEVEL="warn"
    )


def audit(stack: UpStack) -> list[dict[str, Any]]:
    """The newest 100 audit records over REST (polled: a CLI process per poll costs seconds under load)."""
    answer = stack.get("/api/audit", limit=100)
    assert answer.status_code == 200, answer.text
    records: list[dict[str, Any]] = answer.json()["items"]
    return records


def story(stack: UpStack, action_id: str) -> list[str]:
    """The audit kinds of one action, oldest first."""
    return [r["kind"] for r in reversed(audit(stack)) if r.get("actionId") == action_id]


def twin_request(stack: UpStack) -> float:
    """op-geth's CPU request as the twin's cluster holds it, in cores."""
    done = stack.cli("twin", "state")
    assert done.returncode == 0, done.stderr
    return float(json.loads(done.stdout)["cpu"]["opGethRequestCores"])


def test_cpu_spike_is_scaled_up_automatically_and_verified_then_a_stall_waits_for_approval(
    live: UpStack,
) -> None:
    def healthy() -> bool:
        body = live.get("/api/health").json()
        return body["status"] == "ok" and any(c["fresh"] for c in body["chains"])

    live.eventually(healthy, timeout_s=60, what="a healthy stack")
    # The detector needs a baseline before it judges anything.
    time.sleep(25)
    assert twin_request(live) == 1.0

    assert live.cli("twin", "inject", "cpu_spike").returncode == 0

    def scaled() -> list[dict[str, Any]]:
        return [
            r for r in audit(live) if r["kind"] == "succeeded" and "scale op-geth CPU to 2" in r["summary"]
        ]

    live.eventually(scaled, timeout_s=120, what="a verified scale-up of op-geth")
    assert twin_request(live) == 2.0
    scale_id = scaled()[0]["actionId"]
    kinds = story(live, scale_id)
    assert kinds[:2] == ["proposed", "approved"], kinds
    assert kinds[-3:] == ["executing", "verified", "succeeded"], kinds
    assert live.cli("twin", "clear").returncode == 0

    assert live.cli("twin", "inject", "sequencer_stall").returncode == 0

    def pending_restart() -> str | None:
        listing = live.cli("actions", "list")
        for line in listing.stdout.splitlines():
            if "restart op-node" in line:
                return line.split()[0]
        return None

    action_id = live.eventually(pending_restart, timeout_s=60, what="a pending op-node restart")
    # High tier: nothing happens until a human approves.
    time.sleep(3)
    assert story(live, action_id) == ["proposed"]

    approved = live.cli("actions", "approve", action_id, "--reason", "sequencer is wedged")
    assert approved.returncode == 0, approved.stderr

    def restarted() -> list[str]:
        kinds = story(live, action_id)
        return kinds if kinds and kinds[-1] in {"succeeded", "failed", "rolled_back"} else []

    kinds = live.eventually(restarted, timeout_s=120, what="the approved restart to finish")
    assert kinds == ["proposed", "approved", "executing", "verified", "succeeded"], kinds
    approvers = [
        r["actor"] for r in audit(live) if r.get("actionId") == action_id and r["kind"] == "approved"
    ]
    assert approvers == ["operator"]  # the owner of the stack's key, whatever a body could claim
    # `sentinai audit` tells the same story as the api.
    done = live.cli("audit", "--json", "-n", "100")
    assert done.returncode == 0, done.stderr
    told = [r["kind"] for r in reversed(json.loads(done.stdout)) if r.get("actionId") == action_id]
    assert told == kinds


@pytest.fixture
def brisk(make_stack: Callable[..., UpStack]) -> UpStack:
    """Simulation off, with incidents declared over after 20 s of calm instead of a minute."""
    return make_stack(
        SCALING_SIMULATION_MODE="false",
        SENTINAI_LOG_LEVEL="warn",
        SENTINAI_RCA_QUIET_S="20",
        SENTINAI_DETECTOR_LOG_QUIET_S="20",
    )


def test_a_burst_and_a_peer_blip_execute_nothing_and_a_cleared_stall_withdraws_its_restart(
    brisk: UpStack,
) -> None:
    """Evidence before action, on the real stack: one saturated sample or one poll without peers is
    no reason to act, and a remedy still waiting for approval when its incident clears is withdrawn."""

    def healthy() -> str | None:
        body = brisk.get("/api/health").json()
        fresh = [c["chainId"] for c in body["chains"] if c["fresh"]]
        return fresh[0] if body["status"] == "ok" and fresh else None

    chain = brisk.eventually(healthy, timeout_s=60, what="a healthy stack")
    time.sleep(25)  # the detector's baseline
    control = f"{brisk.twin_url}/control/chains/{chain}"

    # A 6 s x4 traffic burst, then a one-poll peer loss: anomalies at most, never an execution.
    assert httpx.post(f"{control}/traffic", json={"multiplier": 4.0}, timeout=5).status_code < 300
    time.sleep(6)
    assert httpx.post(f"{control}/traffic", json={"multiplier": 1.0}, timeout=5).status_code < 300
    assert brisk.cli("twin", "inject", "peer_loss").returncode == 0
    time.sleep(2)
    assert brisk.cli("twin", "clear").returncode == 0
    time.sleep(40)  # longer than any evidence rule's span at 2 s blocks
    executed = [r for r in audit(brisk) if r["kind"] in {"executing", "succeeded", "dry_run"}]
    assert executed == [], executed
    assert twin_request(brisk) == 1.0

    # A stall proposes a restart that waits for a human; the stall clears before anyone approves.
    assert brisk.cli("twin", "inject", "sequencer_stall").returncode == 0

    def pending_restart() -> str | None:
        for line in brisk.cli("actions", "list").stdout.splitlines():
            if "restart op-node" in line and "pending" in line:
                return line.split()[0]
        return None

    action_id = brisk.eventually(pending_restart, timeout_s=90, what="a pending op-node restart")
    assert brisk.cli("twin", "clear").returncode == 0
    # Over once its anomalies resolved (a log episode after 20 s without the line) and 20 s of calm.
    brisk.eventually(
        lambda: "withdrawn" in story(brisk, action_id), timeout_s=180, what="the restart withdrawn"
    )
    late = brisk.cli("actions", "approve", action_id, "--reason", "too late")
    assert late.returncode == 2 and "withdrawn" in late.stderr, (late.stdout, late.stderr)
    assert "executing" not in story(brisk, action_id)

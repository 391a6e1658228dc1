"""`kill -9` of each service in the middle of the stream; the supervisor restarts it; nothing is lost.

One `sentinai up` for the module (simulation off: the executor patches the twin for real). The
cases run in the order below, each on the stack the previous one left, and together they carry one
incident from detection to a verified remedy while the services die under it:

collector → predictor → api: the stream keeps flowing, every durable consumer catches up;
detector: restarted, it still detects a sequencer stall injected after its restart;
rca: killed as the incident arrives; its diagnosis still comes, and the planner proposes a restart;
planner: killed, then the restart is approved over REST while it is down; the approval is not lost;
executor: killed after its patch went in, mid-verification; the restarted executor finds the orphaned
effect record, sees the patch in the live workload, verifies it, and the action succeeds exactly once.

After every restart: the new process is healthy, every durable consumer drains (nothing pending,
nothing unacked), no action has more than one `action.executed` or more than one final audit record,
and every approval published has its `action.executed`.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
from faults_support import admin_creds, health_port, healthz, kill_9, stream_messages, wait_drained
from upstack import UpStack, alive, eventually

from sentinai.api.keys import ENV_PRINCIPAL
from sentinai.twin.client import TwinControl

pytestmark = pytest.mark.integration
FINAL = {"succeeded", "dry_run", "failed", "rolled_back"}
ORDER = ("collector", "predictor", "api", "detector", "rca", "planner", "executor")


@dataclass
class Story:
    stack: UpStack
    restarted_at: dict[str, float] = field(default_factory=dict)
    restart_action: str | None = None
    counts: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    stack = UpStack(
        tmp_path_factory.mktemp("kill9"),
        SCALING_SIMULATION_MODE="false",
        SENTINAI_TWIN_POLL_INTERVAL_S="1",
        SENTINAI_EXECUTOR_VERIFY_WINDOW_S="60",
        # Redelivery of an approval whose executor died comes after this (30 s in production).
        SENTINAI_EXECUTOR_ACK_WAIT_S="6",
    )
    try:
        eventually(lambda: healthy(stack), timeout_s=90, what="a healthy stack")
        yield Story(stack)
    finally:
        stack.close()


def healthy(stack: UpStack) -> bool:
    body = stack.get("/api/health").json()
    return bool(body["status"] == "ok" and any(c["fresh"] for c in body["chains"]))


def events(stack: UpStack, stream: str, subject: str) -> list[dict[str, Any]]:
    return [
        json.loads(body)
        for _, body in stream_messages(stack.nats_url, stream, subject, creds=admin_creds(stack))
    ]


def effects_once(stack: UpStack) -> dict[str, int]:
    """Checks that no action had two effects; returns how many approvals and executions there were."""
    executed = Counter(e["actionId"] for e in events(stack, "ACTIONS", "action.executed."))
    assert all(n == 1 for n in executed.values()), executed
    final = Counter(
        r["actionId"]
        for r in events(stack, "AUDIT", "audit.")
        if r["actor"] == "executor" and r["kind"] in FINAL
    )
    assert all(n == 1 for n in final.values()), final
    approved = {e["actionId"] for e in events(stack, "ACTIONS", "action.approved.")}
    missing = approved - set(executed)
    return {"approved": len(approved), "executed": len(executed), "missing": len(missing)}


def restart(story: Story, name: str) -> int:
    """kill -9 the service, wait for the supervisor's restart and its health; the new pid."""
    old = story.stack.child_pids()[name]
    kill_9(old)
    return back_up(story, name, old)


def back_up(story: Story, name: str, old: int) -> int:
    """Wait until the supervisor has replaced the killed ``old`` and the new process is healthy."""
    stack = story.stack
    new = eventually(
        lambda: (pid := stack.child_pids()[name]) != old and pid,
        timeout_s=30,
        what=f"{name} restarted by the supervisor",
    )
    story.restarted_at[name] = time.time()
    assert not alive(old)
    if name == "api":
        eventually(lambda: healthy(stack), timeout_s=60, what="the api healthy again")
    else:
        port = eventually(lambda: health_port(new, name), timeout_s=10, what=f"{name}'s port")
        eventually(lambda: healthz(port), timeout_s=60, what=f"{name} healthy again")
    return new


def invariants(story: Story) -> None:
    stack = story.stack
    wait_drained(stack.nats_url, timeout_s=45, creds=admin_creds(stack))
    counts = eventually(
        lambda: (c := effects_once(stack))["missing"] == 0 and c,
        timeout_s=90,
        what="an action.executed for every approval",
    )
    story.counts = counts
    print(f"after the {len(story.restarted_at)} restart(s) so far: {counts}")


def pending_restart(stack: UpStack) -> str | None:
    for action in stack.get("/api/actions", status="pending").json()["actions"]:
        if action["action"]["kind"] == "restart_component" and action["action"]["component"] == "op-node":
            return str(action["actionId"])
    return None


def workload(stack: UpStack, kind: str, name: str) -> dict[str, Any]:
    return stack.kube(f"/apis/apps/v1/namespaces/twin/{kind}/{name}")


@pytest.mark.timeout(600)  # seven kills and recoveries in one test
def test_kill_9_and_restart_each_service_in_turn(story: Story) -> None:
    """One test, the steps in order: each step builds on the one before on the same stack (the stall
    the detector step injects is the one the rca and planner steps act on), so they must never be
    split into items a scheduler may run apart or with a fixture rebuilt in between."""
    for name in ORDER:
        kill_9_and_restart(story, name)


def kill_9_and_restart(story: Story, name: str) -> None:
    stack = story.stack
    twin = TwinControl(stack.twin_url)
    if name == "collector":
        before = len(events(stack, "TELEMETRY", "metrics.raw.twin."))
        restart(story, name)
        eventually(
            lambda: len(events(stack, "TELEMETRY", "metrics.raw.twin.")) > before + 8,
            timeout_s=30,
            what="samples flowing again",
        )
    elif name in ("predictor", "api"):
        restart(story, name)
    elif name == "detector":
        restart(story, name)
        twin.inject("twin", "sequencer_stall")
        since = story.restarted_at["detector"]

        def stall_after_restart() -> list[dict[str, Any]]:
            found = events(stack, "EVENTS", "anomaly.detected.twin")
            return [
                a
                for a in found
                if "stall" in (a["description"] + a["metric"]).lower() and _epoch(a["occurredAt"]) >= since
            ]

        eventually(stall_after_restart, timeout_s=45, what="the stall detected by the restarted detector")
    elif name == "rca":
        restart(story, name)
        try:
            story.restart_action = eventually(
                lambda: pending_restart(stack), timeout_s=60, what="a pending op-node restart"
            )
        except AssertionError as exc:
            # Seen once under four xdist workers on two cores: say what the planner and rca had done.
            actions = json.dumps(stack.get("/api/actions").json())[:3000]
            diagnoses = json.dumps(events(stack, "EVENTS", "rca.completed.twin"))[-3000:]
            raise AssertionError(f"{exc}\nactions: {actions}\nlast diagnoses: {diagnoses}") from exc
        assert events(stack, "EVENTS", "rca.completed.twin")
    elif name == "planner":
        action_id = story.restart_action
        assert action_id is not None
        old = stack.child_pids()["planner"]
        kill_9(old)
        # Approved while the planner is dead: the command waits in JetStream for its restart.
        answer = stack.post(f"/api/actions/{action_id}/approve", {"reason": "wedged"})
        # 202: judged later; 200: the restarted planner took it from JetStream within the api's wait.
        assert answer.status_code in (200, 202), answer.text
        back_up(story, "planner", old)

        def approved_once() -> list[dict[str, Any]]:
            return [e for e in events(stack, "ACTIONS", "action.approved.twin") if e["actionId"] == action_id]

        (approved,) = eventually(approved_once, timeout_s=30, what="the approval carried out by the planner")
        # The writer is the key's principal: the stack's SENTINAI_API_KEY is the operator's.
        assert approved["approvers"] == [ENV_PRINCIPAL]
        done = eventually(
            lambda: [
                e for e in events(stack, "ACTIONS", "action.executed.twin") if e["actionId"] == action_id
            ],
            timeout_s=90,
            what="the approved op-node restart executed",
        )
        assert [e["outcome"] for e in done] == ["succeeded"], done
    elif name == "executor":
        _kill_executor_mid_verification(story, twin)
    invariants(story)


def _kill_executor_mid_verification(story: Story, twin: TwinControl) -> None:
    stack = story.stack
    twin.clear("twin")
    geth = workload(stack, "statefulsets", "op-geth")["metadata"]["generation"]
    answer = stack.post(
        "/api/actions",
        {
            "chainId": "twin",
            "action": {"kind": "scale_cpu", "component": "op-geth", "vcpu": 2},
            "reason": "headroom before a load test",
        },
    )
    assert answer.status_code in (200, 202), answer.text  # verdict at once, or later
    action_id = answer.json()["actionId"]
    eventually(
        lambda: workload(stack, "statefulsets", "op-geth")["metadata"]["generation"] > geth,
        timeout_s=60,
        every_s=0.05,
        what="the scale-up patched into the cluster",
    )
    old = stack.child_pids()["executor"]
    kill_9(old)  # the patch is in; its verification has just begun
    kinds_at_kill = [
        r["kind"] for r in events(stack, "AUDIT", "audit.twin") if r.get("actionId") == action_id
    ]
    assert not FINAL & set(kinds_at_kill), kinds_at_kill
    back_up(story, "executor", old)

    def story_of() -> list[dict[str, Any]]:
        found = [r for r in events(stack, "AUDIT", "audit.twin") if r.get("actionId") == action_id]
        return found if any(r["kind"] in FINAL for r in found) else []

    audit = eventually(story_of, timeout_s=90, what="the orphaned scale-up settled")
    kinds = [r["kind"] for r in audit]
    assert kinds.count("succeeded") == 1, kinds
    recovered = [r for r in audit if r["summary"].startswith("recovered:")]
    assert len(recovered) == 1 and "is in: verifying it again" in recovered[0]["summary"], audit
    # Applied exactly once: one more generation, the request at the new value.
    spec = workload(stack, "statefulsets", "op-geth")
    assert spec["metadata"]["generation"] == geth + 1
    (container,) = spec["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["requests"]["cpu"] == "2"


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()

"""Pure: which catalogue actions answer a diagnosis, and what must hold again for one to count as a fix."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Final

from sentinai.common import catalog
from sentinai.common.actions import Action, Notify, RaiseMemory, RestartComponent, ScaleCpu, ScaleDown
from sentinai.common.decisions import RcaCompleted, VerifySpec
from sentinai.common.incidents import RootCauseClass
from sentinai.common.policy import Policy
from sentinai.common.settings import ChainRules

MIN_RCA_CONFIDENCE = 0.5
# A notification changes nothing in the cluster, so a less certain diagnosis may still send one.
MIN_NOTIFY_CONFIDENCE = 0.3
# op-geth's memory limit when the diagnosis quotes no figure (the twin's and a common production size).
DEFAULT_OP_GETH_MEMORY_GIB = 8.0
MEMORY_GROWTH = 1.5
_MEMORY_BYTES = re.compile(r"memoryBytes\D{0,3}([0-9][0-9.eE+]*)")
_GIB = 1024**3
# The shared chain rules at their defaults, for callers that do not read settings (tests, replays).
DEFAULT_RULES: Final = ChainRules()


def remedies(
    rca: RcaCompleted,
    *,
    policy: Policy,
    current_vcpu: Mapping[str, float] | None = None,
    min_confidence: float = MIN_RCA_CONFIDENCE,
    min_notify_confidence: float = MIN_NOTIFY_CONFIDENCE,
) -> list[Action]:
    """The catalogue actions that answer ``rca``'s root cause; nothing when unsure or observe-only.

    Between ``min_notify_confidence`` and ``min_confidence`` only the notifications remain.
    """
    if rca.root_cause_class == "unknown" or rca.confidence < min(min_confidence, min_notify_confidence):
        return []
    actions = _remedies(rca, policy=policy, current_vcpu=current_vcpu)
    if rca.confidence < min_confidence:
        return [action for action in actions if isinstance(action, Notify)]
    return actions


def _remedies(rca: RcaCompleted, *, policy: Policy, current_vcpu: Mapping[str, float] | None) -> list[Action]:
    cause = rca.root_cause_class
    if cause in ("sequencer_stall", "peer_loss"):
        return [RestartComponent(component="op-node")]
    if cause == "l1_rpc_outage":
        return [
            RestartComponent(component="op-node"),
            Notify(
                severity="high",
                text="L1 RPC outage: switch op-node's L1 endpoint (--l1) to a healthy provider; "
                "switching endpoints is not in the action catalogue, a human must",
            ),
        ]
    if cause == "batcher_failure":
        # An empty key (the L1 node's error, or the balance the collector reads) needs a human with funds.
        if _mentions(rca, "insufficient funds") or _mentions(rca, "op-batcher balance="):
            return [
                Notify(
                    severity="critical",
                    text="op-batcher cannot pay for L1 transactions (insufficient funds): fund the "
                    "batcher key: a human must; a restart will not help",
                )
            ]
        return [RestartComponent(component="op-batcher")]
    if cause == "proposer_failure":
        return [RestartComponent(component="op-proposer")]
    if cause == "op_geth_cpu_saturation":
        return [_scale_up(policy, current=(current_vcpu or {}).get("op-geth"))]
    if cause == "op_geth_oom":
        return [RaiseMemory(component="op-geth", memory_gib=_memory_target(rca))]
    if cause == "engine_api_failure":
        return [RestartComponent(component="op-geth")]
    if cause == "jwt_mismatch":
        return [
            Notify(
                severity="critical",
                text="JWT mismatch between op-node and op-geth (401 Unauthorized on the engine API): "
                "a restart will not fix it; put the same secret in both --authrpc.jwtsecret and "
                "--l2.jwt-secret",
            )
        ]
    if cause == "disk_pressure":
        return [
            Notify(
                severity="critical",
                text="op-geth disk is nearly full: expand its volume (needs approval) or prune "
                "before geth shuts itself down",
            )
        ]
    if cause == "txpool_spam":
        return [
            Notify(
                severity="low",
                text="tx pool is being flooded: observe, rate-limit at the RPC edge if it persists; "
                "restarting would not help and drops the pool",
            )
        ]
    return []  # l1_reorg: observe only, op-node heals itself


def _mentions(rca: RcaCompleted, needle: str) -> bool:
    texts = [rca.root_cause, rca.action_plan, *rca.evidence]
    for hypothesis in rca.hypotheses:
        if hypothesis.cause == rca.root_cause_class:
            texts += [hypothesis.summary, *hypothesis.evidence]
    return any(needle in text.lower() for text in texts)


def _scale_up(policy: Policy, *, current: float | None) -> Action:
    ladder = policy.ladder
    base = ladder.floor if current is None else current
    step = ladder.above(base)
    if step is not None:
        return ScaleCpu(component="op-geth", vcpu=step)
    return Notify(
        severity="high",
        text=f"op-geth CPU is saturated at the top of the vCPU ladder ({base:g} vCPU): "
        "scale out or move to larger nodes",
    )


def _memory_target(rca: RcaCompleted) -> float:
    """1.5x the largest quoted working set (or the default limit), rounded up to a whole GiB."""
    quoted = []
    for text in (*rca.evidence, *(e for h in rca.hypotheses for e in h.evidence)):
        for match in _MEMORY_BYTES.finditer(text):
            try:
                quoted.append(float(match.group(1)) / _GIB)
            except ValueError:
                continue
    base = max([DEFAULT_OP_GETH_MEMORY_GIB, *quoted])
    return float(math.ceil(base * MEMORY_GROWTH))


def verify_resources(action: Action) -> VerifySpec | None:
    """What must hold after a change of ``action``'s resources (None: it changes none)."""
    if isinstance(action, ScaleCpu):
        # Saturation is fixed when op-geth is no longer pinned at its allocation; a busy but unthrottled
        # op-geth (80-95 % of the new request) is the point of buying the cores, not a failed scale-up.
        return VerifySpec(component=action.component, metric=catalog.CPU_USAGE, below=95.0, window_s=120.0)
    if isinstance(action, ScaleDown):
        # After giving cores back, the remaining ones must keep headroom.
        return VerifySpec(component=action.component, metric=catalog.CPU_USAGE, below=80.0, window_s=120.0)
    if isinstance(action, RaiseMemory):
        return VerifySpec(component=action.component, metric=catalog.MEMORY_USAGE, below=90.0, window_s=180.0)
    return None


def verify_spec(
    incident: RootCauseClass | None,
    action: Action,
    *,
    block_time_s: float,
    rules: ChainRules = DEFAULT_RULES,
) -> VerifySpec | None:
    """What must be true again after ``action`` for it to count as a fix (None: nothing to verify).

    ``block_time_s`` and ``rules`` (the stall multiple): "blocks flow again" means a head younger
    than the stall limit.
    """
    resources = verify_resources(action)
    if resources is not None or not isinstance(action, RestartComponent):
        return resources
    if incident == "peer_loss":
        return VerifySpec(component="op-node", metric=catalog.PEER_COUNT, above=0.5, window_s=120.0)
    if action.component == "op-batcher":
        # The safe head moves again once batches land on L1 (a few minutes on a real chain).
        return VerifySpec(component="op-node", metric=catalog.SAFE_L2_AGE, below=600.0, window_s=600.0)
    if action.component == "op-proposer":
        # Outputs are proposed hourly: nothing faster to watch than the pod serving again.
        return VerifySpec(component="op-proposer", metric=catalog.POD_READY, above=0.5, window_s=120.0)
    if action.component == "op-node" and incident == "l1_rpc_outage":
        return VerifySpec(component="op-node", metric=catalog.L1_HEAD_AGE, below=120.0, window_s=180.0)
    # Sequencer stall, engine API failure: blocks flow again.
    return VerifySpec(
        component="op-geth",
        metric=catalog.SECONDS_SINCE_HEAD,
        below=rules.stall_limit_s(block_time_s),
        window_s=120.0,
    )

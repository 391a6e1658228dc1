"""The planner's pure core in one namespace: what it proposes, how it scales, how commands decide.

A facade over the modules that hold it (``remedies``, ``proposals``, ``scaling``, ``commands``,
``audit``), for the callers that replay the planner without its service (``bench/``, the eval, the
rca's tests): ``from sentinai.planner import logic as planner``.
"""

from __future__ import annotations

from sentinai.common.decisions import action_id
from sentinai.planner.audit import AUDIT_KEEP, audit_event, command_audit, fold_audit, unknown_action_refused
from sentinai.planner.commands import (
    ActionState,
    Approval,
    CommandOutcome,
    OutcomeStatus,
    apply_command,
    approved_by,
    approved_event,
    command_verdict,
    expired,
    expiry,
    request_verdict,
    unknown_action,
)
from sentinai.planner.proposals import (
    WAITING,
    Decision,
    from_agent,
    plan_rca,
    plan_request,
    propose,
    upgrade,
    withdrawable,
    withdrawal_reason,
)
from sentinai.planner.remedies import (
    DEFAULT_OP_GETH_MEMORY_GIB,
    MEMORY_GROWTH,
    MIN_NOTIFY_CONFIDENCE,
    MIN_RCA_CONFIDENCE,
    remedies,
    verify_resources,
    verify_spec,
)
from sentinai.planner.scaling import (
    MIN_LULLS,
    PARTWAY_MARGIN,
    ScaleKey,
    ScalingMemory,
    admit_scaling,
    plan_prediction,
    record_executed,
)

__all__ = [
    "AUDIT_KEEP",
    "DEFAULT_OP_GETH_MEMORY_GIB",
    "MEMORY_GROWTH",
    "MIN_LULLS",
    "MIN_NOTIFY_CONFIDENCE",
    "MIN_RCA_CONFIDENCE",
    "PARTWAY_MARGIN",
    "WAITING",
    "ActionState",
    "Approval",
    "CommandOutcome",
    "Decision",
    "OutcomeStatus",
    "ScaleKey",
    "ScalingMemory",
    "action_id",
    "admit_scaling",
    "apply_command",
    "approved_by",
    "approved_event",
    "audit_event",
    "command_audit",
    "command_verdict",
    "expired",
    "expiry",
    "fold_audit",
    "from_agent",
    "plan_prediction",
    "plan_rca",
    "plan_request",
    "propose",
    "record_executed",
    "remedies",
    "request_verdict",
    "unknown_action",
    "unknown_action_refused",
    "upgrade",
    "verify_resources",
    "verify_spec",
    "withdrawable",
    "withdrawal_reason",
]

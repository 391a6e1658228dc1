"""The executor's cooldown locks as the planner mirrors them, from ``action.executed``: pure.

The planner must not queue for approval, nor approve, an action the executor will refuse because
it changed the same component moments ago; so it keeps the executor's rule here, exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from sentinai.common.actions import Action, RaiseMemory, RestartComponent, ScaleCpu, ScaleDown
from sentinai.common.decisions import ActionExecuted, ActionProposed
from sentinai.common.policy import Policy, classify

# Outcomes of a real (not dry-run) execution that held the executor's cooldown lock: it takes the lock
# before it patches, and keeps it whether the change then succeeds, fails or is rolled back. A
# refusal never took it; a dry run never asks for it.
_LOCKING: Final = frozenset({"succeeded", "failed", "rolled_back"})


@dataclass(frozen=True, slots=True)
class Cooldown:
    """The executor's cooldown lock on one component of a chain, as the planner mirrors it.

    The executor (its ``_take_cooldown``) locks ``cooldown.<chain>.<component>`` whatever the
    action kind, when a real execution starts, for the larger of the approval's cooldown and the
    tier's; until then it refuses any other action on that component.
    """

    component: str
    action_id: str
    done: str  # what happened to the component, for people: "restarted", "scaled to 4 vCPU"
    at: datetime
    ttl_s: float

    @property
    def until(self) -> datetime:
        return self.at + timedelta(seconds=self.ttl_s)

    def holds(self, action_id: str, *, now: datetime) -> bool:
        # The lock's own action is never refused by it (a retry of the same execution).
        return action_id != self.action_id and now < self.until

    def refusal(self) -> str:
        at, until = self.at.astimezone(UTC), self.until.astimezone(UTC)
        return (
            f"{self.component} was {self.done} at {at:%H:%M:%S}; "
            f"cooldown {self.ttl_s:g} s until {until:%H:%M:%S}"
        )


def cooldown_after(
    executed: ActionExecuted, *, policy: Policy, proposal: ActionProposed | None = None
) -> Cooldown | None:
    """The cooldown the executor took for ``executed``, or None when it took none.

    ``proposal`` (the planner's record of the action) gives the approval's cooldown and incident the
    executor classified with; without it the action is classified without an incident.
    """
    component = executed.action.target()
    if component is None or executed.dry_run or executed.outcome not in _LOCKING:
        return None
    incident = proposal.incident if proposal is not None else None
    ttl_s = classify(executed.action, policy, incident=incident).cooldown_s
    if proposal is not None:
        ttl_s = max(ttl_s, proposal.cooldown_s)
    if ttl_s <= 0:
        return None
    return Cooldown(component, executed.action_id, _done(executed.action), executed.started_at, ttl_s)


def _done(action: Action) -> str:
    if isinstance(action, RestartComponent):
        return "restarted"
    if isinstance(action, ScaleCpu):
        return f"scaled to {action.vcpu:g} vCPU"
    if isinstance(action, ScaleDown):
        return f"scaled down to {action.vcpu:g} vCPU"
    if isinstance(action, RaiseMemory):
        return f"given a {action.memory_gib:g} GiB memory limit"
    return f"changed ({action.summary()})"


def later(held: Cooldown | None, new: Cooldown) -> Cooldown:
    """Of two locks on one component, the one that ends last (the executor never holds two at once)."""
    return new if held is None or new.until >= held.until else held


def cooling(
    action: Action,
    cooldowns: Mapping[str, Cooldown] | None,
    *,
    action_id: str,
    cooldown_s: float,
    now: datetime,
) -> Cooldown | None:
    """The lock the executor would refuse ``action`` for at ``now``, or None.

    ``cooldown_s`` is the action's own cooldown: like the executor, an action without one is never
    checked against a lock.
    """
    component = action.target()
    if component is None or not cooldowns or cooldown_s <= 0:
        return None
    held = cooldowns.get(component)
    return held if held is not None and held.holds(action_id, now=now) else None

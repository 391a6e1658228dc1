"""The planner's records in the StateStore: proposals, their approvals, the pending index, the audit model.

Layout (read by the CLI and the api too): ``proposals.<actionId>`` the proposal as last published,
``approvals.<actionId>`` its ledger (approvers, decision, the last command refused),
``pending.<actionId>`` one key per proposal awaiting approval, ``audit.recent`` the last 100 audit
records, newest first.
The planner's own memory besides: ``cooldowns.<chain>.<component>`` the executor's cooldown lock
as mirrored from ``action.executed``, ``resolved.<digest>`` the incidents that are over.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, TypeAdapter
from pydantic.alias_generators import to_camel

from sentinai.common.decisions import (
    ActionCommand,
    ActionProposed,
    AuditRecorded,
    CommandKind,
    IncidentResolved,
    VerdictCode,
)
from sentinai.common.events import COMPONENTS
from sentinai.common.state import StateStore
from sentinai.planner.commands import Approval, CommandOutcome
from sentinai.planner.cooldowns import Cooldown, later
from sentinai.planner.proposals import Decision

AUDIT_RECENT = "audit.recent"
_AUDIT_LIST = TypeAdapter(list[AuditRecorded])


def proposal_key(action_id: str) -> str:
    return f"proposals.{action_id}"


def ledger_key(action_id: str) -> str:
    return f"approvals.{action_id}"


def pending_key(action_id: str) -> str:
    return f"pending.{action_id}"


def cooldown_key(chain_id: str, component: str) -> str:
    return f"cooldowns.{chain_id}.{component}"


def resolved_key(chain_id: str, incident_id: str) -> str:
    # An incident id is the rca's to choose: hashed, it is always a valid key.
    return "resolved." + hashlib.sha256(f"{chain_id}|{incident_id}".encode()).hexdigest()[:32]


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True, extra="ignore")


class ApprovalRecord(_Record):
    by: str
    at: AwareDatetime
    reason: str = ""
    command_id: str = ""


class RefusalRecord(_Record):
    """A command the planner refused: who sent it, why (``VerdictCode`` and a sentence), and when."""

    by: str
    command: CommandKind
    code: VerdictCode
    reason: str
    at: AwareDatetime
    command_id: str


class Ledger(_Record):
    """Who approved a proposal so far and how it ended (None while it waits).

    Approvers are kept by the names they gave (``identity`` compares them); each with the event id
    of its command, like ``decided_by_command``, so that a redelivered command is recognised.
    """

    approvals: tuple[ApprovalRecord, ...] = ()
    decision: Decision | None = None
    why: str = ""
    decided_at: AwareDatetime | None = None
    # Set once ``action.approved`` is published: a redelivered approval then publishes nothing.
    announced: bool = False
    # The command that took ``decision`` (a rejection, the approval that completed it, or the command
    # that found the proposal expired), if one did.
    decided_by_command: str = ""
    # The last command refused, for a reader asking why an approval did not count.
    last_refusal: RefusalRecord | None = None

    def approvers(self) -> tuple[Approval, ...]:
        return tuple(Approval(a.by, a.at, a.reason, a.command_id) for a in self.approvals)

    def answered(self) -> frozenset[str]:
        """The event ids of the commands that took effect on the proposal."""
        ids = {a.command_id for a in self.approvals} | {self.decided_by_command}
        return frozenset(ids - {""})

    def refused(self, cmd: ActionCommand, outcome: CommandOutcome, *, at: datetime) -> Ledger:
        """This ledger with ``cmd``'s refusal remembered as the last one."""
        refusal = RefusalRecord(
            by=cmd.by,
            command=cmd.command,
            code=outcome.code,
            reason=outcome.why,
            at=at,
            command_id=cmd.event_id,
        )
        return self.model_copy(update={"last_refusal": refusal})

    @classmethod
    def of(
        cls,
        approvals: tuple[Approval, ...],
        *,
        decision: Decision | None,
        why: str,
        at: datetime,
        command_id: str = "",
        last_refusal: RefusalRecord | None = None,
    ) -> Ledger:
        return cls(
            approvals=tuple(
                ApprovalRecord(by=a.by, at=a.at, reason=a.reason, command_id=a.command_id) for a in approvals
            ),
            decision=decision,
            why=why,
            decided_at=at if decision is not None else None,
            decided_by_command=command_id if decision is not None else "",
            last_refusal=last_refusal,
        )


class CooldownRecord(_Record):
    component: str
    action_id: str
    done: str
    at: AwareDatetime
    ttl_s: float

    def cooldown(self) -> Cooldown:
        return Cooldown(self.component, self.action_id, self.done, self.at, self.ttl_s)

    @classmethod
    def of(cls, cooldown: Cooldown) -> CooldownRecord:
        return cls(
            component=cooldown.component,
            action_id=cooldown.action_id,
            done=cooldown.done,
            at=cooldown.at,
            ttl_s=cooldown.ttl_s,
        )


class Records:
    """Typed access to the planner's keys; every method is one or two StateStore calls.

    ``sole_writer``: the proposals awaiting a decision are kept in memory after the first read, for
    the planner — the only writer of ``pending.*`` (one planner per deployment), whose own writes
    keep that view exact. Every resolved anomaly and every expiry round looks through them, and
    listing the store's keys costs a round trip per key. Any other reader reads the store each time.
    """

    def __init__(self, store: StateStore, *, sole_writer: bool = False) -> None:
        self.store = store
        self.sole_writer = sole_writer
        self._pending: dict[str, ActionProposed] | None = None
        # Same reasoning: every proposal and approval reads its chain's cooldowns.
        self._cooldowns: dict[str, dict[str, Cooldown]] = {}

    async def proposal(self, action_id: str) -> ActionProposed | None:
        raw = await self.store.get(proposal_key(action_id))
        return None if raw is None else ActionProposed.model_validate_json(raw)

    async def ledger(self, action_id: str) -> Ledger:
        raw = await self.store.get(ledger_key(action_id))
        return Ledger() if raw is None else Ledger.model_validate_json(raw)

    async def add(self, proposal: ActionProposed) -> bool:
        """Record a published proposal; False when it was recorded before (a redelivery)."""
        if not await self.store.create(proposal_key(proposal.action_id), proposal.to_json()):
            return False
        if proposal.status == "pending_approval":
            await self.store.put(pending_key(proposal.action_id), proposal.expires_at.isoformat().encode())
            if self._pending is not None:
                self._pending[proposal.action_id] = proposal
        return True

    async def replace(self, proposal: ActionProposed) -> None:
        """Record a proposal published again with a new status (upgraded): it waits no more."""
        await self.store.put(proposal_key(proposal.action_id), proposal.to_json())
        if proposal.status != "pending_approval":
            await self.store.delete(pending_key(proposal.action_id))
            if self._pending is not None:
                self._pending.pop(proposal.action_id, None)

    async def save_ledger(self, action_id: str, ledger: Ledger) -> None:
        await self.store.put(ledger_key(action_id), ledger.model_dump_json(by_alias=True).encode())
        if ledger.decision is not None:
            await self.store.delete(pending_key(action_id))
            if self._pending is not None:
                self._pending.pop(action_id, None)

    async def pending(self) -> list[ActionProposed]:
        """The proposals awaiting a decision, oldest id first."""
        pending = self._pending
        if pending is None:
            pending = {}
            for key in await self.store.keys("pending."):
                action_id = key.removeprefix("pending.")
                if (proposal := await self.proposal(action_id)) is not None:
                    pending[action_id] = proposal
            if self.sole_writer:
                self._pending = pending
        return [pending[action_id] for action_id in sorted(pending)]

    async def pending_ids(self) -> list[str]:
        return [proposal.action_id for proposal in await self.pending()]

    async def all_ids(self) -> list[str]:
        return [key.removeprefix("proposals.") for key in await self.store.keys("proposals.")]

    async def cooldowns(self, chain_id: str) -> dict[str, Cooldown]:
        """The chain's cooldown locks by component (expired ones included: ``Cooldown.holds`` tells)."""
        found = self._cooldowns.get(chain_id)
        if found is None:
            found = {}
            for component in COMPONENTS:
                raw = await self.store.get(cooldown_key(chain_id, component))
                if raw is not None:
                    found[component] = CooldownRecord.model_validate_json(raw).cooldown()
            if self.sole_writer:
                self._cooldowns[chain_id] = found
        return dict(found)

    async def save_cooldown(self, chain_id: str, cooldown: Cooldown) -> None:
        """Remember the lock the executor took, unless one that ends later is remembered already."""
        held = (await self.cooldowns(chain_id)).get(cooldown.component)
        if later(held, cooldown) is held:
            return
        body = CooldownRecord.of(cooldown).model_dump_json(by_alias=True).encode()
        # Saved once the execution is over, so the key outlives the lock; ``holds`` judges it.
        await self.store.put(cooldown_key(chain_id, cooldown.component), body, ttl_s=cooldown.ttl_s)
        if chain_id in self._cooldowns:
            self._cooldowns[chain_id][cooldown.component] = cooldown

    async def mark_resolved(self, resolved: IncidentResolved, *, ttl_s: float) -> None:
        key = resolved_key(resolved.chain_id, resolved.incident_id)
        await self.store.put(key, resolved.to_json(), ttl_s=ttl_s)

    async def is_resolved(self, chain_id: str, incident_id: str) -> bool:
        return await self.store.get(resolved_key(chain_id, incident_id)) is not None

    async def recent_audit(self) -> list[AuditRecorded]:
        raw = await self.store.get(AUDIT_RECENT)
        return [] if raw is None else _AUDIT_LIST.validate_json(raw)

    async def save_recent_audit(self, records: list[AuditRecorded]) -> None:
        await self.store.put(AUDIT_RECENT, _AUDIT_LIST.dump_json(records, by_alias=True))

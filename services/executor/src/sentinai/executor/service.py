"""One approved action, carried out at most once: re-check, cooldown, dry-run or act, verify, roll back.

``Executor.handle`` is the use case. The effect record (``effects``) makes it once-only; the
patch, its verification and its rollback are ``patching`` and ``verify``; the events it publishes
are built by ``attempt``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any

from prometheus_client import Counter

from sentinai.common import streams, subjects
from sentinai.common.chains import ChainConfig
from sentinai.common.decisions import ActionApproved, ActionExecuted, AuditRecorded
from sentinai.common.policy import Policy, classify
from sentinai.common.state import StateStore
from sentinai.executor import logic
from sentinai.executor.attempt import Attempt, Result, audit
from sentinai.executor.effects import EffectRecord, Effects, Keeper
from sentinai.executor.kube import KubeError
from sentinai.executor.patching import Patcher
from sentinai.executor.ports import Clock, Cluster, Feed, Publisher, SystemClock
from sentinai.executor.settings import ExecutorSettings
from sentinai.executor.verify import Verifier

log = logging.getLogger(__name__)

EXECUTIONS = Counter(
    "sentinai_executor_actions_total", "Approved actions by outcome", ["chain", "kind", "outcome"]
)
DUPLICATES = Counter(
    "sentinai_executor_duplicates_total", "Approvals whose action already had an effect record", ["chain"]
)


class Executor:
    def __init__(
        self,
        *,
        settings: ExecutorSettings,
        policy: Policy,
        chains: Mapping[str, ChainConfig],
        clusters: Mapping[str, Cluster],
        store: StateStore,
        feed: Feed,
        publisher: Publisher,
        instance: str,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self.policy = policy
        self.chains = chains
        self.clusters = clusters
        self.store = store
        self.feed = feed
        self.publisher = publisher
        self.clock: Clock = clock or SystemClock()
        # Set at shutdown: a verification in progress is abandoned and its change rolled back.
        self.stopping = asyncio.Event()
        self.effects = Effects(
            store,
            instance=instance,
            ttl_s=settings.effect_ttl_s,
            stale_after_s=settings.stale_after_s,
            clock=self.clock,
        )
        self.patcher = Patcher(
            feed=feed, verifier=Verifier(settings=settings, chains=chains, stopping=self.stopping)
        )

    # ---------------------------------------------------------------------------------- the effect

    async def handle(self, approved: ActionApproved) -> ActionExecuted | None:
        """Carry out ``approved`` unless its effect record exists; ``None`` when it already did.

        Raises ``effects.Busy`` while another live executor holds the action.
        """
        keeper = await self.effects.claim(approved.action_id)
        if keeper is None:
            return await self._already_handled(approved)
        return await self._run(approved, keeper)

    async def _run(
        self, approved: ActionApproved, keeper: Keeper, *, orphan: EffectRecord | None = None
    ) -> ActionExecuted:
        attempt = Attempt(approved, keeper, self.clock.now(), self.clock)
        async with keeper.holding(every_s=self.settings.beat_every_s):
            if orphan is not None and orphan.patch is not None:
                result = await self._resume(attempt, orphan)
            else:
                result = await self._execute(attempt)
            if orphan is not None and orphan.patch is None:
                note = f"executor {orphan.executor} stopped before it changed anything: executed again"
                result.audits.insert(0, _recovered(approved, orphan, note))
        events: list[ActionExecuted | AuditRecorded] = [*result.audits, result.executed]
        await keeper.done(events)
        await self._publish(*events)
        await keeper.published()
        executed = result.executed
        EXECUTIONS.labels(approved.chain_id, approved.action.kind, executed.outcome).inc()
        log.info(
            "action executed",
            extra={
                "actionId": approved.action_id,
                "outcome": executed.outcome,
                "detail": executed.detail,
                "timingsMs": executed.timings_ms,
            },
        )
        return executed

    async def _already_handled(self, approved: ActionApproved) -> ActionExecuted | None:
        DUPLICATES.labels(approved.chain_id).inc()
        found = await self.effects.existing(approved.action_id)
        if isinstance(found, tuple):
            keeper, orphan = found
            return await self._run(approved, keeper, orphan=orphan)
        if found.state == "done":
            # The previous attempt decided but may not have published: publish again, same ids.
            await self._publish(*found.decoded_events())
            await self.effects.mark_published(approved.action_id, found)
        log.info(
            "action already handled: nothing done",
            extra={"actionId": approved.action_id, "state": found.state},
        )
        return None

    async def _publish(self, *events: ActionExecuted | AuditRecorded) -> None:
        for event in events:
            if isinstance(event, ActionExecuted):
                await self.publisher.publish(
                    subjects.action_executed(event.chain_id), event, stream=streams.ACTIONS
                )
            else:
                await self.publisher.publish(subjects.audit(event.chain_id), event, stream=streams.AUDIT)

    # -------------------------------------------------------------------------------- the decision

    async def _execute(self, attempt: Attempt) -> Result:
        approved, started = attempt.approved, attempt.started
        refusal = logic.recheck(
            approved,
            self.policy,
            chains=self.chains,
            read_only=self.settings.read_only_mode,
            simulate=self.settings.simulation_mode,
            now=started,
            max_age_s=self.settings.max_approval_age_s,
        )
        if refusal is not None:
            return attempt.result("refused", refusal, audits=[("refused", refusal)])
        component = approved.action.target()
        if component is None:
            detail = "notification recorded"
            return attempt.result("succeeded", detail, audits=[("succeeded", detail)])
        cluster = self.clusters.get(approved.chain_id)
        if self.settings.simulation_mode:
            return await self._dry_run(attempt, cluster, component)
        assert cluster is not None  # recheck refuses a write to a chain without a kubeconfig
        held = await self._take_cooldown(attempt, component)
        if held is not None:
            return attempt.result("refused", held, audits=[("refused", held)])
        await self._publish(audit(approved, "executing", f"executing: {approved.action.summary()}"))
        return await self.patcher.act(attempt, cluster, component)

    async def _resume(self, attempt: Attempt, orphan: EffectRecord) -> Result:
        """Finish an orphan's patch: verify it (rolling back on failure) if it went in, else apply it."""
        assert orphan.previous is not None and orphan.patch is not None
        approved = attempt.approved
        component = approved.action.target()
        cluster = self.clusters.get(approved.chain_id)
        if component is None or cluster is None:
            raise RuntimeError(f"orphaned patch of {approved.action_id} without a component or cluster")
        workload = logic.workload_from_previous(orphan.previous)
        body: logic.Body = orphan.patch
        target = f"{workload.kind} {workload.namespace}/{workload.name}"
        live = await cluster.find(component)  # a failure leaves the record to the next redelivery
        who = f"executor {orphan.executor} stopped mid-action"
        if not logic.patch_landed(live, body):
            note = f"{who}; its patch of {target} had not gone in: applying it now"
            attempt.keeper.applied = False
            result = await self.patcher.act(attempt, cluster, component)
        else:
            note = f"{who}; its patch of {target} is in: verifying it again"
            async with self.feed.watch(approved.chain_id) as samples:
                result = await self.patcher.settle(
                    attempt, cluster, workload, body, samples,
                    timings={}, began=self.clock.monotonic(), details={"patch": body},
                )  # fmt: skip
        result.audits.insert(0, _recovered(approved, orphan, note))
        return result

    async def _dry_run(self, attempt: Attempt, cluster: Cluster | None, component: str) -> Result:
        approved = attempt.approved
        would = f"dry run (simulation mode): would {approved.action.summary()}"
        if cluster is None:
            detail = f"{would}; no kubeconfig to read the workload from"
            return attempt.result("dry_run", detail, audits=[("dry_run", detail)])
        try:
            workload = await cluster.find(component)
        except (KubeError, logic.WorkloadShapeError) as exc:
            detail = f"{would}; the workload could not be read: {exc}"
            return attempt.result("dry_run", detail, audits=[("dry_run", detail)])
        body = logic.patch_for(approved.action, workload, now=self.clock.now())
        detail = f"{would}: PATCH {workload.kind} {workload.namespace}/{workload.name} {json.dumps(body)}"
        return attempt.result(
            "dry_run",
            detail,
            previous=workload.previous(),
            audits=[("dry_run", detail)],
            details={"patch": body},
        )

    async def _take_cooldown(self, attempt: Attempt, component: str) -> str | None:
        """Take the component's cooldown lock; the reason to refuse if someone holds it."""
        approved, started = attempt.approved, attempt.started
        verdict = classify(approved.action, self.policy, incident=approved.incident)
        # The policy's cooldown is a floor: a message cannot shorten it.
        ttl = max(approved.cooldown_s, verdict.cooldown_s)
        if ttl <= 0:
            return None
        key = logic.cooldown_key(approved.chain_id, component)
        value = json.dumps({"actionId": approved.action_id, "at": started.timestamp()}).encode()
        if await self.store.create(key, value, ttl_s=ttl):
            return None
        raw = await self.store.get(key)
        holder: dict[str, Any] = json.loads(raw) if raw else {}
        if holder.get("actionId") == approved.action_id:
            return None  # our own lock, from an attempt that failed before it changed anything
        ago = started.timestamp() - float(holder.get("at", started.timestamp()))
        return f"cooldown: {component} was changed {ago:.0f}s ago (cooldown {ttl:.0f}s)"


def _recovered(approved: ActionApproved, orphan: EffectRecord, note: str) -> AuditRecorded:
    details = {"orphanedBy": orphan.executor}
    return audit(approved, "executing", f"recovered: {note}", details=details, key="recovered")

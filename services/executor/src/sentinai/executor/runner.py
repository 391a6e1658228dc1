"""One approved action, carried out at most once: re-check, cooldown, dry-run or act, verify, roll back."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from prometheus_client import Counter
from pydantic import AwareDatetime, BaseModel

from sentinai.common import streams, subjects
from sentinai.common.chains import ChainConfig
from sentinai.common.decisions import ActionApproved, ActionExecuted, AuditKind, AuditRecorded, Outcome
from sentinai.common.events import Event, utcnow
from sentinai.common.policy import Policy, classify
from sentinai.common.state import StateStore
from sentinai.common.streams import StreamSpec
from sentinai.executor import logic
from sentinai.executor.feed import SampleFeed, Samples
from sentinai.executor.kube import KubeError, KubeWriter
from sentinai.executor.settings import ExecutorSettings

log = logging.getLogger(__name__)
ACTOR = "executor"
_IDS = uuid.UUID("0b7c2c38-5c4e-4f0e-9a49-5e7f3c0a1d42")

EXECUTIONS = Counter(
    "sentinai_executor_actions_total", "Approved actions by outcome", ["chain", "kind", "outcome"]
)
DUPLICATES = Counter(
    "sentinai_executor_duplicates_total", "Approvals whose action already had an effect record", ["chain"]
)


class Publisher(Protocol):
    async def publish(self, subject: str, event: Event, *, stream: StreamSpec) -> None: ...


class EffectRecord(BaseModel):
    """``effects.<actionId>``: created before acting, so a second delivery or replica does nothing.

    ``done`` holds the events to publish; ``published`` means they are on the bus. A redelivery
    that finds ``done`` publishes them again under the same event ids (JetStream drops repeats).
    """

    state: Literal["executing", "done", "published"]
    executor: str
    started_at: AwareDatetime
    events: list[str] = []

    def dump(self) -> bytes:
        return self.model_dump_json().encode()


@dataclass
class Attempt:
    """Whether this attempt may already have changed the cluster (then it must never be retried)."""

    applied: bool = False


@dataclass
class Result:
    executed: ActionExecuted
    audits: list[AuditRecorded] = field(default_factory=list)


def event_id(action_id: str, what: str) -> str:
    """Deterministic, so the events of one action keep their ids however often they are published."""
    return uuid.uuid5(_IDS, f"{action_id}/{what}").hex


def _ms(since: float) -> float:
    return round((time.monotonic() - since) * 1000, 1)


class Executor:
    def __init__(
        self,
        *,
        settings: ExecutorSettings,
        policy: Policy,
        chains: Mapping[str, ChainConfig],
        clusters: Mapping[str, KubeWriter],
        store: StateStore,
        feed: SampleFeed,
        publisher: Publisher,
        instance: str,
    ) -> None:
        self.settings = settings
        self.policy = policy
        self.chains = chains
        self.clusters = clusters
        self.store = store
        self.feed = feed
        self.publisher = publisher
        self.instance = instance
        # Set at shutdown: a verification in progress is abandoned and its change rolled back.
        self.stopping = asyncio.Event()

    # ---------------------------------------------------------------------------------- the effect

    async def handle(self, approved: ActionApproved) -> ActionExecuted | None:
        """Carry out ``approved`` unless its effect record exists; ``None`` when it already did."""
        key = logic.effect_key(approved.action_id)
        started = utcnow()
        record = EffectRecord(state="executing", executor=self.instance, started_at=started)
        if not await self.store.create(key, record.dump(), ttl_s=self.settings.effect_ttl_s):
            await self._already_handled(key, approved)
            return None
        attempt = Attempt()
        try:
            result = await self._execute(approved, attempt, started=started)
        except BaseException:
            # Nothing applied yet: drop the record so the redelivery can try again. Once a patch may
            # have gone in, the record stays and no redelivery ever applies it a second time.
            if not attempt.applied:
                await self.store.delete(key)
            raise
        events: list[ActionExecuted | AuditRecorded] = [*result.audits, result.executed]
        done = record.model_copy(update={"state": "done", "events": [e.to_json().decode() for e in events]})
        await self.store.put(key, done.dump(), ttl_s=self.settings.effect_ttl_s)
        await self._publish(*events)
        await self.store.put(
            key, done.model_copy(update={"state": "published"}).dump(), ttl_s=self.settings.effect_ttl_s
        )
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

    async def _already_handled(self, key: str, approved: ActionApproved) -> None:
        DUPLICATES.labels(approved.chain_id).inc()
        raw = await self.store.get(key)
        record = EffectRecord.model_validate_json(raw) if raw else None
        if record is not None and record.state == "done":
            # The previous attempt decided but may not have published: publish again, same ids.
            await self._publish(*(_decode_event(text) for text in record.events))
            await self.store.put(
                key, record.model_copy(update={"state": "published"}).dump(), ttl_s=self.settings.effect_ttl_s
            )
        log.info(
            "action already handled: nothing done",
            extra={"actionId": approved.action_id, "state": record.state if record else "expired"},
        )

    async def _publish(self, *events: ActionExecuted | AuditRecorded) -> None:
        for event in events:
            if isinstance(event, ActionExecuted):
                await self.publisher.publish(
                    subjects.action_executed(event.chain_id), event, stream=streams.ACTIONS
                )
            else:
                await self.publisher.publish(subjects.audit(event.chain_id), event, stream=streams.AUDIT)

    # -------------------------------------------------------------------------------- the decision

    async def _execute(self, approved: ActionApproved, attempt: Attempt, *, started: datetime) -> Result:
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
            return self._result(approved, "refused", refusal, started=started, audits=[("refused", refusal)])
        component = approved.action.target()
        if component is None:
            detail = "notification recorded"
            return self._result(
                approved, "succeeded", detail, started=started, audits=[("succeeded", detail)]
            )
        cluster = self.clusters.get(approved.chain_id)
        if self.settings.simulation_mode:
            return await self._dry_run(approved, cluster, component, started=started)
        assert cluster is not None  # recheck refuses a write to a chain without a kubeconfig
        held = await self._take_cooldown(approved, component, started=started)
        if held is not None:
            return self._result(approved, "refused", held, started=started, audits=[("refused", held)])
        await self._publish(self._audit(approved, "executing", f"executing: {approved.action.summary()}"))
        return await self._act(approved, cluster, component, attempt, started=started)

    async def _dry_run(
        self, approved: ActionApproved, cluster: KubeWriter | None, component: str, *, started: datetime
    ) -> Result:
        would = f"dry run (simulation mode): would {approved.action.summary()}"
        if cluster is None:
            detail = f"{would}; no kubeconfig to read the workload from"
            return self._result(approved, "dry_run", detail, started=started, audits=[("dry_run", detail)])
        try:
            workload = await cluster.find(component)
        except (KubeError, logic.WorkloadShapeError) as exc:
            detail = f"{would}; the workload could not be read: {exc}"
            return self._result(approved, "dry_run", detail, started=started, audits=[("dry_run", detail)])
        body = logic.patch_for(approved.action, workload, now=utcnow())
        detail = f"{would}: PATCH {workload.kind} {workload.namespace}/{workload.name} {json.dumps(body)}"
        return self._result(
            approved,
            "dry_run",
            detail,
            started=started,
            previous=workload.previous(),
            audits=[("dry_run", detail)],
            details={"patch": body},
        )

    async def _take_cooldown(
        self, approved: ActionApproved, component: str, *, started: datetime
    ) -> str | None:
        """Take the component's cooldown lock; the reason to refuse if someone holds it."""
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

    async def _act(
        self,
        approved: ActionApproved,
        cluster: KubeWriter,
        component: str,
        attempt: Attempt,
        *,
        started: datetime,
    ) -> Result:
        timings: dict[str, float] = {}
        try:
            workload = await cluster.find(component)
        except (KubeError, logic.WorkloadShapeError) as exc:
            detail = f"nothing applied: cannot read the {component} workload: {exc}"
            return self._result(approved, "failed", detail, started=started, audits=[("failed", detail)])
        body = logic.patch_for(approved.action, workload, now=utcnow())
        if body is None:
            detail = f"nothing applied: no patch carries out {approved.action.kind}"
            return self._result(approved, "failed", detail, started=started, audits=[("failed", detail)])
        previous = workload.previous()
        target = f"{workload.kind} {workload.namespace}/{workload.name}"
        async with self.feed.watch(approved.chain_id) as samples:
            began = time.monotonic()
            attempt.applied = True
            try:
                await cluster.patch(workload, body)
            except KubeError as exc:
                timings["patch"] = _ms(began)
                undo = await self._undo(cluster, workload, body)
                detail = f"patch of {target} failed after retries: {exc}; {undo}"
                return self._result(
                    approved, "failed", detail, started=started, timings=timings, previous=previous,
                    audits=[("failed", detail)],
                )  # fmt: skip
            timings["patch"] = _ms(began)
            try:
                judgement = await self._verify(
                    approved, cluster, workload, samples, timings=timings, began=began
                )
            except Exception as exc:  # the change is in: whatever went wrong, it must not stay half-verified
                log.exception("verification could not run")
                judgement = logic.Judgement(False, f"verification could not run: {type(exc).__name__}: {exc}")
        details: dict[str, Any] = {"patch": body, "verification": judgement.reason}
        if judgement.passed:
            detail = f"{approved.action.summary()}: patched {target}, verified: {judgement.reason}"
            return self._result(
                approved, "succeeded", detail, started=started, timings=timings, previous=previous,
                audits=[("verified", judgement.reason), ("succeeded", detail)], details=details,
            )  # fmt: skip
        failed: tuple[AuditKind, str] = ("verification_failed", judgement.reason)
        rollback = logic.rollback_patch(workload, body)
        if rollback is None:
            detail = f"verification failed: {judgement.reason}; a restart cannot be rolled back"
            return self._result(
                approved, "failed", detail, started=started, timings=timings, previous=previous,
                audits=[failed, ("failed", detail)], details=details,
            )  # fmt: skip
        began = time.monotonic()
        try:
            await cluster.patch(workload, rollback)
        except KubeError as exc:
            detail = f"verification failed: {judgement.reason}; the rollback of {target} failed too: {exc}"
            return self._result(
                approved, "failed", detail, started=started, timings=timings, previous=previous,
                audits=[failed, ("failed", detail)], details=details | {"rollback": rollback},
            )  # fmt: skip
        timings["rollback"] = _ms(began)
        detail = f"verification failed: {judgement.reason}; {target} rolled back to the previous spec"
        return self._result(
            approved, "rolled_back", detail, started=started, timings=timings, previous=previous,
            audits=[failed, ("rolled_back", detail)], details=details | {"rollback": rollback},
        )  # fmt: skip

    async def _undo(self, cluster: KubeWriter, workload: logic.Workload, body: logic.Body) -> str:
        """After a failed patch that may have gone in anyway, re-apply the captured spec."""
        rollback = logic.rollback_patch(workload, body)
        if rollback is None:
            return "nothing to roll back"
        try:
            await cluster.patch(workload, rollback)
        except KubeError as exc:
            return f"re-applying the previous spec failed too: {exc}"
        return "previous spec re-applied"

    async def _verify(
        self,
        approved: ActionApproved,
        cluster: KubeWriter,
        workload: logic.Workload,
        samples: Samples,
        *,
        timings: dict[str, float],
        began: float,
    ) -> logic.Judgement:
        """Rollout ready, then the chain healthy again, within the window; checked as things arrive."""
        spec = approved.verify
        window = self.settings.verify_window_s or (
            spec.window_s if spec else self.settings.default_verify_window_s
        )
        block_time_s = self.chains[approved.chain_id].block_time_s
        deadline = time.monotonic() + window
        ready_at: datetime | None = None
        ready_mono = 0.0
        judgement = logic.Judgement(False, "rollout not checked yet")
        while True:
            if self.stopping.is_set():
                return logic.Judgement(False, "verification abandoned: the executor is stopping")
            if ready_at is None:
                rollout = logic.rollout_from_json(await cluster.read(workload.kind, workload.name))
                if rollout.ready:
                    ready_at, ready_mono = utcnow(), time.monotonic()
                    timings["rollout"] = _ms(began)
                else:
                    judgement = logic.Judgement(
                        False,
                        f"rollout not ready: {rollout.ready_replicas}/{rollout.replicas} replicas ready, "
                        f"generation {rollout.observed_generation}/{rollout.generation} observed",
                    )
            if ready_at is not None:
                judgement = logic.judge(
                    samples.items,
                    spec,
                    since=ready_at,
                    block_time_s=block_time_s,
                    consecutive=self.settings.verify_consecutive,
                    stall_block_times=self.settings.stall_block_times,
                )
                if judgement.passed:
                    timings["verify"] = _ms(ready_mono)
                    return judgement
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if ready_at is not None:
                    timings["verify"] = _ms(ready_mono)
                return logic.Judgement(False, f"not healthy within {window:g}s: {judgement.reason}")
            timeout = remaining if ready_at is not None else min(remaining, self.settings.verify_poll_s)
            await self._pause(samples, wait_s=timeout, for_sample=ready_at is not None)

    async def _pause(self, samples: Samples, *, wait_s: float, for_sample: bool) -> None:
        """Until the next sample (when judging health), the next poll, or shutdown."""
        samples.arrived.clear()
        waits = [asyncio.ensure_future(self.stopping.wait())]
        if for_sample:
            waits.append(asyncio.ensure_future(samples.arrived.wait()))
        try:
            await asyncio.wait(waits, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()

    # ------------------------------------------------------------------------------------ events

    def _audit(
        self,
        approved: ActionApproved,
        kind: AuditKind,
        summary: str,
        *,
        outcome: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> AuditRecorded:
        return AuditRecorded(
            event_id=event_id(approved.action_id, f"audit/{kind}"),
            correlation_id=approved.correlation_id,
            chain_id=approved.chain_id,
            kind=kind,
            actor=ACTOR,
            action_id=approved.action_id,
            summary=summary,
            reasoning=approved.reason,
            outcome=outcome,
            details=dict(details or {}),
        )

    def _result(
        self,
        approved: ActionApproved,
        outcome: Outcome,
        detail: str,
        *,
        started: datetime,
        audits: list[tuple[AuditKind, str]],
        timings: dict[str, float] | None = None,
        previous: dict[str, object] | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> Result:
        finished = utcnow()
        total = round((finished - started).total_seconds() * 1000, 1)
        executed = ActionExecuted(
            event_id=event_id(approved.action_id, "executed"),
            correlation_id=approved.correlation_id,
            chain_id=approved.chain_id,
            action_id=approved.action_id,
            action=approved.action,
            outcome=outcome,
            detail=detail,
            dry_run=outcome == "dry_run",
            started_at=started,
            finished_at=finished,
            timings_ms={**(timings or {}), "total": total},
            previous=previous,
        )
        return Result(
            executed=executed,
            audits=[
                self._audit(approved, kind, summary, outcome=outcome, details=details)
                for kind, summary in audits
            ],
        )


def _decode_event(text: str) -> ActionExecuted | AuditRecorded:
    data = json.loads(text)
    if "outcome" in data and "dryRun" in data:
        return ActionExecuted.model_validate(data)
    return AuditRecorded.model_validate(data)

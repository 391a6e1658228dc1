"""One approved action, carried out at most once: re-check, cooldown, dry-run or act, verify, roll back."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping
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
    While ``executing``, the holder refreshes ``beat_at``; just before it patches, it records the
    captured spec and the patch, so whoever finds the record orphaned (the holder was killed) can
    tell from the live workload whether the patch went in, and verify or redo it.
    """

    state: Literal["executing", "done", "published"]
    executor: str
    started_at: AwareDatetime
    beat_at: AwareDatetime | None = None
    events: list[str] = []
    previous: dict[str, Any] | None = None
    patch: dict[str, Any] | None = None

    def dump(self) -> bytes:
        return self.model_dump_json().encode()

    def silent_s(self, now: datetime) -> float:
        """Seconds since the holder last showed it was alive."""
        return (now - (self.beat_at or self.started_at)).total_seconds()


class Busy(RuntimeError):
    """Another executor is carrying out this action and is alive: ask again later."""


class _Keeper:
    """Keeps one action's effect record current while it runs: saved on change, refreshed on a beat."""

    def __init__(self, store: StateStore, key: str, record: EffectRecord, *, ttl_s: float) -> None:
        self.store = store
        self.key = key
        self.record = record
        self.ttl_s = ttl_s

    async def save(self, **update: Any) -> None:
        self.record = self.record.model_copy(update=update)
        await self.store.put(self.key, self.record.dump(), ttl_s=self.ttl_s)

    @contextlib.asynccontextmanager
    async def beating(self, every_s: float) -> AsyncIterator[None]:
        async def beat() -> None:
            while True:
                await asyncio.sleep(every_s)  # a heartbeat period, not a wait for a condition
                try:
                    await self.save(beat_at=utcnow())
                except Exception as exc:  # a missed beat only makes the record look older
                    log.warning("effect record heartbeat failed", extra={"error": f"{exc}"})

        task = asyncio.create_task(beat())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


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
        """Carry out ``approved`` unless its effect record exists; ``None`` when it already did.

        Raises ``Busy`` while another live executor holds the action.
        """
        key = logic.effect_key(approved.action_id)
        started = utcnow()
        record = EffectRecord(state="executing", executor=self.instance, started_at=started, beat_at=started)
        if not await self.store.create(key, record.dump(), ttl_s=self.settings.effect_ttl_s):
            return await self._already_handled(key, approved)
        return await self._run(approved, _Keeper(self.store, key, record, ttl_s=self.settings.effect_ttl_s))

    async def _run(
        self, approved: ActionApproved, keeper: _Keeper, *, orphan: EffectRecord | None = None
    ) -> ActionExecuted:
        started = utcnow()
        attempt = Attempt(applied=orphan is not None and orphan.patch is not None)
        try:
            async with keeper.beating(self.settings.beat_every_s):
                if orphan is not None and orphan.patch is not None:
                    result = await self._resume(approved, orphan, attempt, keeper, started=started)
                else:
                    result = await self._execute(approved, attempt, keeper, started=started)
                if orphan is not None and orphan.patch is None:
                    note = f"executor {orphan.executor} stopped before it changed anything: executed again"
                    result.audits.insert(0, self._recovered(approved, orphan, note))
        except BaseException:
            # Nothing applied yet: drop the record so the redelivery can try again. Once a patch may
            # have gone in, the record stays (with the patch) and only a recovery that looks at the
            # live workload ever touches the action again.
            if not attempt.applied:
                await self.store.delete(keeper.key)
            raise
        events: list[ActionExecuted | AuditRecorded] = [*result.audits, result.executed]
        await keeper.save(state="done", events=[e.to_json().decode() for e in events])
        await self._publish(*events)
        await keeper.save(state="published")
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

    async def _already_handled(self, key: str, approved: ActionApproved) -> ActionExecuted | None:
        DUPLICATES.labels(approved.chain_id).inc()
        raw = await self.store.get(key)
        record = EffectRecord.model_validate_json(raw) if raw else None
        if record is None:
            raise Busy(f"the effect record of {approved.action_id} was released while we looked")
        if record.state == "executing":
            silent = record.silent_s(utcnow())
            if silent <= self.settings.stale_after_s:
                raise Busy(
                    f"{record.executor} is executing {approved.action_id} ({silent:.0f}s since its beat)"
                )
            return await self._recover(key, approved, record, silent_s=silent)
        if record.state == "done":
            # The previous attempt decided but may not have published: publish again, same ids.
            await self._publish(*(_decode_event(text) for text in record.events))
            await self.store.put(
                key, record.model_copy(update={"state": "published"}).dump(), ttl_s=self.settings.effect_ttl_s
            )
        log.info(
            "action already handled: nothing done",
            extra={"actionId": approved.action_id, "state": record.state},
        )
        return None

    async def _recover(
        self, key: str, approved: ActionApproved, orphan: EffectRecord, *, silent_s: float
    ) -> ActionExecuted:
        """Take over an action whose executor died mid-way (its record stopped beating)."""
        # Of two executors finding the same orphan, one takes it; the other asks again later.
        claim = f"recovery.{key}"
        if not await self.store.create(claim, self.instance.encode(), ttl_s=self.settings.stale_after_s):
            raise Busy(f"another executor is recovering {approved.action_id}")
        log.warning(
            "recovering an orphaned action",
            extra={"actionId": approved.action_id, "executor": orphan.executor, "silentS": round(silent_s)},
        )
        mine = orphan.model_copy(update={"executor": self.instance, "beat_at": utcnow()})
        keeper = _Keeper(self.store, key, mine, ttl_s=self.settings.effect_ttl_s)
        await keeper.save()
        return await self._run(approved, keeper, orphan=orphan)

    async def _publish(self, *events: ActionExecuted | AuditRecorded) -> None:
        for event in events:
            if isinstance(event, ActionExecuted):
                await self.publisher.publish(
                    subjects.action_executed(event.chain_id), event, stream=streams.ACTIONS
                )
            else:
                await self.publisher.publish(subjects.audit(event.chain_id), event, stream=streams.AUDIT)

    # -------------------------------------------------------------------------------- the decision

    async def _execute(
        self, approved: ActionApproved, attempt: Attempt, keeper: _Keeper, *, started: datetime
    ) -> Result:
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
        return await self._act(approved, cluster, component, attempt, keeper, started=started)

    async def _resume(
        self,
        approved: ActionApproved,
        orphan: EffectRecord,
        attempt: Attempt,
        keeper: _Keeper,
        *,
        started: datetime,
    ) -> Result:
        """Finish an orphan's patch: verify it (rolling back on failure) if it went in, else apply it."""
        assert orphan.previous is not None and orphan.patch is not None
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
            attempt.applied = False
            result = await self._act(approved, cluster, component, attempt, keeper, started=started)
        else:
            note = f"{who}; its patch of {target} is in: verifying it again"
            async with self.feed.watch(approved.chain_id) as samples:
                result = await self._settle(
                    approved, cluster, workload, body, samples,
                    timings={}, began=time.monotonic(), started=started, details={"patch": body},
                )  # fmt: skip
        result.audits.insert(0, self._recovered(approved, orphan, note))
        return result

    def _recovered(self, approved: ActionApproved, orphan: EffectRecord, note: str) -> AuditRecorded:
        details = {"orphanedBy": orphan.executor}
        return self._audit(approved, "executing", f"recovered: {note}", details=details, key="recovered")

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
        keeper: _Keeper,
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
        retried: list[str] = []
        details: dict[str, Any] = {"patch": body}
        async with self.feed.watch(approved.chain_id) as samples:
            # Recorded before the patch leaves: if we die now, whoever recovers can compare.
            await keeper.save(previous=previous, patch=body)
            began = time.monotonic()
            attempt.applied = True
            try:
                await cluster.patch(workload, body, retried=retried)
            except KubeError as exc:
                timings["patch"] = _ms(began)
                undo = await self._undo(cluster, workload, body)
                detail = f"patch of {target} failed after {len(retried)} retried error(s): {exc}; {undo}"
                return self._result(
                    approved, "failed", detail, started=started, timings=timings, previous=previous,
                    audits=[("failed", detail)], details=details | {"retries": retried, "undo": undo},
                )  # fmt: skip
            timings["patch"] = _ms(began)
            if retried:
                details["retries"] = retried
            return await self._settle(
                approved, cluster, workload, body, samples,
                timings=timings, began=began, started=started, details=details,
            )  # fmt: skip

    async def _settle(
        self,
        approved: ActionApproved,
        cluster: KubeWriter,
        workload: logic.Workload,
        body: logic.Body,
        samples: Samples,
        *,
        timings: dict[str, float],
        began: float,
        started: datetime,
        details: dict[str, Any],
    ) -> Result:
        """The patch is in: verify it, and roll it back if the chain does not get healthy."""
        previous = workload.previous()
        target = f"{workload.kind} {workload.namespace}/{workload.name}"
        try:
            judgement = await self._verify(approved, cluster, workload, samples, timings=timings, began=began)
        except Exception as exc:  # the change is in: whatever went wrong, it must not stay half-verified
            log.exception("verification could not run")
            judgement = logic.Judgement(False, f"verification could not run: {type(exc).__name__}: {exc}")
        details = details | {"verification": judgement.reason}
        retries = len(details.get("retries", []))
        after = f" after {retries} retried error(s)" if retries else ""
        if judgement.passed:
            detail = f"{approved.action.summary()}: patched {target}{after}, verified: {judgement.reason}"
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
        rolled = time.monotonic()
        try:
            await cluster.patch(workload, rollback)
        except KubeError as exc:
            detail = f"verification failed: {judgement.reason}; the rollback of {target} failed too: {exc}"
            return self._result(
                approved, "failed", detail, started=started, timings=timings, previous=previous,
                audits=[failed, ("failed", detail)], details=details | {"rollback": rollback},
            )  # fmt: skip
        timings["rollback"] = _ms(rolled)
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
        key: str | None = None,
    ) -> AuditRecorded:
        return AuditRecorded(
            event_id=event_id(approved.action_id, f"audit/{key or kind}"),
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

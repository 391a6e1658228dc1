"""``Executor.handle`` on fakes of its ports: every recovery path, the refusals and the dry run.

No broker, no servers, no real time: the state store is a dict, the cluster one StatefulSet held as
the API's JSON, the feed a script of samples delivered as the fake clock moves, and every wait of
the executor advances that clock instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sentinai.common import catalog, streams, subjects
from sentinai.common.actions import Action, DeleteNamespace, ScaleCpu
from sentinai.common.chains import ChainConfig
from sentinai.common.decisions import ActionApproved, ActionExecuted, AuditRecorded
from sentinai.common.events import Event, MetricSample
from sentinai.common.policy import Tier, load_policy
from sentinai.common.streams import StreamSpec
from sentinai.devkit.memstore import MemoryStore
from sentinai.executor import logic
from sentinai.executor.effects import Busy, EffectRecord, Effects
from sentinai.executor.feed import Samples
from sentinai.executor.kube import KubeError
from sentinai.executor.service import Executor
from sentinai.executor.settings import ExecutorSettings

START = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
ACTION_ID = "act-0123456789abcdef"
KEY = logic.effect_key(ACTION_ID)
ME = "executor-1"
SETTINGS = ExecutorSettings(
    chains_file=Path("unused.yaml"), simulation_mode=False, read_only_mode=False, verify_window_s=20.0
)
CHAINS = {
    "opmain": ChainConfig(id="opmain", namespace="opmain", kubeconfig=Path("/etc/opmain.kubeconfig")),
    "nokube": ChainConfig(id="nokube", namespace="nokube"),
}
HEALTHY = [{catalog.BLOCK_HEIGHT: 100.0 + i, catalog.SECONDS_SINCE_HEAD: 1.0} for i in range(10)]
STUCK = [{catalog.BLOCK_HEIGHT: 100.0, catalog.SECONDS_SINCE_HEAD: 1.0 + i} for i in range(40)]


# ------------------------------------------------------------------------------------------- fakes


class Store(MemoryStore):
    """The shared in-memory store, reading the effect record under test."""

    def record(self) -> EffectRecord:
        return EffectRecord.model_validate_json(self.data[KEY])


class FakeClock:
    """Moves only when the executor waits: each wait advances it a second at a time."""

    step_s = 1.0

    def __init__(self) -> None:
        self.at = START
        self.mono = 1000.0
        self.ticks: list[Callable[[datetime], None]] = []

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)
        self.mono += seconds
        for tick in self.ticks:
            tick(self.at)

    async def sleep(self, seconds: float) -> None:
        await asyncio.Event().wait()  # heartbeats never come due within a test's instant

    async def wait_any(self, events: Sequence[asyncio.Event], *, timeout_s: float) -> None:
        deadline = self.mono + timeout_s
        while not any(event.is_set() for event in events) and self.mono < deadline:
            self.advance(min(self.step_s, deadline - self.mono))
        await asyncio.sleep(0)


class FakeFeed:
    """While a watch is open, each second of the clock delivers op-geth's next scripted sample."""

    def __init__(self, clock: FakeClock, script: Sequence[dict[str, float]]) -> None:
        self.script = list(script)
        self.open: list[tuple[str, Samples]] = []
        self.away = False  # the bus is unreachable: a watch cannot open
        clock.ticks.append(self._tick)

    def _tick(self, now: datetime) -> None:
        for chain_id, samples in self.open:
            if self.script:
                metrics = self.script.pop(0)
                samples.add(
                    MetricSample(
                        chain_id=chain_id, occurred_at=now, component="op-geth", source="rpc", metrics=metrics
                    )
                )

    @contextlib.asynccontextmanager
    async def watch(self, chain_id: str) -> AsyncIterator[Samples]:
        if self.away:
            raise ConnectionError("nats: no servers available")
        watched = (chain_id, Samples())
        self.open.append(watched)
        try:
            yield watched[1]
        finally:
            self.open.remove(watched)


class FakeCluster:
    """One StatefulSet, op-geth, held as the API's JSON; patches merge into it as the API would."""

    def __init__(self) -> None:
        self.resources: dict[str, dict[str, str]] = {"requests": {"cpu": "1", "memory": "4Gi"}}
        self.annotations: dict[str, str] = {}
        self.generation = 1
        self.writes: list[logic.Body] = []
        self.failures: list[KubeError | None] = []  # the outcome of each next patch, in order
        self.unreachable: KubeError | None = None  # raised by every read while set

    def spec(self) -> dict[str, Any]:
        container = {"name": "op-geth", "resources": self.resources}
        return {
            "kind": "StatefulSet",
            "metadata": {"name": "op-geth", "namespace": "opmain", "generation": self.generation},
            "spec": {
                "replicas": 1,
                "template": {
                    "metadata": {"annotations": self.annotations},
                    "spec": {"containers": [container]},
                },
            },
            "status": {"observedGeneration": self.generation, "readyReplicas": 1},
        }

    def workload(self) -> logic.Workload:
        return logic.workload_from_json(self.spec(), component="op-geth")

    def apply(self, body: logic.Body) -> None:
        template = body["spec"]["template"]
        self.annotations |= (template.get("metadata") or {}).get("annotations") or {}
        for container in (template.get("spec") or {}).get("containers") or []:
            for section, values in container.get("resources", {}).items():
                merged = self.resources.get(section, {}) | values
                self.resources[section] = {k: v for k, v in merged.items() if v is not None}
        self.generation += 1

    async def find(self, component: str) -> logic.Workload:
        if self.unreachable is not None:
            raise self.unreachable
        return logic.workload_from_json(self.spec(), component=component)

    async def read(self, kind: str, name: str) -> dict[str, Any]:
        return self.spec()

    async def patch(
        self, workload: logic.Workload, body: logic.Body, *, retried: list[str] | None = None
    ) -> dict[str, Any]:
        self.writes.append(body)
        failure = self.failures.pop(0) if self.failures else None
        if failure is not None:
            raise failure
        self.apply(body)
        return self.spec()


class FakePublisher:
    def __init__(self) -> None:
        self.published: list[tuple[str, Event]] = []
        self.fail_executed = 0  # how many ActionExecuted publishes fail before one goes through

    async def publish(self, subject: str, event: Event, *, stream: StreamSpec) -> None:
        if isinstance(event, ActionExecuted) and self.fail_executed:
            self.fail_executed -= 1
            raise ConnectionError("the bus went away")
        assert stream in (streams.ACTIONS, streams.AUDIT)
        self.published.append((subject, event))

    def executed(self) -> list[ActionExecuted]:
        return [e for _, e in self.published if isinstance(e, ActionExecuted)]

    def audits(self) -> list[AuditRecorded]:
        return [e for _, e in self.published if isinstance(e, AuditRecorded)]

    def story(self) -> list[str]:
        return [a.kind for a in self.audits()]


class World:
    """An executor on fakes, and the fakes to look at afterwards."""

    def __init__(self, *, script: Sequence[dict[str, float]] = HEALTHY, **settings: Any) -> None:
        self.clock = FakeClock()
        self.store = Store()
        self.cluster = FakeCluster()
        self.feed = FakeFeed(self.clock, script)
        self.publisher = FakePublisher()
        self.executor = Executor(
            settings=SETTINGS.model_copy(update=settings),
            policy=load_policy(),
            chains=CHAINS,
            clusters={"opmain": self.cluster},
            store=self.store,
            feed=self.feed,
            publisher=self.publisher,
            instance=ME,
            clock=self.clock,
        )

    def orphan(self, *, patched: bool, landed: bool = False, silent_s: float = 60.0) -> EffectRecord:
        """The record of an executor killed after recording its patch (``patched``), else before."""
        workload = self.cluster.workload()
        body = logic.patch_for(scale().action, workload, now=START)
        assert body is not None
        record = EffectRecord(
            state="executing",
            executor="executor-dead",
            started_at=START - timedelta(seconds=silent_s + 5),
            beat_at=START - timedelta(seconds=silent_s),
            previous=workload.previous() if patched else None,
            patch=body if patched else None,
        )
        self.store.data[KEY] = record.dump()
        if landed:
            self.cluster.apply(body)
        return record


def scale(
    action: Action | None = None,
    *,
    chain: str = "opmain",
    tier: Tier = "low",
    approvers: tuple[str, ...] = (),
) -> ActionApproved:
    return ActionApproved(
        chain_id=chain,
        occurred_at=START - timedelta(seconds=5),
        action_id=ACTION_ID,
        action=action or ScaleCpu(component="op-geth", vcpu=2),
        tier=tier,
        approvers=approvers,
        cooldown_s=300,
        reason="op-geth CPU saturated",
    )


def cpu(cluster: FakeCluster) -> tuple[str | None, str | None]:
    return cluster.resources["requests"].get("cpu"), cluster.resources.get("limits", {}).get("cpu")


# ------------------------------------------------------------------------------- the happy path


async def test_an_approved_scale_is_patched_verified_and_recorded_once() -> None:
    world = World()
    executed = await world.executor.handle(scale())
    assert executed is not None
    assert executed.outcome == "succeeded", executed.detail
    assert executed.detail.startswith("scale op-geth CPU to 2 vCPU: patched StatefulSet opmain/op-geth")
    assert len(world.cluster.writes) == 1 and cpu(world.cluster) == ("2", "2")
    assert world.publisher.story() == ["executing", "verified", "succeeded"]
    assert world.publisher.executed() == [executed]
    assert [s for s, _ in world.publisher.published] == ["audit.opmain"] * 3 + ["action.executed.opmain"]
    record = world.store.record()
    assert (record.state, record.executor, record.patch) == ("published", ME, world.cluster.writes[0])
    assert await world.store.keys("cooldown.") == ["cooldown.opmain.op-geth"]


# ----------------------------------------------------------------------- crash between patch and record


async def test_orphan_whose_patch_went_in_is_verified_not_patched_again() -> None:
    world = World()
    world.orphan(patched=True, landed=True)
    executed = await world.executor.handle(scale())
    assert executed is not None
    assert executed.outcome == "succeeded", executed.detail
    assert world.cluster.writes == []
    assert cpu(world.cluster) == ("2", "2")
    recovered, *rest = world.publisher.audits()
    assert recovered.summary == (
        "recovered: executor executor-dead stopped mid-action; "
        "its patch of StatefulSet opmain/op-geth is in: verifying it again"
    )
    assert recovered.details == {"orphanedBy": "executor-dead"}
    assert [a.kind for a in rest] == ["verified", "succeeded"]
    record = world.store.record()
    assert (record.state, record.executor) == ("published", ME)


async def test_orphan_whose_patch_did_not_go_in_is_patched_now() -> None:
    world = World()
    orphan = world.orphan(patched=True, landed=False)
    executed = await world.executor.handle(scale())
    assert executed is not None
    assert executed.outcome == "succeeded", executed.detail
    assert world.cluster.writes == [orphan.patch]
    assert cpu(world.cluster) == ("2", "2")
    assert world.publisher.audits()[0].summary.endswith("had not gone in: applying it now")
    assert world.publisher.story() == ["executing", "verified", "succeeded"]
    assert world.store.record().state == "published"


async def test_orphan_that_stopped_before_patching_is_executed_again_through_its_own_cooldown() -> None:
    world = World()
    world.orphan(patched=False)
    # The dead executor took the cooldown lock before it died: that lock is the action's own.
    lock = json.dumps({"actionId": ACTION_ID, "at": START.timestamp() - 60}).encode()
    world.store.data["cooldown.opmain.op-geth"] = lock
    executed = await world.executor.handle(scale())
    assert executed is not None
    assert executed.outcome == "succeeded", executed.detail
    assert len(world.cluster.writes) == 1
    # "executing" goes out as the patch starts; the recovery note heads the final events.
    assert [a.summary for a in world.publisher.audits()[:2]] == [
        "executing: scale op-geth CPU to 2 vCPU",
        "recovered: executor executor-dead stopped before it changed anything: executed again",
    ]
    assert world.publisher.story() == ["executing", "executing", "verified", "succeeded"]


async def test_failing_recovery_read_keeps_the_record_for_the_next_delivery() -> None:
    world = World()
    orphan = world.orphan(patched=True, landed=True)
    world.cluster.unreachable = KubeError("read StatefulSet opmain/op-geth: HTTP 503", status=503)
    with pytest.raises(KubeError):
        await world.executor.handle(scale())
    record = world.store.record()
    assert (record.state, record.patch, record.executor) == ("executing", orphan.patch, ME)
    assert world.cluster.writes == [] and world.publisher.published == []


# ----------------------------------------------------------------------------------- redeliveries


async def test_redelivery_after_done_publishes_the_same_events_again_and_acts_zero_times() -> None:
    world = World()
    world.publisher.fail_executed = 1  # decided and recorded, then the bus went away
    with pytest.raises(ConnectionError):
        await world.executor.handle(scale())
    record = world.store.record()
    assert record.state == "done"
    first = {a.kind: a.event_id for a in world.publisher.audits()}
    world.publisher.published.clear()

    assert await world.executor.handle(scale()) is None
    again = [event for _, event in world.publisher.published]
    assert [e.event_id for e in again] == [e.event_id for e in record.decoded_events()]
    assert [type(e).__name__ for e in again] == ["AuditRecorded", "AuditRecorded", "ActionExecuted"]
    assert {a.kind: a.event_id for a in world.publisher.audits()} == {
        k: first[k] for k in ("verified", "succeeded")
    }
    assert len(world.cluster.writes) == 1
    assert world.store.record().state == "published"


async def test_redelivery_after_published_does_nothing() -> None:
    world = World()
    assert await world.executor.handle(scale()) is not None
    world.publisher.published.clear()
    before = world.store.data[KEY]
    assert await world.executor.handle(scale()) is None
    assert world.publisher.published == []
    assert len(world.cluster.writes) == 1
    assert world.store.data[KEY] == before


async def test_failure_before_anything_was_applied_releases_the_record_for_a_redelivery() -> None:
    world = World()
    world.feed.away = True
    with pytest.raises(ConnectionError):
        await world.executor.handle(scale())
    assert KEY not in world.store.data and world.cluster.writes == []
    world.feed.away = False
    executed = await world.executor.handle(scale())
    assert executed is not None
    assert executed.outcome == "succeeded", executed.detail
    assert len(world.cluster.writes) == 1


async def test_live_holder_makes_the_delivery_busy() -> None:
    world = World()
    held = world.orphan(patched=True, silent_s=5.0)  # beat 5 s ago: alive
    with pytest.raises(Busy, match=r"executor-dead is executing act-0123456789abcdef \(5s since its beat\)"):
        await world.executor.handle(scale())
    assert world.store.record() == held
    assert world.cluster.writes == [] and world.publisher.published == []


async def test_orphan_another_executor_is_recovering_makes_the_delivery_busy() -> None:
    world = World()
    held = world.orphan(patched=True)
    world.store.data[f"recovery.{KEY}"] = b"executor-2"
    with pytest.raises(Busy, match="another executor is recovering"):
        await world.executor.handle(scale())
    assert world.store.record() == held
    assert world.cluster.writes == [] and world.publisher.published == []


async def test_record_beats_while_its_action_runs() -> None:
    class BeatingClock(FakeClock):
        async def sleep(self, seconds: float) -> None:
            self.advance(seconds)
            await asyncio.sleep(0)

    clock = BeatingClock()
    store = Store()
    effects = Effects(store, instance=ME, ttl_s=60.0, stale_after_s=20.0, clock=clock)
    keeper = await effects.claim(ACTION_ID)
    assert keeper is not None
    beats: list[datetime | None] = []
    async with keeper.holding(every_s=10.0):
        for _ in range(100):
            await asyncio.sleep(0)
            if store.record().beat_at != (beats or [START])[-1]:
                beats.append(store.record().beat_at)
            if len(beats) == 3:
                break
    assert beats == [START + timedelta(seconds=s) for s in (10, 20, 30)]
    assert store.record().state == "executing"  # nothing failed: the record stays


# ------------------------------------------------------------------------------- verify and undo


async def test_verify_timeout_rolls_back_and_reports_a_failed_verification() -> None:
    world = World(script=STUCK)
    executed = await world.executor.handle(scale())
    assert executed is not None and executed.outcome == "rolled_back"
    assert "not healthy within 20s: blocks not advancing: op-geth head stuck at 100" in executed.detail
    forward, rollback = world.cluster.writes
    assert rollback == logic.rollback_patch(logic.workload_from_previous(executed.previous or {}), forward)
    assert cpu(world.cluster) == ("1", None)  # the limit the scale added is gone too
    assert world.publisher.story() == ["executing", "verification_failed", "rolled_back"]
    assert {"patch", "rollout", "verify", "rollback", "total"} <= set(executed.timings_ms)


async def test_rollback_failure_is_reported_with_the_rollback_in_the_audit_record() -> None:
    world = World(script=STUCK)
    world.cluster.failures = [None, KubeError("patch StatefulSet opmain/op-geth: HTTP 500", status=500)]
    executed = await world.executor.handle(scale())
    assert executed is not None and executed.outcome == "failed"
    assert "the rollback of StatefulSet opmain/op-geth failed too: patch StatefulSet" in executed.detail
    assert cpu(world.cluster) == ("2", "2")
    assert world.publisher.story() == ["executing", "verification_failed", "failed"]
    failed = world.publisher.audits()[-1]
    assert failed.outcome == "failed" and failed.details["rollback"] == world.cluster.writes[1]
    record = world.store.record()
    assert record.state == "published" and any('"rollback"' in text for text in record.events)


async def test_failed_patch_is_undone() -> None:
    world = World()
    world.cluster.failures = [KubeError("patch StatefulSet opmain/op-geth: HTTP 422", status=422)]
    executed = await world.executor.handle(scale())
    assert executed is not None and executed.outcome == "failed"
    assert executed.detail.endswith("HTTP 422; previous spec re-applied")
    assert len(world.cluster.writes) == 2 and cpu(world.cluster) == ("1", None)
    assert world.store.record().state == "published"


async def test_stopping_mid_verification_rolls_back() -> None:
    world = World(script=[])
    world.executor.stopping.set()
    executed = await world.executor.handle(scale())
    assert executed is not None and executed.outcome == "rolled_back"
    assert "verification abandoned: the executor is stopping" in executed.detail
    assert cpu(world.cluster) == ("1", None)


# --------------------------------------------------------------------------- dry run and refusals


async def test_dry_run_writes_nothing() -> None:
    world = World(simulation_mode=True)
    executed = await world.executor.handle(scale())
    assert executed is not None and executed.outcome == "dry_run" and executed.dry_run
    assert executed.detail.startswith(
        "dry run (simulation mode): would scale op-geth CPU to 2 vCPU: PATCH StatefulSet opmain/op-geth {"
    )
    assert world.cluster.writes == [] and world.cluster.generation == 1
    assert world.publisher.story() == ["dry_run"]
    assert await world.store.keys("cooldown.") == []


@pytest.mark.parametrize(
    ("approved", "settings", "refusal"),
    [
        pytest.param(scale(), {"read_only_mode": True}, "read-only mode", id="read-only"),
        pytest.param(scale(chain="nokube"), {}, "chain 'nokube' has no kubeconfig", id="no-credential"),
        pytest.param(
            scale(DeleteNamespace(namespace="opmain"), tier="critical", approvers=("alice", "bob")),
            {},
            "forbidden: namespace-wide deletion",
            id="forbidden",
        ),
    ],
)
async def test_refused_actions_touch_nothing(
    approved: ActionApproved, settings: dict[str, Any], refusal: str
) -> None:
    world = World(**settings)
    executed = await world.executor.handle(approved)
    assert executed is not None and executed.outcome == "refused"
    assert refusal in executed.detail
    assert world.cluster.writes == []
    assert world.publisher.story() == ["refused"]
    assert world.publisher.published[-1][0] == subjects.action_executed(approved.chain_id)
    assert await world.store.keys("cooldown.") == []


async def test_cooldown_held_by_another_action_refuses() -> None:
    world = World()
    lock = json.dumps({"actionId": "act-other", "at": START.timestamp() - 30}).encode()
    world.store.data["cooldown.opmain.op-geth"] = lock
    executed = await world.executor.handle(scale())
    assert executed is not None and executed.outcome == "refused"
    assert executed.detail == "cooldown: op-geth was changed 30s ago (cooldown 300s)"
    assert world.cluster.writes == []

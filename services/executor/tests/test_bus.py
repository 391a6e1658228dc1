"""Wiring in memory (TestNatsBroker) with the state in a real redis-server: decode, decide, publish, ack.

Cluster writes run against the twin in ``test_integration``; here simulation mode keeps to dry runs
and refusals, which need no cluster.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from faststream.nats import TestNatsBroker
from prometheus_client import REGISTRY

from sentinai.common import streams, subjects
from sentinai.common.actions import Notify, ScaleCpu
from sentinai.common.bus import BrokerPublisher, build_broker
from sentinai.common.chains import ChainConfig
from sentinai.common.decisions import ActionApproved, ActionExecuted, AuditRecorded
from sentinai.common.events import DeadLetter, utcnow
from sentinai.common.policy import load_policy
from sentinai.common.state import RedisStateStore
from sentinai.devkit.spy import Spy
from sentinai.executor import bus, logic
from sentinai.executor.effects import EffectRecord
from sentinai.executor.feed import SampleFeed
from sentinai.executor.service import Executor
from sentinai.executor.settings import ExecutorSettings

SETTINGS = ExecutorSettings(chains_file=Path("unused.yaml"))
CHAINS = {"opmain": ChainConfig(id="opmain", namespace="opmain")}


class Wired:
    def __init__(self, store: RedisStateStore, settings: ExecutorSettings) -> None:
        self.broker = build_broker(settings)
        self.executor = Executor(
            settings=settings,
            policy=load_policy(),
            chains=CHAINS,
            clusters={},
            store=store,
            feed=SampleFeed(lambda: self.broker.connection),
            publisher=BrokerPublisher(self.broker),
            instance="test",
        )
        bus.subscribe(self.broker, self.executor, settings=settings, inflight=bus.Inflight())
        self.executed = Spy().attach(self.broker, subjects.ACTION_EXECUTED_ALL, streams.ACTIONS)
        self.audits = Spy().attach(self.broker, subjects.AUDIT_ALL, streams.AUDIT)
        self.dead = Spy().attach(self.broker, subjects.dead_letter(bus.SERVICE), streams.DEAD_LETTER)

    def outcomes(self) -> list[ActionExecuted]:
        return self.executed.events(ActionExecuted)

    def story(self) -> list[str]:
        return [audit.kind for audit in self.audits.events(AuditRecorded)]


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[RedisStateStore]:
    store = RedisStateStore.from_url(redis_url)
    try:
        yield store
    finally:
        await store.close()


def handed_back(cause: str) -> float:
    """Approvals the executor has handed back for a later delivery, for ``cause``."""
    labels = {"service": "executor", "kind": "action_approved", "reason": cause}
    return REGISTRY.get_sample_value("sentinai_redeliveries_total", labels) or 0.0


def scale(action_id: str = "a1", *, chain: str = "opmain") -> ActionApproved:
    return ActionApproved(
        chain_id=chain,
        action_id=action_id,
        action=ScaleCpu(component="op-geth", vcpu=2),
        tier="low",
        cooldown_s=300,
        reason="op-geth CPU saturated",
    )


async def test_simulation_mode_records_a_dry_run_and_no_cooldown(store: RedisStateStore) -> None:
    wired = Wired(store, SETTINGS)
    async with TestNatsBroker(wired.broker) as broker:
        await broker.publish(scale().to_json(), subjects.action_approved("opmain"))
    [executed] = wired.outcomes()
    assert executed.outcome == "dry_run" and executed.dry_run
    assert executed.detail.startswith("dry run (simulation mode): would scale op-geth CPU to 2 vCPU")
    assert wired.story() == ["dry_run"]
    assert await store.keys("cooldown.") == []
    assert await store.keys("effects.") == ["effects.a1"]


async def test_same_action_twice_is_executed_once(store: RedisStateStore) -> None:
    wired = Wired(store, SETTINGS)
    first = scale()
    again = first.model_copy(update={"event_id": "another"})
    async with TestNatsBroker(wired.broker) as broker:
        await broker.publish(first.to_json(), subjects.action_approved("opmain"))
        await broker.publish(again.to_json(), subjects.action_approved("opmain"))
    assert [e.outcome for e in wired.outcomes()] == ["dry_run"]


async def test_unknown_chain_is_refused_and_recorded(store: RedisStateStore) -> None:
    wired = Wired(store, SETTINGS)
    async with TestNatsBroker(wired.broker) as broker:
        await broker.publish(scale(chain="ghost").to_json(), subjects.action_approved("ghost"))
    [executed] = wired.outcomes()
    assert (executed.outcome, executed.chain_id) == ("refused", "ghost")
    assert "unknown chain 'ghost'" in executed.detail
    assert wired.story() == ["refused"]


async def test_notify_is_recorded_without_touching_a_cluster(store: RedisStateStore) -> None:
    wired = Wired(store, SETTINGS.model_copy(update={"simulation_mode": False}))
    approved = scale().model_copy(update={"action": Notify(severity="high", text="fund the batcher key")})
    async with TestNatsBroker(wired.broker) as broker:
        await broker.publish(approved.to_json(), subjects.action_approved("opmain"))
    [executed] = wired.outcomes()
    assert (executed.outcome, executed.detail) == ("succeeded", "notification recorded")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"not json", id="not-json"),
        pytest.param(b'{"chainId": "opmain", "actionId": "x"}', id="missing-fields"),
        pytest.param(
            scale().to_json().replace(b'"scale_cpu"', b'"scale_to_zero"'), id="action-outside-the-catalogue"
        ),
    ],
)
async def test_malformed_approval_is_dead_lettered_and_nothing_runs(
    store: RedisStateStore, body: bytes
) -> None:
    wired = Wired(store, SETTINGS)
    async with TestNatsBroker(wired.broker) as broker:
        await broker.publish(body, subjects.action_approved("opmain"))
    [letter] = wired.dead.events(DeadLetter)
    assert letter.service == "executor" and letter.subject == "action.approved.opmain"
    assert "invalid ActionApproved" in letter.reason
    assert wired.outcomes() == []
    assert await store.keys("effects.") == []


async def test_approval_held_by_a_live_executor_is_handed_back_not_dead_lettered(
    store: RedisStateStore,
) -> None:
    wired = Wired(store, SETTINGS)
    retried = handed_back("retry")
    now = utcnow()
    held = EffectRecord(state="executing", executor="elsewhere", started_at=now, beat_at=now)
    await store.put(logic.effect_key("a1"), held.dump())
    async with TestNatsBroker(wired.broker) as broker:
        await broker.publish(scale().to_json(), subjects.action_approved("opmain"))
    assert wired.outcomes() == [] and wired.dead.bodies == []
    assert handed_back("retry") == retried + 1
    assert await store.get(logic.effect_key("a1")) == held.dump()


async def test_a_stopping_executor_hands_approvals_back_untouched(store: RedisStateStore) -> None:
    wired = Wired(store, SETTINGS)
    retried = handed_back("retry")
    wired.executor.stopping.set()
    async with TestNatsBroker(wired.broker) as broker:
        await broker.publish(scale().to_json(), subjects.action_approved("opmain"))
    assert wired.outcomes() == [] and wired.dead.bodies == []
    assert handed_back("retry") == retried + 1
    assert await store.keys("effects.") == []

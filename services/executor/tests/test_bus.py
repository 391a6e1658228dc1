"""Wiring in memory (TestNatsBroker) with the state in a real redis-server: decode, decide, publish, ack.

Cluster writes run against the twin in ``test_integration``; here simulation mode keeps to dry runs
and refusals, which need no cluster.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from faststream.nats import NatsBroker, NatsMessage, TestNatsBroker

from sentinai.common import streams, subjects
from sentinai.common.actions import Notify, ScaleCpu
from sentinai.common.bus import build_broker
from sentinai.common.chains import ChainConfig
from sentinai.common.decisions import ActionApproved, ActionExecuted, AuditRecorded
from sentinai.common.events import DeadLetter
from sentinai.common.policy import load_policy
from sentinai.common.state import RedisStateStore
from sentinai.executor import bus
from sentinai.executor.feed import SampleFeed
from sentinai.executor.runner import Executor
from sentinai.executor.settings import ExecutorSettings

SETTINGS = ExecutorSettings(chains_file=Path("unused.yaml"))
CHAINS = {"opmain": ChainConfig(id="opmain", namespace="opmain")}


class Spy:
    def __init__(self, broker: NatsBroker, subject: str, stream: streams.StreamSpec) -> None:
        self.bodies: list[bytes] = []

        @broker.subscriber(subject, stream=stream.ref())
        async def spy(msg: NatsMessage) -> None:
            self.bodies.append(msg.body)


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
            publisher=bus.BusPublisher(self.broker),
            instance="test",
        )
        bus.subscribe(self.broker, self.executor, settings=settings, inflight=bus.Inflight())
        self.executed = Spy(self.broker, subjects.ACTION_EXECUTED_ALL, streams.ACTIONS)
        self.audits = Spy(self.broker, subjects.AUDIT_ALL, streams.AUDIT)
        self.dead = Spy(self.broker, subjects.dead_letter(bus.SERVICE), streams.DEAD_LETTER)

    def outcomes(self) -> list[ActionExecuted]:
        return [ActionExecuted.model_validate_json(body) for body in self.executed.bodies]

    def story(self) -> list[str]:
        return [AuditRecorded.model_validate_json(body).kind for body in self.audits.bodies]


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[RedisStateStore]:
    store = RedisStateStore.from_url(redis_url)
    try:
        yield store
    finally:
        await store.close()


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
    [letter] = [DeadLetter.model_validate_json(b) for b in wired.dead.bodies]
    assert letter.service == "executor" and letter.subject == "action.approved.opmain"
    assert "invalid ActionApproved" in letter.reason
    assert wired.outcomes() == []
    assert await store.keys("effects.") == []

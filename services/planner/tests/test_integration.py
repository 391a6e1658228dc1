"""The planner app on a real nats-server with NATS KV state.

The operator's path (the `sentinai` CLI through the api) is tested in tools/cli/tests/test_actions_cli.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import nats
import pytest
from busready import running_planner
from nats.aio.client import Client as NatsClient

from sentinai.common import streams, subjects
from sentinai.common.decisions import (
    ActionCommand,
    ActionVerdict,
    Corroboration,
    IncidentResolved,
    RcaCompleted,
)
from sentinai.common.incidents import RootCauseClass
from sentinai.common.settings import ServiceSettings
from sentinai.common.state import open_state_store
from sentinai.devkit.natsserver import EmbeddedNats
from sentinai.devkit.waits import eventually
from sentinai.planner.records import Records

CHAIN = "itest"
pytestmark = pytest.mark.integration


def rca(cause: RootCauseClass, episode: str) -> RcaCompleted:
    return RcaCompleted(
        chain_id=CHAIN,
        episode_id=episode,
        anomaly_event_id=f"an-{episode}",
        root_cause=f"diagnosed {cause}",
        root_cause_class=cause,
        affected_components=("op-node",),
        risk_level="high",
        action_plan="act",
        confidence=0.9,
        engine="rules",
        latency_ms=3.0,
        corroboration=Corroboration(
            polls=3, required_polls=3, proposal_met=True, auto_met=True, status="corroborated: 3 of 3 polls"
        ),
    )


@asynccontextmanager
async def planner_records(nc: NatsClient) -> AsyncIterator[Records]:
    """The planner's records, read from the state store as any other reader would."""
    store = await open_state_store(nc=nc, redis_url=None, bucket=ServiceSettings().kv_bucket)
    try:
        yield Records(store)
    finally:
        await store.close()


async def test_a_resolved_incident_withdraws_its_waiting_remedy_on_a_real_server(
    nats_server: EmbeddedNats, monkeypatch: pytest.MonkeyPatch
) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        async with running_planner(nats_server.url, monkeypatch), planner_records(nc) as records:
            js = nc.jetstream()
            stall = rca("sequencer_stall", "inc-over")
            await js.publish(subjects.rca_completed(CHAIN), stall.to_json(), stream=streams.EVENTS.name)

            async def waiting() -> bool:
                return bool(await records.pending_ids())

            await eventually(waiting, timeout_s=15, what="the remedy waiting for approval")
            [action_id] = await records.pending_ids()
            over = IncidentResolved(
                chain_id=CHAIN,
                incident_id="inc-over",
                resolved_at=stall.occurred_at,
                reason="blocks flow again",
            )
            ack = await js.publish(
                subjects.incident_resolved(CHAIN), over.to_json(), stream=streams.EVENTS.name
            )
            assert ack.stream == streams.EVENTS.name

            async def withdrawn() -> bool:
                return (await records.ledger(action_id)).decision == "withdrawn"

            await eventually(withdrawn, timeout_s=15, what="the remedy withdrawn")
            assert await records.pending_ids() == []

            # A late approval is refused, saying why (the api and the CLI pass this verdict on).
            late = ActionCommand(chain_id=CHAIN, action_id=action_id, command="approve", by="alice")
            verdicts = await nc.subscribe(subjects.action_verdict(CHAIN, late.event_id))
            await js.publish(subjects.action_command(CHAIN), late.to_json(), stream=streams.ACTIONS.name)
            verdict = ActionVerdict.model_validate_json((await verdicts.next_msg(timeout=15)).data)
            assert (verdict.accepted, verdict.code) == (False, "withdrawn")
            assert "incident resolved: blocks flow again" in verdict.reason

            async def audited() -> bool:
                return any(
                    "incident resolved: blocks flow again" in r.reasoning
                    for r in await records.recent_audit()
                )

            await eventually(audited, timeout_s=15, what="the withdrawal in the recent audit")
    finally:
        await nc.close()

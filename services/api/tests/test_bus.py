"""The api's consumers fold bus events into the read model; malformed ones are dead-lettered.

Samples are handed to the pull loop's handler as a fetch returns them; the loop itself runs on a
real nats-server in the integration tests. Commands go to a real nats-server (the planner's
verdicts on them: ``test_verdicts.py``).
"""

from __future__ import annotations

import time

from faststream.nats import TestNatsBroker
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy

from sentinai.api import bus
from sentinai.api.commands import BusCommands
from sentinai.api.readmodel import ReadModel
from sentinai.api.settings import ApiSettings
from sentinai.common import streams, subjects
from sentinai.common.bus import build_broker, start_broker
from sentinai.common.decisions import ActionCommand
from sentinai.common.events import AnomalyDetected, DeadLetter, MetricSample
from sentinai.devkit.natsserver import EmbeddedNats
from sentinai.devkit.spy import Spy


async def test_samples_and_anomalies_reach_the_read_model_and_garbage_goes_to_dead_letter() -> None:
    model = ReadModel(keep_anomalies=10)
    wiring = bus.build(ApiSettings(), model)
    broker = wiring.broker
    letters = Spy().attach(broker, subjects.dead_letter(bus.SERVICE), streams.DEAD_LETTER)

    async with TestNatsBroker(broker) as test_broker:
        sample = MetricSample(chain_id="twin", component="op-geth", source="rpc", metrics={"blockHeight": 5})
        await wiring.samples.handle(
            [fetched(b"{not json", seq=7), fetched(sample.to_json(), seq=8)]  # as one fetch returns them
        )
        anomaly = AnomalyDetected(
            chain_id="twin",
            component="op-geth",
            metric="cpuUsage",
            value=95,
            z_score=3.0,
            direction="up",
            severity="medium",
            description="CPU spike detected: 95.0% (3.0σ above baseline)",
            rule="zscore",
        )
        await test_broker.publish(anomaly.to_json(), subjects.anomaly_detected("twin"))
        await test_broker.publish(b'{"chainId":"twin"}', subjects.anomaly_detected("twin"))
        # The planner's input is not the read model's: not even read, so never dead-lettered here.
        await test_broker.publish(b"{not a command", subjects.action_command("twin"))

    assert model.metrics("twin")["metrics"]["blockHeight"] == 5
    assert [a["eventId"] for a in model.anomalies(chain="twin", active_only=True, limit=5)] == [
        anomaly.event_id
    ]
    dead = letters.events(DeadLetter)
    assert [d.subject for d in dead] == ["metrics.raw.twin.op-geth", "anomaly.detected.twin"]
    assert "invalid MetricSample" in dead[0].reason and "invalid AnomalyDetected" in dead[1].reason


def fetched(body: bytes, *, seq: int) -> Msg:
    """A sample as the pull loop's fetch returns it (stream sequence ``seq``)."""
    reply = f"$JS.ACK.TELEMETRY.api-test.1.{seq}.{seq}.1795765482887460078.0"
    return Msg(_client=None, subject=subjects.metrics_raw("twin", "op-geth"), data=body, reply=reply)  # type: ignore[arg-type]


async def test_a_dropped_samples_consumer_is_recreated_after_the_last_sample_seen() -> None:
    model = ReadModel(keep_anomalies=10)
    wiring = bus.build(ApiSettings(), model)
    assert wiring.consumer.opt_start_time is not None  # a new replica starts at the chart window
    sample = MetricSample(chain_id="twin", component="op-geth", source="rpc", metrics={"blockHeight": 5})
    async with TestNatsBroker(wiring.broker):
        await wiring.samples.handle([fetched(sample.to_json(), seq=41)])
    assert wiring.samples.recreate is not None
    again = wiring.samples.recreate()
    assert (again.name, again.deliver_policy, again.opt_start_seq) == (
        wiring.samples.durable,
        DeliverPolicy.BY_START_SEQUENCE,
        42,
    )


async def test_with_no_planner_answering_a_command_waits_its_timeout_and_stays_on_the_stream(
    nats_server: EmbeddedNats,
) -> None:
    broker = build_broker(ApiSettings(nats_url=nats_server.url))
    await start_broker(broker)
    try:
        commands = BusCommands(broker, timeout_s=0.5)
        cmd = ActionCommand(chain_id="twin", action_id="act-1", command="approve", by="alice")
        started = time.monotonic()
        verdict = await commands.command(cmd)
        waited = time.monotonic() - started
        stored = await broker.config.connection_state.stream.get_last_msg(
            streams.ACTIONS.name, subjects.action_command("twin")
        )
    finally:
        await broker.stop()
    assert verdict is None and 0.5 <= waited < 3
    # Not lost: the planner judges it when it is back.
    assert ActionCommand.model_validate_json(stored.data or b"").event_id == cmd.event_id

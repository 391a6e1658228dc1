"""Least privilege on the bus: a real nats-server with the generated users, each held to its permissions.

The server runs the config `sentinai up` writes (``natsauth.server_config``); the admin provisions the
streams and the KV bucket as `sentinai up` and the Kubernetes Job do; each client connects with a
user's credentials file and tries what that user must, and must not, be able to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js.api import ConsumerConfig
from nats.js.errors import KeyNotFoundError, NotFoundError

from sentinai.common import natsauth, streams, subjects
from sentinai.common.bus import build_broker
from sentinai.common.settings import ServiceSettings
from sentinai.common.state import NatsKvStateStore
from sentinai.devkit.natsserver import EmbeddedNats
from sentinai.devkit.waits import eventually
from sentinai.executor import logic as executor_logic
from sentinai.planner import records as planner_records

pytestmark = pytest.mark.integration
BUCKET = "sentinai"
# How long a denied JetStream request waits before giving up (the server drops it silently).
DENIED_WAIT_S = 1.0


@dataclass
class Secured:
    server: EmbeddedNats
    auth: Path

    def creds(self, user: str) -> Path:
        return natsauth.creds_file(self.auth, user)


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[Secured]:
    auth = tmp_path / "auth"
    users = natsauth.generate(auth, bucket=BUCKET)
    path = natsauth.write_config(auth / natsauth.SERVER_CONFIG, natsauth.server_config(users, bucket=BUCKET))
    server = EmbeddedNats(data_dir=tmp_path / "nats", log_file=tmp_path / "nats.log", config_file=path)
    server.start()
    try:
        admin = natsauth.creds_file(auth, "admin")
        asyncio.run(natsauth.provision(server.url, creds=admin, bucket=BUCKET, timeout_s=30))
        yield Secured(server, auth)
    finally:
        server.stop()


@dataclass
class Client:
    """A connection as one user, with the asynchronous errors the server sent it."""

    nc: NatsClient
    errors: list[str] = field(default_factory=list)

    async def violation(self, subject: str, *, subscribe: bool = False, timeout_s: float = 5.0) -> str:
        """The server's permissions violation for publishing (or subscribing) to ``subject``.

        nats-py hands the server's error over in lower case.
        """
        kind = "for subscription to" if subscribe else "for publish to"
        expected = f'permissions violation {kind} "{subject.lower()}"'
        return await eventually(
            lambda: next((e for e in self.errors if expected in e), None),
            timeout_s=timeout_s,
            what=f"a permissions violation for {subject} (errors: {self.errors})",
        )


@contextlib.asynccontextmanager
async def connected(secured: Secured, user: str) -> AsyncIterator[Client]:
    """A connection as ``user`` (its credentials file), closed after the block."""
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    nc = await nats.connect(
        secured.server.url,
        error_cb=on_error,
        max_reconnect_attempts=0,
        connect_timeout=5,
        **natsauth.connect_options(secured.creds(user)),
    )
    try:
        yield Client(nc, errors)
    finally:
        await nc.close()


async def stored(secured: Secured, stream: str) -> int:
    async with connected(secured, "admin") as admin:
        info = await admin.nc.jetstream().stream_info(stream)
        return info.state.messages


def approval(chain: str = "twin") -> bytes:
    return json.dumps({"chainId": chain, "actionId": "forged"}).encode()


def test_a_client_without_credentials_or_with_unknown_ones_cannot_connect(secured: Secured) -> None:
    async def scenario() -> None:
        with pytest.raises(NatsError, match="Authorization Violation"):
            await nats.connect(secured.server.url, max_reconnect_attempts=0, allow_reconnect=False)
        stranger = natsauth.new_credentials("collector")
        with pytest.raises(NatsError, match="Authorization Violation"):
            await nats.connect(
                secured.server.url,
                max_reconnect_attempts=0,
                allow_reconnect=False,
                nkeys_seed_str=stranger.seed,
            )

    asyncio.run(scenario())


def test_the_collector_cannot_approve_an_action_and_nothing_reaches_a_subscriber(secured: Secured) -> None:
    async def scenario() -> None:
        before = await stored(secured, streams.ACTIONS.name)
        async with connected(secured, "admin") as admin, connected(secured, "collector") as collector:
            seen: list[Msg] = []

            async def on_message(msg: Msg) -> None:
                seen.append(msg)

            await admin.nc.subscribe(f"{subjects.ACTION_APPROVED}.>", cb=on_message)
            await admin.nc.flush()
            await collector.nc.publish(subjects.action_approved("twin"), approval())
            await collector.nc.flush()
            await collector.violation(subjects.action_approved("twin"))
            # The collector's own telemetry still goes through, after the forged approval.
            ack = await collector.nc.jetstream().publish(subjects.metrics_raw("twin", "op-geth"), b"{}")
            assert ack.stream == streams.TELEMETRY.name
            await admin.nc.flush()
            assert seen == []
        assert await stored(secured, streams.ACTIONS.name) == before

    asyncio.run(scenario())


def test_the_collector_cannot_write_an_approval_or_read_the_actions_stream(secured: Secured) -> None:
    async def scenario() -> None:
        async with connected(secured, "collector") as collector:
            js = collector.nc.jetstream(timeout=DENIED_WAIT_S)
            with pytest.raises(TimeoutError):
                await js.publish(f"$KV.{BUCKET}.approvals.x", b"forged")
            await collector.violation(f"$KV.{BUCKET}.approvals.x")
            with pytest.raises(TimeoutError):
                await js.add_consumer(streams.ACTIONS.name, ConsumerConfig(name="peek", durable_name="peek"))
            await collector.violation(f"$JS.API.CONSUMER.CREATE.{streams.ACTIONS.name}.peek")
        async with connected(secured, "admin") as admin:
            kv = await admin.nc.jetstream().key_value(BUCKET)
            with pytest.raises(KeyNotFoundError):
                await kv.get("approvals.x")
            with pytest.raises(NotFoundError):
                await admin.nc.jetstream().consumer_info(streams.ACTIONS.name, "peek")

    asyncio.run(scenario())


def test_the_planner_approves_and_the_executor_and_api_cannot(secured: Secured) -> None:
    async def scenario() -> None:
        async with connected(secured, "planner") as planner:
            ack = await planner.nc.jetstream().publish(subjects.action_approved("twin"), approval())
            assert ack.stream == streams.ACTIONS.name
            assert planner.errors == []
        for user in ("api", "executor"):
            async with connected(secured, user) as other:
                with pytest.raises(TimeoutError):
                    await other.nc.jetstream(timeout=DENIED_WAIT_S).publish(
                        subjects.action_approved("twin"), approval()
                    )
                await other.violation(subjects.action_approved("twin"))
        assert await stored(secured, streams.ACTIONS.name) == 1

    asyncio.run(scenario())


def test_the_api_sends_commands_and_hears_verdicts(secured: Secured) -> None:
    async def scenario() -> None:
        async with connected(secured, "api") as api, connected(secured, "planner") as planner:
            verdict = subjects.action_verdict("twin", "evt-1")
            sub = await api.nc.subscribe(verdict)
            await api.nc.flush()
            ack = await api.nc.jetstream().publish(subjects.action_command("twin"), b"{}")
            assert ack.stream == streams.ACTIONS.name
            await planner.nc.publish(verdict, b'{"accepted": true}')
            msg = await sub.next_msg(timeout=10)
            assert msg.data == b'{"accepted": true}'
            assert api.errors == [] and planner.errors == []

    asyncio.run(scenario())


def test_the_executor_cannot_write_approvals_but_keeps_its_own_records(secured: Secured) -> None:
    async def scenario() -> None:
        async with connected(secured, "executor") as executor:
            store = await NatsKvStateStore.open(executor.nc, BUCKET)
            effect = executor_logic.effect_key("act-1")
            for key in (effect, executor_logic.cooldown_key("twin", "op-node"), f"recovery.{effect}"):
                await store.put(key, b"mine")
                assert await store.get(key) == b"mine"
            denied = NatsKvStateStore(await executor.nc.jetstream(timeout=DENIED_WAIT_S).key_value(BUCKET))
            with pytest.raises(TimeoutError):
                await denied.put(planner_records.ledger_key("act-1"), b"approved by me")
            await executor.violation(f"$KV.{BUCKET}.{planner_records.ledger_key('act-1')}")

    asyncio.run(scenario())


def test_every_planner_key_is_the_planners_to_write_and_list(secured: Secured) -> None:
    async def scenario() -> None:
        keys = [
            planner_records.proposal_key("act-1"),
            planner_records.ledger_key("act-1"),
            planner_records.pending_key("act-1"),
            planner_records.cooldown_key("twin", "op-geth"),
            planner_records.resolved_key("twin", "incident-1"),
            planner_records.AUDIT_RECENT,
        ]
        async with connected(secured, "planner") as planner:
            store = await NatsKvStateStore.open(planner.nc, BUCKET)
            for key in keys:
                await store.put(key, key.encode())
                assert await store.get(key) == key.encode()
            assert await store.keys("pending.") == [planner_records.pending_key("act-1")]
            await store.delete(planner_records.pending_key("act-1"))
            assert planner.errors == []

    asyncio.run(scenario())


def test_integrations_hear_anomalies_and_can_send_nothing(secured: Secured) -> None:
    async def scenario() -> None:
        async with connected(secured, "integrations") as bridge, connected(secured, "detector") as detector:
            sub = await bridge.nc.subscribe(f"{subjects.ANOMALY_DETECTED}.>")
            await bridge.nc.flush()
            ack = await detector.nc.jetstream().publish(subjects.anomaly_detected("twin"), b'{"z": 9}')
            assert ack.stream == streams.EVENTS.name
            msg = await sub.next_msg(timeout=10)
            assert (msg.subject, msg.data) == (subjects.anomaly_detected("twin"), b'{"z": 9}')
            for subject in (
                subjects.anomaly_detected("twin"),
                "integrations.hello",
                subjects.dead_letter("api"),
            ):
                await bridge.nc.publish(subject, b"{}")
                await bridge.nc.flush()
                await bridge.violation(subject)
            # Telemetry is not an event: no subscription to it is allowed.
            await bridge.nc.subscribe(f"{subjects.LOGS_RAW}.>")
            await bridge.violation(f"{subjects.LOGS_RAW}.>", subscribe=True)

    asyncio.run(scenario())


def test_a_service_that_finds_a_stream_missing_is_told_to_run_the_admin_step(secured: Secured) -> None:
    async def scenario() -> None:
        async with connected(secured, "admin") as admin:
            await admin.nc.jetstream().delete_stream(streams.AUDIT.name)
            await admin.nc.jetstream().delete_key_value(BUCKET)
        async with connected(secured, "planner") as planner:
            js = planner.nc.jetstream(timeout=DENIED_WAIT_S)
            # Streams that exist with the declared config are left alone: reading their info suffices.
            await streams.ensure_streams(js, (streams.ACTIONS, streams.EVENTS))
            with pytest.raises(
                streams.ProvisioningError, match=r"stream AUDIT is missing.*natsauth provision"
            ):
                await streams.ensure_streams(js, (streams.AUDIT,))
            with pytest.raises(streams.ProvisioningError, match="KV bucket 'sentinai' is missing"):
                await NatsKvStateStore.open(planner.nc, BUCKET)
        await natsauth.provision(secured.server.url, creds=secured.creds("admin"), bucket=BUCKET)
        async with connected(secured, "planner") as planner:
            await streams.ensure_streams(planner.nc.jetstream(), (streams.AUDIT,))
            await NatsKvStateStore.open(planner.nc, BUCKET)

    asyncio.run(scenario())


def _certificates(folder: Path) -> tuple[Path, natsauth.TlsFiles]:
    """A throwaway CA and a server certificate it signed for 127.0.0.1 (openssl, as an operator would)."""
    folder.mkdir(parents=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=30)

    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "1", "-subj", "/CN=test-ca")
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=nats")
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.crt", "-days", "1", "-extfile", "san.ext",
    )  # fmt: skip
    return folder / "ca.crt", natsauth.TlsFiles(
        cert_file=folder / "server.crt", key_file=folder / "server.key"
    )


def test_a_service_reaches_a_tls_server_with_its_settings_and_a_stranger_cert_is_refused(
    tmp_path: Path,
) -> None:
    ca, tls = _certificates(tmp_path / "tls")
    auth = tmp_path / "auth"
    users = natsauth.generate(auth, bucket=BUCKET)
    config = natsauth.write_config(auth / natsauth.SERVER_CONFIG, natsauth.server_config(users, tls=tls))
    server = EmbeddedNats(
        data_dir=tmp_path / "nats", log_file=tmp_path / "nats.log", config_file=config
    ).start()
    url = f"tls://127.0.0.1:{server.port}"

    async def scenario() -> None:
        await natsauth.provision(url, creds=natsauth.creds_file(auth, "admin"), tls_ca=ca, timeout_s=30)
        settings = ServiceSettings(
            SENTINAI_NATS_URL=url,
            SENTINAI_NATS_CREDS=str(natsauth.creds_file(auth, "planner")),
            SENTINAI_NATS_TLS_CA=str(ca),
        )
        broker = build_broker(settings)
        await broker.connect()
        try:
            ack = await broker.publish(b"{}", subjects.action_approved("twin"), stream=streams.ACTIONS.name)
            assert ack is not None and ack.stream == streams.ACTIONS.name
        finally:
            await broker.stop()
        # The system's own CAs do not vouch for this server: the client refuses it.
        with pytest.raises(ssl.SSLCertVerificationError):
            await nats.connect(
                url,
                tls=ssl.create_default_context(),
                max_reconnect_attempts=0,
                allow_reconnect=False,
                **natsauth.connect_options(natsauth.creds_file(auth, "planner")),
            )

    try:
        asyncio.run(scenario())
    finally:
        server.stop()

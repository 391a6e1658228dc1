"""NATS identities and permissions: who may publish and subscribe what, and the files that say so.

One NATS user per service (``collector`` … ``api``), ``integrations`` (read-only subscribers such as
chat bridges) and ``admin`` (creates streams and the KV bucket, benches, tests, operators' tools).
``permissions`` is the single source of truth for what each may do; the nats-server config, the
Kubernetes Secrets and the compose secrets are all rendered from it.

Why nkeys (Ed25519 challenge-response) rather than user/password: the server config holds public
keys only, so it is not a secret and cannot be replayed; the seed never crosses the wire (the client
signs the server's nonce); and nats-py supports it natively. A password would travel in every
CONNECT (in clear without TLS), and bcrypt hashing it would cost every connect and reconnect a
deliberately slow check on the server.

Credentials file (``<dir>/<user>.creds``, mode 0600, directory 0700): the nkey seed in the decorated
form the nats tools read (``nats --nkey <file>``), under two comment lines that name the user and
its public key::

    # SentinAI NATS user: planner
    # public key: UA…
    -----BEGIN USER NKEY SEED-----
    SU…
    ------END USER NKEY SEED------

Replies: each user's inboxes start with ``_INBOX_<user>.`` and it may subscribe to its own only, so
no user reads the replies (JetStream deliveries, KV reads, acks) meant for another.

Why one file of ~480 lines: it is the whole NATS security model — users, permissions, credentials,
the server config rendered from them, the client options and the provisioning step — and a security
review reads it in one place; each section is short and marked.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import ssl
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import nkeys  # type: ignore[import-untyped]
from nats.errors import Error as NatsError

from sentinai.common import streams, subjects
from sentinai.common.settings import ProvisionSettings
from sentinai.common.state import ensure_bucket

SERVICE_USERS = ("collector", "detector", "rca", "predictor", "planner", "executor", "api")
INTEGRATIONS = "integrations"
ADMIN = "admin"
USERS = (*SERVICE_USERS, INTEGRATIONS, ADMIN)

# The api's notifier dead-letters under its own name (``sentinai.api.notify.bus.SERVICE``).
API_NOTIFY = "api-notify"

# State keys each writer owns, as prefixes ("x." → every key under x) or whole keys. They mirror the
# key functions of the planner (``planner/records.py``) and executor (``executor/logic.py``,
# ``runner.py``), which libs/common cannot import; tests/integration/test_nats_permissions.py checks
# that every key those functions make falls under its owner's entries.
PLANNER_KEYS = ("proposals.", "approvals.", "pending.", "cooldowns.", "resolved.", "audit.recent")
EXECUTOR_KEYS = ("effects.", "cooldown.", "recovery.")

_SEED_BLOCK = re.compile(r"-{3,}BEGIN USER NKEY SEED-{3,}\s*(S[A-Z0-9]+)\s*-{3,}END USER NKEY SEED-{3,}")
_USER_LINE = re.compile(r"^# SentinAI NATS user: (\S+)$", re.MULTILINE)


class CredentialsError(ValueError):
    """A credentials file that is missing, unreadable or not in the documented format."""


# ----------------------------------------------------------------------------------- permissions


@dataclass(frozen=True, slots=True)
class Permissions:
    """Subjects a user may publish to and subscribe to (NATS wildcards); empty ``publish``: none."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]


def _family(name: str) -> str:
    """Every subject under ``name`` (``anomaly.detected`` → ``anomaly.detected.>``)."""
    return f"{name}.>"


def _api(*tokens: str) -> str:
    return ".".join(("$JS.API", *tokens))


def inbox_prefix(user: str) -> str:
    """Where ``user``'s replies arrive: ``_INBOX_<user>``; it may subscribe below it only."""
    return f"_INBOX_{subjects.token(user)}"


def _stream_info(*specs: streams.StreamSpec) -> tuple[str, ...]:
    return tuple(_api("STREAM.INFO", spec.name) for spec in specs)


def _reads(*specs: streams.StreamSpec) -> tuple[str, ...]:
    """Consuming ``specs``: consumers (created, read, deleted), pull requests, acks, flow control.

    Being allowed to create a consumer on a stream is being allowed to read all of it, so this is
    the line that decides who reads what is stored; no service gets it for a stream it does not read.
    """
    found: list[str] = []
    for spec in specs:
        name = spec.name
        found += [
            _api("CONSUMER.CREATE", name),  # an ephemeral (push) consumer, legacy form
            _api("CONSUMER.CREATE", name, ">"),  # a named consumer, with or without its filter
            _api("CONSUMER.DURABLE.CREATE", name, "*"),
            _api("CONSUMER.INFO", name, "*"),
            _api("CONSUMER.DELETE", name, "*"),
            _api("CONSUMER.MSG.NEXT", name, "*"),
            f"$JS.ACK.{name}.>",
            f"$JS.FC.{name}.>",
        ]
    return tuple(found)


def _kv_subject(bucket: str, key: str) -> str:
    """The KV subject of a key, or of every key under a prefix ending with a dot."""
    return f"$KV.{bucket}.{key}>" if key.endswith(".") else f"$KV.{bucket}.{key}"


def _kv(bucket: str, keys: Sequence[str], *, listing: bool = False) -> tuple[str, ...]:
    """Reading and writing ``keys`` of ``bucket``; ``listing``: also the bucket's key list.

    Reads go through the direct-get API whose subject names the key (the bucket is provisioned
    with direct gets), so a user reads its own keys only. Listing keys needs a consumer on the
    bucket's stream, which can read every key: only the planner, which keeps most of them, lists.
    """
    stream = f"KV_{bucket}"
    found = [_api("STREAM.INFO", stream)]
    for key in keys:
        found += [_kv_subject(bucket, key), _api("DIRECT.GET", stream, _kv_subject(bucket, key))]
    if listing:
        found += [_api("CONSUMER.CREATE", stream), _api("CONSUMER.INFO", stream, "*"), f"$JS.FC.{stream}.>"]
    return tuple(found)


_SERVICE_STREAMS = _stream_info(*streams.ALL)
EVENT_FAMILIES = (
    subjects.ANOMALY_ALL,
    _family(subjects.RCA_COMPLETED),
    _family(subjects.INCIDENT_RESOLVED),
    _family(subjects.PREDICTION_MADE),
    _family(subjects.ACTION_PROPOSED),
    _family(subjects.ACTION_APPROVED),
    _family(subjects.ACTION_EXECUTED),
    _family(subjects.ACTION_COMMAND),
    _family(subjects.ACTION_REQUESTED),
    subjects.ACTION_VERDICT_ALL,
    _family(subjects.AUDIT),
)


def permissions(user: str, *, bucket: str = "sentinai") -> Permissions:
    """What ``user`` may publish and subscribe to; ``bucket`` is the KV bucket (``SENTINAI_KV_BUCKET``)."""
    if user == ADMIN:
        return Permissions(publish=(">",), subscribe=(">",))
    if user == INTEGRATIONS:
        # Core subscriptions to what happened; nothing stored is read, nothing is sent.
        return Permissions(publish=(), subscribe=EVENT_FAMILIES)
    if user not in SERVICE_USERS:
        raise ValueError(f"unknown NATS user {user!r}: one of {', '.join(USERS)}")
    publish: tuple[str, ...] = (subjects.dead_letter(user),)
    subscribe: tuple[str, ...] = ()
    telemetry, events, actions, audit = streams.TELEMETRY, streams.EVENTS, streams.ACTIONS, streams.AUDIT
    if user == "collector":
        publish += (subjects.METRICS_RAW_ANY, _family(subjects.LOGS_RAW), *_stream_info(telemetry))
    elif user == "detector":
        publish += (_family(subjects.ANOMALY_DETECTED), _family(subjects.ANOMALY_RESOLVED))
        publish += (*_SERVICE_STREAMS, *_reads(telemetry))
    elif user == "rca":
        publish += (_family(subjects.RCA_COMPLETED), _family(subjects.INCIDENT_RESOLVED))
        publish += (_family(subjects.AUDIT), *_SERVICE_STREAMS, *_reads(telemetry, events, actions))
    elif user == "predictor":
        publish += (_family(subjects.PREDICTION_MADE), *_SERVICE_STREAMS, *_reads(telemetry))
    elif user == "planner":
        publish += (
            _family(subjects.ACTION_PROPOSED),
            _family(subjects.ACTION_APPROVED),
            subjects.ACTION_VERDICT_ALL,
            _family(subjects.AUDIT),
            *_SERVICE_STREAMS,
            *_reads(events, actions, audit),
            *_kv(bucket, PLANNER_KEYS, listing=True),
        )
    elif user == "executor":
        publish += (
            _family(subjects.ACTION_EXECUTED),
            _family(subjects.AUDIT),
            *_SERVICE_STREAMS,
            *_reads(actions),
            *_kv(bucket, EXECUTOR_KEYS),
        )
        # Live samples during a verification (a core subscription, nothing stored is read).
        subscribe += (subjects.METRICS_RAW_ANY,)
    else:  # api
        publish += (
            subjects.dead_letter(API_NOTIFY),
            _family(subjects.ACTION_COMMAND),
            _family(subjects.ACTION_REQUESTED),
            *_SERVICE_STREAMS,
            *_reads(telemetry, events, actions, audit),
        )
        subscribe += (subjects.ACTION_VERDICT_ALL,)
    subscribe += (_family(inbox_prefix(user)),)
    return Permissions(publish=publish, subscribe=subscribe)


# ----------------------------------------------------------------------------------- credentials


@dataclass(frozen=True, slots=True)
class Credentials:
    """One user's nkey: ``seed`` signs the server's nonce, ``public_key`` goes in the server config."""

    user: str
    seed: str
    public_key: str

    def render(self) -> str:
        return (
            f"# SentinAI NATS user: {self.user}\n"
            f"# public key: {self.public_key}\n"
            "-----BEGIN USER NKEY SEED-----\n"
            f"{self.seed}\n"
            "------END USER NKEY SEED------\n"
        )


def _public_key(seed: str) -> str:
    pair = nkeys.from_seed(bytearray(seed.encode()))
    try:
        return bytes(pair.public_key).decode()
    finally:
        pair.wipe()


def new_credentials(user: str) -> Credentials:
    """A fresh random user nkey for ``user``."""
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER).decode()
    return Credentials(user=subjects.token(user), seed=seed, public_key=_public_key(seed))


def parse_credentials(text: str, *, where: str = "credentials") -> Credentials:
    seed = _SEED_BLOCK.search(text)
    user = _USER_LINE.search(text)
    if seed is None or user is None:
        raise CredentialsError(
            f"{where}: not a SentinAI NATS credentials file (user line and nkey seed block)"
        )
    try:
        public = _public_key(seed.group(1))
    except Exception as exc:  # nkeys raises its own error types for a corrupted seed
        raise CredentialsError(f"{where}: the nkey seed is not valid ({exc})") from exc
    return Credentials(user=user.group(1), seed=seed.group(1), public_key=public)


def read_credentials(path: Path) -> Credentials:
    try:
        text = path.read_text()
    except OSError as exc:
        raise CredentialsError(f"cannot read NATS credentials {path}: {exc.strerror or exc}") from exc
    return parse_credentials(text, where=str(path))


def creds_file(directory: Path, user: str) -> Path:
    return directory / f"{subjects.token(user)}.creds"


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by the owner only, from its first byte on disk."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def ensure_users(directory: Path, users: Iterable[str] = USERS) -> dict[str, Credentials]:
    """Each user's credentials, made once: an existing file is kept (a restart keeps its identities)."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    found: dict[str, Credentials] = {}
    for user in users:
        path = creds_file(directory, user)
        if path.exists():
            creds = read_credentials(path)
            if creds.user != user:
                raise CredentialsError(f"{path} holds the credentials of {creds.user!r}, not {user!r}")
            os.chmod(path, 0o600)
        else:
            creds = new_credentials(user)
            _write_private(path, creds.render())
        found[user] = creds
    return found


# ----------------------------------------------------------------------------------- server config

SERVER_CONFIG = "nats-server.conf"
AUTH_CONFIG = "auth.conf"


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """The server's certificate and key (PEM); clients check it against their CA file."""

    cert_file: Path
    key_file: Path


def _strings(items: Sequence[str]) -> str:
    return "[" + ", ".join(json.dumps(item) for item in items) + "]"


def authorization_block(users: Mapping[str, Credentials], *, bucket: str = "sentinai") -> str:
    """The ``authorization { users = [...] }`` block: each user's public key and permissions."""
    lines = ["authorization {", "  users = ["]
    for user, creds in users.items():
        allowed = permissions(user, bucket=bucket)
        publish = f"allow: {_strings(allowed.publish)}" if allowed.publish else 'deny: [">"]'
        lines += [
            f"    # {user}",
            "    {",
            f"      nkey: {json.dumps(creds.public_key)}",
            "      permissions: {",
            f"        publish: {{ {publish} }}",
            f"        subscribe: {{ allow: {_strings(allowed.subscribe)} }}",
            "      }",
            "    }",
        ]
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


def server_config(
    users: Mapping[str, Credentials],
    *,
    bucket: str = "sentinai",
    listen: str | None = None,
    store_dir: Path | None = None,
    server_name: str | None = None,
    tls: TlsFiles | None = None,
) -> str:
    """A whole nats-server config: listen address, JetStream, TLS when given, and the users."""
    lines = ["# Written by SentinAI (sentinai.common.natsauth): public keys only, no secret here."]
    if server_name is not None:
        lines.append(f"server_name: {json.dumps(server_name)}")
    if listen is not None:
        lines.append(f"listen: {json.dumps(listen)}")
    if store_dir is not None:
        lines.append(f"jetstream {{ store_dir: {json.dumps(str(store_dir))} }}")
    if tls is not None:
        cert, key = json.dumps(str(tls.cert_file)), json.dumps(str(tls.key_file))
        lines.append(f"tls {{ cert_file: {cert}, key_file: {key} }}")
    return "\n".join(lines) + "\n" + authorization_block(users, bucket=bucket)


def write_config(path: Path, text: str) -> Path:
    """Write a server config readable by its owner only (it reveals who may do what)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_private(path, text)
    return path


def generate(directory: Path, *, bucket: str = "sentinai") -> dict[str, Credentials]:
    """Every user's credentials (kept if present) and ``auth.conf`` (always rewritten) in ``directory``.

    ``auth.conf`` is the authorization block alone, for a server config to include (Kubernetes,
    compose); rewriting it on each run applies the permissions of this version of SentinAI.
    """
    users = ensure_users(directory)
    write_config(directory / AUTH_CONFIG, authorization_block(users, bucket=bucket))
    return users


# ----------------------------------------------------------------------------------- clients


def tls_context(ca_file: Path) -> ssl.SSLContext:
    """A client TLS context that trusts the NATS server certificates signed by ``ca_file``."""
    return ssl.create_default_context(cafile=str(ca_file))


def connect_options(creds: Path | None, *, tls_ca: Path | None = None) -> dict[str, Any]:
    """Keyword arguments for ``nats.connect`` as the user of ``creds`` (and over TLS with ``tls_ca``).

    ``None`` creds: no authentication (an open development server).
    """
    options: dict[str, Any] = {}
    if creds is not None:
        found = read_credentials(creds)
        options |= {"nkeys_seed_str": found.seed, "inbox_prefix": inbox_prefix(found.user).encode()}
    if tls_ca is not None:
        options["tls"] = tls_context(tls_ca)
    return options


# ----------------------------------------------------------------------------------- provisioning


async def provision(
    url: str,
    *,
    creds: Path | None,
    tls_ca: Path | None = None,
    bucket: str = "sentinai",
    partitions: int | None = None,
    replicas: int | None = None,
    timeout_s: float = 60.0,
) -> None:
    """Create (or bring to their declared config) every stream and the KV bucket, as ``admin``.

    The services' users may only read stream info: this is the step that makes what they use.
    JetStream may lag the server's first accept (a cluster electing its leader), so failures are
    retried until ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    options = connect_options(creds, tls_ca=tls_ca)
    while True:
        try:
            nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=0, **options)
            try:
                js = nc.jetstream()
                await streams.ensure_streams(js, partitions=partitions, replicas=replicas)
                await ensure_bucket(js, bucket, replicas=replicas)
            finally:
                await nc.close()
            return
        except (NatsError, TimeoutError, OSError, streams.ProvisioningError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sentinai.common.natsauth provision``: the admin step, as an image can run it.

    Settings come from the environment as for any service (``SENTINAI_NATS_URL``,
    ``SENTINAI_NATS_CREDS`` naming the admin's file, ``SENTINAI_NATS_TLS_CA``,
    ``SENTINAI_KV_BUCKET``, ``SENTINAI_STREAM_REPLICAS``, ``SENTINAI_DETECTOR_PARTITIONS``).
    """
    parser = argparse.ArgumentParser(prog="python -m sentinai.common.natsauth")
    parser.add_argument("command", choices=["provision"])
    parser.parse_args(argv)
    settings = ProvisionSettings()
    try:
        asyncio.run(
            provision(
                settings.nats_url,
                creds=settings.nats_creds,
                tls_ca=settings.nats_tls_ca,
                bucket=settings.kv_bucket,
                partitions=settings.partitions,
                replicas=settings.stream_replicas,
            )
        )
    except (CredentialsError, streams.ProvisioningError, NatsError, TimeoutError, OSError) as exc:
        print(f"provisioning failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    streams_list = ", ".join(spec.name for spec in streams.ALL)
    print(f"streams ready ({streams_list}) and KV bucket {settings.kv_bucket!r} ready at {settings.nats_url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
